"""Time limits are limits, and one certified bound for every asker (issue 22).

* every solver given ``time_limit_s = T`` returns within T + GRACE_S (fgamcd_opt/solver.py) with
  status ``time_limit`` when it was cut, and a plan (partial if need be);
* the milp reports ``time_limit`` whenever a stage was cut, including a MILP stopped at its own
  time limit;
* the certified bound returns within its budget plus the grace and says whether a stage hit
  its budget; milp and ``--bound`` get the same (memoised) bound, whichever solver asks.

The limits here are tiny (1-3 s) against solves that take 10-100 times longer without them, so
the checks measure the contract, not the machine's speed."""

from __future__ import annotations

import math

import jsonschema
import pytest
from fgamcd_solvers.milp import certified
from fgamcd_solvers.milp import formulation as milp

from fgamcd_opt import generate, get_solver, run_solver
from fgamcd_opt.oracle import BeamformingOracle
from fgamcd_opt.runner import RUN_SCHEMA, attach_bound
from fgamcd_opt.solver import GRACE_S, SolveStatus

LIMIT = 1.0


@pytest.fixture(scope="module")
def n8():
    """N = 8, U = 48 (the issue's instance family): milp took 268 s at --time-limit 60."""
    return generate("paper-default", n_nodes=8, n_users=48)


@pytest.mark.parametrize("name", ["milp", "hybrid", "trimcaching", "coarse", "tdma",
                                  "full-comp", "nocoop"])
def test_every_solver_stops_within_the_grace(n8, name):
    run = run_solver(n8, get_solver(name), time_limit_s=LIMIT, oracle=BeamformingOracle())
    rec = run.record
    assert rec.solve_time_s <= LIMIT + GRACE_S, (name, rec.solve_time_s, rec.message)
    assert run.plan is not None and rec.verdict != "not_evaluated"
    if rec.solve_time_s > LIMIT:
        assert rec.solver_status == SolveStatus.TIME_LIMIT, (name, rec.message)
        assert "time limit reached" in rec.message


def test_milp_reports_time_limit_when_a_milp_stops_at_its_limit():
    inst = generate("tiny", seed=2, storage_gb=0.04)  # binding storage: HiGHS must branch
    run = run_solver(inst, get_solver("milp"), {"time_limit": 0.001, "mip_gap": 0.0,
                                                "group_bound_time": 0.0},
                     oracle=BeamformingOracle())
    rec = run.record
    assert run.plan is not None
    stopped = [s["status"] for s in rec.metadata["stages"]["milp"]]
    assert "time_limit" in stopped or rec.metadata["statuses"].get("oracle") == "time_limit"
    assert rec.solver_status == SolveStatus.TIME_LIMIT
    assert rec.metadata["time_limit_stages"]


def test_certified_bound_returns_within_its_budget_and_says_it_was_cut():
    inst = generate("paper-default", storage_gb=0.25)  # ~60-200 s with no budget
    budget = 3.0
    bound, info = certified.certified_lower_bound(inst, time_limit_s=budget)
    assert info["time_s"] <= budget + GRACE_S
    assert info["budget_hit"] is True
    data = milp.optimistic_data(inst)
    assert bound is not None and bound >= milp.trivial_bound(data) * (1 - 1e-6)


def test_the_bound_is_the_same_whichever_solver_asks():
    """milp's own bound and --bound's are one memoised computation (same options by default),
    and with --bound every solver's record carries that bound, with its provenance."""
    inst = generate("tiny", seed=2, n_nodes=3, n_users=6, storage_gb=0.06)  # storage binds
    certified._MEMO.clear()
    oracle = BeamformingOracle()
    m = run_solver(inst, get_solver("milp"), oracle=oracle)
    assert m.record.bound_source == "solver" and m.record.bound_s is not None
    rounds = m.record.metadata["cluster_bound_rounds"]
    assert rounds and rounds[0]["raised"] > 0  # the cluster rounds moved the bound
    bound, info = certified.certified_lower_bound(inst)  # --bound's defaults
    assert info.get("memoised") and bound == m.record.bound_s
    certified._MEMO.clear()  # computed again from scratch: the same number
    again, info2 = certified.certified_lower_bound(inst)
    assert again == bound and not info2.get("memoised") and not info2["budget_hit"]
    for name in ("hybrid", "nocoop", "milp"):
        run = m if name == "milp" else run_solver(inst, get_solver(name),
                                                  oracle=BeamformingOracle())
        run = attach_bound(run, again, info2)
        rec = run.record
        assert rec.bound_s == again and rec.bound_source == "external"
        assert rec.metadata["bound_info"]["budget_hit"] is False
        assert rec.metadata["bound_info"]["options"]["time_limit_s"] == 60.0
        assert (rec.gap is None) == (not math.isfinite(run.evaluation.total_delay_s))
        jsonschema.validate(rec.to_dict(), RUN_SCHEMA)
    assert rec.metadata["solver_bound_s"] == again  # milp's own, kept apart


@pytest.mark.parametrize("name", ["trimcaching", "nocoop", "hybrid"])
def test_pre_solve_stages_report_progress(tiny, name):
    """The caching stage reports progress before the delivery planning does (a huge instance
    spends minutes there: the progress bar must move from the start)."""
    seen: list[str] = []
    run_solver(tiny, get_solver(name), progress=lambda f, m: seen.append(m),
               oracle=BeamformingOracle())
    first_plan = next(i for i, m in enumerate(seen) if m.startswith("PB"))
    assert any(m.startswith("caching") for m in seen[:first_plan]), seen[:5]


def test_bound_stages_report_progress(tiny):
    certified._MEMO.clear()
    seen: list[tuple[float, str]] = []
    certified.certified_lower_bound(tiny, time_limit_s=4.0, bound_workers=1,
                                    progress=lambda f, m: seen.append((f, m)))
    assert seen[0][1].startswith("bound") and seen[-1] == (1.0, "bound: done")
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_evaluation_json_lists_are_capped_with_their_counts(tiny):
    """A plan leaving 10^6 users unserved lists 1.6e7 pairs: the CLIs cap the JSON lists
    (EVAL_JSON_ITEMS) and say so, the counts stay exact."""
    from fgamcd_opt.evaluator import evaluate
    from fgamcd_opt.plan import Plan

    ev = evaluate(tiny, Plan.empty(tiny.n_nodes))
    full = ev.to_dict(tiny)
    cut = ev.to_dict(tiny, max_items=3)
    assert "truncated" not in full and len(full["undelivered"]) == ev.summary(tiny)[
        "undelivered_pairs"] > 3
    assert cut["truncated"] == {"violations": len(ev.violations),
                                "undelivered": len(ev.undelivered)}
    assert cut["undelivered"] == full["undelivered"][:3] and len(cut["violations"]) == 3
    assert cut["undelivered_pairs"] == full["undelivered_pairs"]
