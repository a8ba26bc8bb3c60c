"""Built-in solvers and the shared delivery planner: conformance, semantics of each baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fgamcd_opt.caching import default_caching
from fgamcd_opt.evaluator import evaluate
from fgamcd_opt.generators import generate
from fgamcd_opt.oracle import BeamformingOracle
from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import (
    PlannerOptions,
    plan_broadcast,
    plan_group,
    plan_unicast,
)
from fgamcd_opt.registry import builtin_solvers, get_solver, load_from_file
from fgamcd_opt.runner import run_solver
from fgamcd_opt.testing import assert_conforms, check_solver

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ["coarse", "trimcaching", "nocoop", "tdma", "hybrid", "full-comp"]


@pytest.fixture(scope="module")
def small():
    return generate("tiny", seed=3, n_nodes=3, n_users=6)


@pytest.mark.parametrize("name", BASELINES)
def test_builtin_passes_conformance(name):
    assert_conforms(get_solver(name))


def test_every_registered_builtin_is_listed():
    names = set(builtin_solvers())
    assert set(BASELINES) <= names


def test_example_plugin_loads_by_path_and_conforms():
    cls = load_from_file(str(ROOT / "examples" / "nearest_solver.py") + ":NearestSolver")
    assert cls.name == "nearest"
    assert_conforms(cls)
    src = (ROOT / "examples" / "nearest_solver.py").read_text().splitlines()
    assert len([line for line in src if line.strip()]) <= 45


def test_conformance_catches_a_dishonest_solver():
    from fgamcd_opt.plan import DeliveryUnit
    from fgamcd_opt.solver import SolveResult, SolveStatus

    class Liar:
        name = "liar"
        description = "claims feasible, stores nothing, delivers from nowhere"
        params = ()

        def solve(self, instance, ctx, params):
            k = int(instance.requested_blocks[0])
            unit = DeliveryUnit(k, tuple(instance.requesters(k)), (0,))
            return SolveResult(Plan(cache=[set() for _ in range(instance.n_nodes)],
                                    units=[unit]), SolveStatus.FEASIBLE)

    report = check_solver(Liar)
    assert not report.ok
    assert any("not_holding" in f for f in report.failures)
    assert any("undelivered" in f for f in report.failures)


def test_plan_group_growth_never_worse_than_best_single(small):
    inst = small
    oracle = BeamformingOracle()
    holds = np.ones((inst.n_nodes, inst.n_blocks), dtype=bool)
    for k in inst.requested_blocks[:6]:
        users = inst.requesters(k)
        g1 = plan_group(inst, int(k), users, range(inst.n_nodes), oracle,
                        PlannerOptions(max_cluster=1, screen=inst.n_nodes))
        g3 = plan_group(inst, int(k), users, range(inst.n_nodes), oracle,
                        PlannerOptions(max_cluster=3, screen=inst.n_nodes))
        assert g3.key <= g1.key
        assert g3.migrations == []  # everyone holds k: nothing to migrate
    # deterministic
    a = plan_broadcast(inst, holds, oracle)
    b = plan_broadcast(inst, holds, BeamformingOracle())
    assert [(u.block, u.nodes) for u in a.units] == [(u.block, u.nodes) for u in b.units]


def test_planner_migrates_from_holders_and_reports_unheld(small):
    inst = small
    oracle = BeamformingOracle()
    holds = np.zeros((inst.n_nodes, inst.n_blocks), dtype=bool)
    ks = inst.requested_blocks
    holds[0, ks[: len(ks) // 2]] = True  # only node 0 holds the first half, nobody the rest
    out = plan_broadcast(inst, holds, oracle, PlannerOptions(max_cluster=3))
    assert set(out.undeliverable) == {int(k) for k in ks[len(ks) // 2:]}
    assert all(m.src == 0 for m in out.migrations)
    plan = Plan(cache=[set(np.flatnonzero(h)) for h in holds], migrations=out.migrations,
                units=out.units)
    ev = evaluate(inst, plan, oracle)
    kinds = {v.kind for v in ev.violations}
    assert "not_holding" not in kinds and "migration_source" not in kinds
    assert "undelivered" in kinds


def test_tdma_slots_add_up(small):
    """TDMA: one unicast slot per (PB, requester); a PB's broadcast time is the sum of its slots."""
    inst = small
    oracle = BeamformingOracle()
    holds = default_caching(inst)
    uc = plan_unicast(inst, holds, oracle, PlannerOptions(max_cluster=1, screen=1,
                                                          method="mrt"))
    shared = [int(k) for k in inst.requested_blocks if len(inst.requesters(k)) > 1
              and holds[:, k].any()]
    assert shared
    k = shared[0]
    assert sum(1 for u in uc.units if u.block == k) == len(inst.requesters(k))
    assert all(u.mode == "unicast" and len(u.users) == 1 for u in uc.units)
    plan = Plan(cache=[set(np.flatnonzero(h)) for h in holds], migrations=uc.migrations,
                units=uc.units)
    ev = evaluate(inst, plan, oracle)
    slots = [r.delay_s for r in ev.units if r.block == k]
    assert len(slots) > 1
    assert ev.block_broadcast_s[k] == pytest.approx(sum(slots), rel=1e-12)
    assert ev.block_broadcast_s[k] > max(slots)


