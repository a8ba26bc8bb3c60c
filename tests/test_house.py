"""Regression tests for the review of issue 8 (each failed before its fix) and the house rules
that later layers rely on: the per-PB scorer, run records v2, the lazy registry, the context."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from fgamcd_opt import registry
from fgamcd_opt.cli.main import main
from fgamcd_opt.errors import SolverNotFound
from fgamcd_opt.evaluator import evaluate, score_block
from fgamcd_opt.oracle import BeamformingOracle, OracleOptionError
from fgamcd_opt.plan import DeliveryUnit, Migration, Plan
from fgamcd_opt.rates import rate_from_amplitude, robust_amplitude_pairs, transfer_delay_s
from fgamcd_opt.runner import RUN_SCHEMA, gap_to_bound, run_solver, solver_instance
from fgamcd_opt.solver import SolveContext, SolveResult, SolveStatus

ROOT = Path(__file__).resolve().parents[1]


# ---- bug 1: a malformed plan's evaluation keeps its fields straight ----------------------
def test_malformed_plan_reports_zero_migrations_and_its_eval_time(tiny):
    plan = Plan(cache=[set()] * (tiny.n_nodes + 1))  # wrong node count
    ev = evaluate(tiny, plan)
    assert ev.violations[0].kind == "malformed"
    assert ev.n_migrations == 0 and isinstance(ev.n_migrations, int)
    assert ev.eval_time_s > 0
    assert ev.total_delay_s == math.inf and not ev.complete
    assert ev.unserved_pairs == ev.n_requested_pairs == int(tiny.demand.sum())


# ---- bug 2: an uninstalled copy says what is missing --------------------------------------
def test_missing_builtin_package_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "fgamcd_solvers", None)  # import fails
    for mod in [m for m in sys.modules if m.startswith("fgamcd_solvers.")]:
        monkeypatch.delitem(sys.modules, mod)
    with pytest.raises(SolverNotFound) as err:
        registry.get_solver("trimcaching")
    msg = str(err.value)
    assert "cannot import fgamcd_solvers.trimcaching" in msg and "pip install ." in msg
    assert "known: " not in msg


def test_unknown_solver_lists_the_builtins():
    with pytest.raises(SolverNotFound) as err:
        registry.get_solver("nope")
    assert "trimcaching" in str(err.value) and "milp" in str(err.value)


# ---- bug 3: unknown oracle options are rejected, naming option and method -----------------
def test_oracle_rejects_unknown_options(tiny):
    with pytest.raises(OracleOptionError, match=r"'fast' does not accept option\(s\) mu\b"):
        BeamformingOracle("fast", mu=2.0)
    BeamformingOracle("sdr", mu_growth=1.5)  # a real sdr option is accepted
    oracle = BeamformingOracle("fast")
    k = int(tiny.requested_blocks[0])
    with pytest.raises(OracleOptionError, match="'mrt'.*n_random_starts"):
        oracle.solve(tiny, k, (0,), tuple(tiny.requesters(k)), method="mrt", n_random_starts=3)


def test_constructor_options_do_not_leak_into_other_methods(tiny):
    oracle = BeamformingOracle("fast", n_random_starts=2)
    k = int(tiny.requested_blocks[0])
    res = oracle.solve(tiny, k, (0, 1), tuple(tiny.requesters(k)), method="mrt")
    assert res.method == "mrt"


# ---- bug 4: zero-rate units never give a total (or a gap) below the bound -----------------
def test_zero_rate_plan_is_not_comparable_and_gets_no_gap(tiny):
    from fgamcd_opt.caching import default_caching

    holds = default_caching(tiny)
    k = int(tiny.requested_blocks[0])
    users = tuple(int(u) for u in tiny.requesters(k))
    holder = int(np.flatnonzero(holds[:, k])[0])
    zero = np.zeros((1, tiny.antennas), complex)  # silent beams: every user at rate 0
    plan = Plan.from_holds(holds, units=[DeliveryUnit(k, users, (holder,), beams=zero)])
    ev = evaluate(tiny, plan)
    assert ev.count("zero_rate") == 1 and not ev.complete
    assert ev.total_delay_s == math.inf
    assert gap_to_bound(ev, 1e-9) == (None, "")


def test_gap_is_never_negative():
    class Ev:
        total_delay_s = 1.0

    gap, note = gap_to_bound(Ev(), 1.5)
    assert gap == 0.0 and "exceeds" in note
    assert gap_to_bound(Ev(), 0.25) == (0.75, "")


# ---- bug 5: fgamcd-solve writes under runs/, never into the current folder ----------------
def test_solve_writes_under_runs_by_default(tmp_path, monkeypatch, capsys):
    inst = tmp_path / "i.json"
    assert main(["gen", "tiny", "-o", str(inst), "--seed", "2"]) == 0
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["solve", str(inst), "--solver", "nocoop", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in work.iterdir()) == ["runs"]
    names = sorted(p.name for p in (work / "runs").iterdir())
    assert names == [f"tiny-s2.nocoop.s4.{x}.json" for x in ("eval", "plan", "run")]
    record = json.loads((work / "runs" / names[2]).read_text())
    jsonschema.validate(record, RUN_SCHEMA)
    assert record["seed"] == 4 and record["solver"] == "nocoop"
    assert "runs/tiny-s2.nocoop.s4.run.json" in out


def test_schema_run_is_printed(capsys):
    assert main(["schema", "run"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["record_schema_version"] == {"const": 2}


# ---- the public per-PB scorer is the evaluator --------------------------------------------
def test_score_block_sums_to_the_evaluation(tiny):
    from fgamcd_opt.caching import default_caching
    from fgamcd_opt.planner import plan_broadcast

    oracle = BeamformingOracle()
    holds = default_caching(tiny)
    d = plan_broadcast(tiny, holds, oracle)
    plan = Plan.from_holds(holds, migrations=d.migrations, units=d.units)
    ev = evaluate(tiny, plan, oracle)
    total = 0.0
    for k in tiny.requested_blocks:
        k = int(k)
        s = score_block(tiny, k, [u for u in d.units if u.block == k],
                        [m for m in d.migrations if m.block == k], oracle, holds=holds[:, k])
        assert s.migration_s == pytest.approx(ev.block_migration_s.get(k, 0.0), rel=1e-12)
        assert s.broadcast_s == pytest.approx(ev.block_broadcast_s.get(k, 0.0), rel=1e-12)
        assert set(s.rates_bps) == set(int(u) for u in tiny.requesters(k))
        total += s.total_s
    assert ev.complete and total == pytest.approx(ev.total_delay_s, rel=1e-9)


def test_score_block_flags_an_unserved_requester_and_a_foreign_unit(tiny):
    k = int(tiny.requested_blocks[0])
    users = tuple(int(u) for u in tiny.requesters(k))
    s = score_block(tiny, k, [DeliveryUnit(k, users[:1], (0,))], [])
    if len(users) > 1:
        assert s.total_s == math.inf and set(s.undelivered_users) == set(users[1:])
    with pytest.raises(ValueError, match="must carry PB"):
        score_block(tiny, k, [DeliveryUnit(k + 1, users, (0,))], [])
    # a migration from a node that does not hold k breaks eq. 2
    s2 = score_block(tiny, k, [DeliveryUnit(k, users, (1,))], [Migration(0, 1, k)],
                     holds=np.zeros(tiny.n_nodes, bool))
    assert any(v.kind == "migration_source" for v in s2.violations) and not s2.feasible


# ---- hostile numbers: overflow never crashes and never leaks Infinity into JSON ------------
def test_beams_scaled_to_1e200_are_scored_without_overflow(tiny, tmp_path, capsys):
    from fgamcd_opt.caching import default_caching
    from fgamcd_opt.plan_io import plan_to_dict
    from fgamcd_opt.planner import plan_broadcast

    holds = default_caching(tiny)
    d = plan_broadcast(tiny, holds, BeamformingOracle())
    for u in d.units:
        u.beams = u.beams * 1e200
    plan = Plan.from_holds(holds, migrations=d.migrations, units=d.units)
    with np.errstate(all="raise"):
        ev = evaluate(tiny, plan)
    assert ev.count("power") == len(d.units)
    assert math.isfinite(ev.delivered_delay_s) and ev.total_delay_s == math.inf
    text = json.dumps(ev.to_dict(tiny), allow_nan=False)
    assert "Infinity" not in text and "NaN" not in text
    # and through the CLI, with -o and --json
    from fgamcd_opt.instance_io import save_instance
    from fgamcd_opt.jsonio import write_json_atomic

    save_instance(tiny, tmp_path / "t.json")
    write_json_atomic(tmp_path / "p.json", plan_to_dict(plan, tiny, with_beams=True))
    assert main(["eval", str(tmp_path / "t.json"), str(tmp_path / "p.json"), "--json",
                 "-o", str(tmp_path / "ev.json")]) == 0
    json.loads(capsys.readouterr().out)
    json.loads((tmp_path / "ev.json").read_text())


def test_rate_and_delay_kernels_never_overflow():
    amp = robust_amplitude_pairs(np.full((1, 1, 2), 1e-3 + 0j), np.zeros((1, 1)),
                                 np.full((1, 1, 2), 1e200 + 0j))
    assert np.isfinite(amp).all() and amp[0] == pytest.approx(2e197)
    with np.errstate(all="raise"):
        r = rate_from_amplitude(np.array([1e200, 1e-3, 0.0]), 1e-11, 4e8)
    assert np.isfinite(r).all() and r[0] > r[1] > r[2] == 0
    # large-SNR branch agrees with the direct formula where both are exact
    assert rate_from_amplitude(1e140, 1.0, 1.0) == pytest.approx(2 * 140 * math.log2(10))
    assert transfer_delay_s(1000, 8000.0) == 1.0 and transfer_delay_s(1, 0.0) == math.inf
    np.testing.assert_array_equal(transfer_delay_s([1, 2], [8.0, 0.0]), [1.0, np.inf])


# ---- SolveContext: progress and stop --------------------------------------------------------
def test_context_progress_and_stop():
    seen = []
    ctx = SolveContext(progress_callback=lambda f, m: seen.append((f, m)))
    ctx.progress(0.5, "half")
    ctx.progress(7, "")
    assert seen == [(0.5, "half"), (1.0, "")]
    assert not ctx.should_stop()
    ctx.stop_event.set()
    assert ctx.should_stop()
    assert SolveContext(time_limit_s=0.0).should_stop()
    SolveContext().progress(0.3)  # nobody listens: a no-op


class _Counting:
    name = "counting"
    description = "counts its constructions and runs"
    params = ()
    constructed = 0

    def __init__(self):
        type(self).constructed += 1
        self.runs = 0

    def solve(self, instance, ctx, params):
        self.runs += 1
        ctx.progress(1.0, "done")
        return SolveResult(Plan.empty(instance.n_nodes), SolveStatus.FEASIBLE, "nothing")


def test_runner_keeps_one_solver_object_and_forwards_progress(tiny):
    got = []
    for seed in range(3):
        run_solver(tiny, _Counting, seed=seed, progress=lambda f, m: got.append(m))
    assert _Counting.constructed == 1 and solver_instance(_Counting).runs == 3
    assert got == ["done"] * 3


def test_run_record_keeps_solver_status_apart_from_the_verdict(tiny):
    rec = run_solver(tiny, _Counting).record.to_dict()
    jsonschema.validate(rec, RUN_SCHEMA)
    assert rec["solver_status"] == "feasible" and rec["verdict"] == "infeasible"
    assert rec["total_delay_s"] is None and rec["complete"] is False
    assert rec["violations"] == {"undelivered": len(set(np.nonzero(tiny.demand)[0]))}


# ---- lazy plugins ------------------------------------------------------------------------
def test_list_solvers_imports_neither_torch_nor_pyomo():
    code = ("import sys; from fgamcd_opt.cli.main import main; main(['solvers']); "
            "heavy = sorted(m for m in ('torch', 'pyomo', 'cvxpy', 'pettingzoo', 'dask') "
            "if m in sys.modules); print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "milp" in out.stdout and "trimcaching" in out.stdout


def test_builtins_are_entry_points_too():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group=registry.ENTRY_POINT_GROUP)}
    for name, ref in registry.BUILTIN_SOLVERS.items():
        assert eps.get(name) == ref, (name, "reinstall the project: pip install -e .")


def test_solver_protocol_is_enforced(tmp_path):
    (tmp_path / "bad.py").write_text("class NoSolve:\n    name = 'x'\n")
    with pytest.raises(SolverNotFound, match="missing"):
        registry.load_from_file(f"{tmp_path / 'bad.py'}:NoSolve")


def test_stop_event_is_a_threading_event():
    assert isinstance(SolveContext().stop_event, threading.Event)


# ---- long solves: progress and the time limit (issue 9 item 4) -----------------------------
@pytest.mark.parametrize("name", ["trimcaching", "tdma", "coarse", "hybrid", "nocoop",
                                  "full-comp"])
def test_baselines_report_progress_and_honour_a_time_limit(tiny, name):
    from fgamcd_opt.registry import get_solver

    seen = []
    free = run_solver(tiny, get_solver(name), progress=lambda f, m: seen.append(f))
    assert free.record.solver_status == "feasible" and seen and max(seen) <= 1.0
    cut = run_solver(tiny, get_solver(name), time_limit_s=0.0).record
    assert cut.solver_status == "time_limit" and "time limit reached" in cut.message
    assert cut.verdict != "not_evaluated"  # a plan is still returned and scored


def test_pair_batching_does_not_change_the_evaluation(tiny, monkeypatch):
    from fgamcd_opt import evaluator
    from fgamcd_opt.registry import get_solver

    plan = run_solver(tiny, get_solver("tdma")).plan
    whole = evaluate(tiny, plan)
    monkeypatch.setattr(evaluator, "PAIR_BATCH", 3)
    small = evaluate(tiny, plan)
    assert small.total_delay_s == whole.total_delay_s
    for a, b in zip(small.units, whole.units, strict=True):
        np.testing.assert_array_equal(a.rates_bps, b.rates_bps)