def test_trimcaching_hits_everyone_with_plenty_of_storage_and_respects_storage():
    from fgamcd_opt.caching import cooperating_sets, trimcaching_placement

    inst = generate("tiny", seed=4, storage_gb=10.0)
    holds = trimcaching_placement(inst)
    coop = cooperating_sets(inst)
    for u in range(inst.n_users):
        blocks = inst.repository.models[inst.users.model[u]].blocks
        assert all(holds[coop[u], k].any() for k in blocks)
    tight = generate("tiny", seed=4, storage_gb=0.02)
    h2 = trimcaching_placement(tight)
    used = (h2 * tight.repository.sizes[None, :]).sum(axis=1)
    assert np.all(used <= tight.nodes.storage_bytes)


def test_nocoop_serves_only_own_cells_and_reports_missing():
    inst = generate("tiny", seed=5, storage_gb=0.02)
    run = run_solver(inst, get_solver("nocoop"), oracle=BeamformingOracle())
    plan = run.plan
    assert not plan.migrations
    for u in plan.units:
        assert len(u.nodes) == 1
        assert all(inst.users.node[x] == u.nodes[0] for x in u.users)
    if run.evaluation.undelivered:
        assert run.record.message  # never dropped silently
        missing = {inst.users.ids[u] for u in run.evaluation.undelivered_users()}
        assert all(m in run.record.message for m in missing)


def test_hybrid_threshold_switches_modes(small):
    inst = small
    hot = run_solver(inst, get_solver("hybrid"), {"eps_hot": 0}, oracle=BeamformingOracle())
    assert all(u.mode == "broadcast" for u in hot.plan.units)
    unheld = {k for _, k in hot.evaluation.undelivered}
    assert len(hot.plan.units) == len(inst.requested_blocks) - len(unheld)
    cold = run_solver(inst, get_solver("hybrid"), {"eps_hot": 100}, oracle=BeamformingOracle())
    assert all(u.mode == "unicast" for u in cold.plan.units)
    assert len(cold.plan.units) == int(inst.demand.sum()) - len(cold.evaluation.undelivered)


def test_full_comp_uses_every_node(small):
    run = run_solver(small, get_solver("full-comp"), oracle=BeamformingOracle())
    assert all(len(u.nodes) == small.n_nodes for u in run.plan.units)
    assert run.evaluation.count("not_holding") == 0


def test_coarse_sends_shared_pbs_once_per_model():
    inst = generate("tiny", seed=0, storage_gb=1.0)
    run = run_solver(inst, get_solver("coarse"), oracle=BeamformingOracle())
    per_block = {}
    for u in run.plan.units:
        per_block.setdefault(u.block, set()).add(u.model)
    models_of = {k: {int(inst.users.model[x]) for x in inst.requesters(k)}
                 for k in inst.requested_blocks}
    for k, models in per_block.items():
        assert models == models_of[k]
    assert run.plan.model_copies is not None
    assert run.evaluation.count("storage") == 0
