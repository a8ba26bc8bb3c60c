"""Scaling to metro networks (issue 20): the metro generator and node layout files, locality
(reach, neighbourhoods), bound pruning in the planner, and PB planning in worker processes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fgamcd_opt import planner
from fgamcd_opt.errors import ParameterError
from fgamcd_opt.evaluator import evaluate
from fgamcd_opt.generators import generate
from fgamcd_opt.locality import hilbert_index, neighbourhoods, useful
from fgamcd_opt.oracle import BeamformingOracle
from fgamcd_opt.oracle.problem import BeamProblem
from fgamcd_opt.plan_io import plan_to_dict
from fgamcd_opt.planner import BlockData, PlannerOptions, plan_group, plan_transmissions
from fgamcd_opt.registry import get_solver
from fgamcd_opt.runner import run_solver

PLANNER_SOLVERS = ("trimcaching", "nocoop", "tdma", "coarse", "hybrid", "full-comp")


# ---- generator --------------------------------------------------------------------------
def test_metro_keeps_the_cell_size_as_n_grows():
    small = generate("metro", seed=0, n_nodes=6, n_users=10)
    big = generate("metro", seed=0, n_nodes=96, n_users=10)
    assert small.area_m == (1000.0, 1000.0)  # paper-default's square at N = 6
    assert big.area_m == pytest.approx((4000.0, 4000.0))
    # nearest-neighbour spacing of the grid is the same
    for inst in (small, big):
        p = inst.nodes.positions_m
        d = np.hypot(*(p[:, None] - p[None]).transpose(2, 0, 1))
        np.fill_diagonal(d, np.inf)
        assert d.min(axis=1).max() <= 500.0 + 1e-9
    assert (big.users.positions_m <= 4000.0).all()


def test_node_layout_files_json_csv_and_instance_nodes(tmp_path):
    pts = [[100.0, 100.0], [300.0, 100.0], [100.0, 300.0], [300.0, 300.0]]
    (tmp_path / "a.json").write_text(json.dumps(pts))
    (tmp_path / "b.csv").write_text("x_m,y_m\n" + "\n".join(f"{x},{y}" for x, y in pts))
    (tmp_path / "c.json").write_text(json.dumps({"nodes": [{"id": f"n{i}", "position_m": p}
                                                           for i, p in enumerate(pts)]}))
    for name in ("a.json", "b.csv", "c.json"):
        inst = generate("metro", seed=1, n_users=20, node_file=str(tmp_path / name))
        assert inst.n_nodes == 4
        assert inst.nodes.positions_m.tolist() == pts
        assert inst.area_m == (400.0, 400.0)  # same margin on both sides
        assert inst.provenance["parameters"]["node_file"] == str(tmp_path / name)


@pytest.mark.parametrize("content,needle", [
    ("[[1, 2], [3]]", "[1]: expected two finite numbers"),
    ('{"nodes": [{"position_m": [1, -2]}]}', "nodes[0].position_m"),
    ("1,2\nx,y\n", "line 2"),
    ("[]", "no node positions"),
    ("{not json", "not valid JSON"),
])
def test_bad_node_files_name_the_file_and_the_entry(tmp_path, content, needle):
    f = tmp_path / ("layout.csv" if content.startswith("1,2") else "layout.json")
    f.write_text(content)
    with pytest.raises(ParameterError) as exc:
        generate("metro", seed=0, n_users=5, node_file=str(f))
    msg = str(exc.value)
    assert str(f) in msg and needle in msg and "\n" not in msg


def test_node_file_conflicting_n_nodes_and_missing_file(tmp_path):
    f = tmp_path / "l.json"
    f.write_text("[[10, 10], [20, 20]]")
    with pytest.raises(ParameterError, match="n_nodes: 5 given"):
        generate("metro", seed=0, n_users=5, n_nodes=5, node_file=str(f))
    with pytest.raises(ParameterError, match="cannot read"):
        generate("metro", seed=0, n_users=5, node_file=str(tmp_path / "none.json"))
    with pytest.raises(ParameterError, match="node_density_per_km2"):
        generate("metro", seed=0, n_users=5, node_density_per_km2=-1.0)


# ---- locality ---------------------------------------------------------------------------
def test_hilbert_order_visits_neighbours_consecutively():
    xy = np.array([(x, y) for x in range(4) for y in range(4)], dtype=float)
    order = xy[np.argsort(hilbert_index(xy, order=2))]
    steps = np.abs(np.diff(order, axis=0)).sum(axis=1)
    assert (steps == 1).all()  # a Hilbert curve moves to a grid neighbour at every step


def test_neighbourhoods_partition_the_users_within_the_limit():
    inst = generate("metro", seed=3, n_nodes=16, n_users=200)
    k = max(inst.requested_blocks, key=lambda b: len(inst.requesters(b)))
    users = inst.requesters(k)
    bd = BlockData(inst, int(k))
    for limit in (3, 8, 24):
        hoods = neighbourhoods(inst, users, bd.link, range(inst.n_nodes), limit)
        flat = sorted(u for h in hoods for u in h)
        assert flat == sorted(users.tolist())
        assert max(map(len, hoods)) <= limit
        assert hoods == neighbourhoods(inst, users, bd.link, range(inst.n_nodes), limit)
    assert neighbourhoods(inst, users[:3], bd.link[:, :3], range(inst.n_nodes), 8) == [
        tuple(int(u) for u in users[:3])]


def test_useless_nodes_never_raise_any_worst_case_amplitude():
    """A node whose link bound is zero for every user (||g|| <= rho) only lowers the users'
    worst-case amplitudes: silencing it never hurts (the basis of pruning by reach)."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        p, v, d = rng.integers(2, 5), rng.integers(1, 6), rng.integers(1, 5)
        g = rng.standard_normal((p, v, d)) + 1j * rng.standard_normal((p, v, d))
        rho = rng.uniform(0, 1, (p, v)) * np.linalg.norm(g, axis=2)
        rho[0] = np.linalg.norm(g[0], axis=1) * rng.uniform(1.0, 2.0, v)  # node 0 useless
        pr = BeamProblem(g, rho, np.ones(v))
        assert not useful(np.maximum(np.linalg.norm(g, axis=2) - rho, 0.0))[0]
        x = rng.standard_normal((p, d)) + 1j * rng.standard_normal((p, d))
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1.0)
        silenced = x.copy()
        silenced[0] = 0
        assert np.all(pr.amplitude(silenced) >= pr.amplitude(x) - 1e-12)


def test_plan_group_never_adds_a_node_out_of_reach():
    inst = generate("metro", seed=2, n_nodes=16, n_users=40)
    oracle = BeamformingOracle()
    holds = np.ones(inst.n_nodes, dtype=bool)
    checked = 0
    for k in inst.requested_blocks[:20]:
        users = inst.requesters(k)[:3]
        bd = BlockData(inst, int(k))
        g = plan_group(inst, int(k), users, np.flatnonzero(holds), oracle, block_data=bd)
        link = bd.link[:, [bd.column[int(u)] for u in users]]
        assert all(useful(link)[n] for n in g.nodes[1:]) or len(g.nodes) == 1
        checked += len(g.nodes) > 1
    assert checked > 0


def test_bound_pruning_chooses_what_solving_every_candidate_chooses(monkeypatch):
    """plan_group skips single holders and growth candidates that their rate bounds prove
    cannot win; the chosen transmission is the one found when every candidate is solved."""
    inst = generate("paper-default", seed=4, n_users=40)
    oracle = BeamformingOracle()
    cases = []
    for k in inst.requested_blocks[::12]:
        users = tuple(int(u) for u in inst.requesters(k)[:4])
        holders = (int(k) % inst.n_nodes, (int(k) + 3) % inst.n_nodes)
        cases.append((int(k), users, holders))
    opts = PlannerOptions(screen=3)
    pruned = [plan_group(inst, k, us, hs, oracle, opts) for k, us, hs in cases]
    calls_pruned = oracle.misses + oracle.hits
    monkeypatch.setattr(planner, "_unbeatable", lambda *a: False)
    oracle2 = BeamformingOracle()
    full = [plan_group(inst, k, us, hs, oracle2, opts) for k, us, hs in cases]
    assert oracle2.misses + oracle2.hits > calls_pruned  # pruning saved oracle calls
    for a, b in zip(pruned, full, strict=True):
        assert (a.nodes, a.key) == (b.nodes, b.key)


def test_large_requester_sets_are_planned_in_neighbourhoods_and_fully_served():
    inst = generate("metro", seed=1, n_nodes=9, n_users=150)
    k = max(inst.requested_blocks, key=lambda b: len(inst.requesters(b)))
    users = inst.requesters(k)
    assert len(users) > 6
    holders = np.arange(0, inst.n_nodes, 2)
    parts = plan_transmissions(inst, int(k), users, holders, BeamformingOracle(),
                               PlannerOptions(local_group=6))
    assert sorted(u for g in parts for u in g.users) == sorted(users.tolist())
    assert max(len(g.users) for g in parts) <= 6
    # a node migrated to once is a free participant afterwards: never migrated twice
    dst = [m.dst for g in parts for m in g.migrations]
    assert len(dst) == len(set(dst))


# ---- worker processes -------------------------------------------------------------------
@pytest.mark.parametrize("solver", PLANNER_SOLVERS)
def test_workers_give_the_same_plan(solver):
    inst = generate("tiny", seed=2, n_users=10)
    cls = get_solver(solver)
    one = run_solver(inst, cls, {"workers": 1}, seed=0, oracle=BeamformingOracle())
    two = run_solver(inst, cls, {"workers": 2}, seed=0, oracle=BeamformingOracle())
    assert plan_to_dict(one.plan, inst) == plan_to_dict(two.plan, inst)
    assert one.record.total_delay_s == two.record.total_delay_s
    assert one.record.oracle_calls == two.record.oracle_calls
    assert evaluate(inst, two.plan).complete == one.evaluation.complete


# ---- TrimCaching placement: incremental tables, the same placements -----------------------
def _trimcaching_reference(inst, users_of_node_only=False):
    """The placement as first written (a scan of every unhit user per step), kept here as the
    reference the incremental version must reproduce exactly."""
    from fgamcd_opt.caching import cooperating_sets

    rep = inst.repository
    sizes = rep.sizes.astype(np.int64)
    coop = cooperating_sets(inst)
    holds = np.zeros((inst.n_nodes, inst.n_blocks), dtype=bool)
    free = inst.nodes.storage_bytes.astype(np.int64).copy()
    hit = np.zeros(inst.n_users, dtype=bool)
    reach = np.zeros((inst.n_nodes, inst.n_users), dtype=bool)
    for u in range(inst.n_users):
        if users_of_node_only:
            reach[inst.users.node[u], u] = True
        else:
            reach[coop[u], u] = True
    models = [np.asarray(m.blocks) for m in rep.models]
    while True:
        best = None
        for j in np.unique(inst.users.model[~hit]):
            gains = reach[:, (~hit) & (inst.users.model == j)].sum(axis=1)
            for n in np.flatnonzero(gains > 0):
                need = models[j][~holds[n, models[j]]]
                added = int(sizes[need].sum())
                if added > free[n]:
                    continue
                score = np.inf if added == 0 else gains[n] / added
                key = (score, int(gains[n]), -int(n), -int(j))
                if best is None or key > best[0]:
                    best = (key, int(n), int(j), need, added)
        if best is None:
            break
        _, n, j, need, added = best
        holds[n, need] = True
        free[n] -= added
        hit |= (inst.users.model == j) & reach[n]
    return holds


@pytest.mark.parametrize("scenario,kw", [
    ("tiny", {"seed": 1}), ("paper-default", {"seed": 3, "storage_gb": 0.25}),
    ("paper-default", {"seed": 2, "storage_gb": 0.1, "n_users": 100}),
    ("metro", {"seed": 1, "n_users": 150, "n_nodes": 9})])
def test_trimcaching_placement_matches_the_reference(scenario, kw):
    from fgamcd_opt.caching import trimcaching_placement

    inst = generate(scenario, **kw)
    for own in (False, True):
        assert np.array_equal(trimcaching_placement(inst, users_of_node_only=own),
                              _trimcaching_reference(inst, users_of_node_only=own))


# ---- the persistent oracle store ----------------------------------------------------------
def _queries(inst, n=6):
    out = []
    for k in inst.requested_blocks:
        users = tuple(int(u) for u in inst.requesters(k)[:3])
        if len(users) >= 2:
            out.append((int(k), (0, 1), users))
        if len(out) >= n:
            break
    return out


def test_store_shares_results_between_oracles_and_instances_of_the_same_beam_data(tmp_path):
    from fgamcd_opt.oracle.store import OracleStore, beam_fingerprint

    inst = generate("tiny", seed=3)
    other = generate("tiny", seed=3, storage_gb=0.5, zipf=0.0)  # same beam data
    assert other.fingerprint != inst.fingerprint
    assert beam_fingerprint(other) == beam_fingerprint(inst)
    assert beam_fingerprint(generate("tiny", seed=4)) != beam_fingerprint(inst)
    path = tmp_path / "memo.sqlite"
    first = BeamformingOracle(store=OracleStore(path, flush_every=0))
    qs = _queries(inst)
    solved = [first.solve(inst, *q) for q in qs]
    first.store.flush()
    again = BeamformingOracle(store=OracleStore(path))
    for q, ref in zip(qs, solved, strict=True):
        k, nodes, _ = q
        users = tuple(u for u in ref.users if u < other.n_users)
        got = again.solve(other, k, nodes, users)
        assert got.beams.shape == ref.beams.shape
        assert np.array_equal(got.beams, ref.beams)
        np.testing.assert_allclose(got.rates_bps, ref.rates_bps, rtol=1e-12)
        assert (got.status, got.qos_feasible) == (ref.status, ref.qos_feasible)
    assert again.store_hits == len(qs) and again.misses == 0


def test_store_entries_are_checked_never_trusted(tmp_path):
    """A store is a cache: beams above a power budget or garbage are solved afresh, a stored
    'QoS met' never hides a user below Q_u (rates are recomputed from the beams)."""
    import json as _json
    import sqlite3

    from fgamcd_opt.oracle.store import OracleStore

    inst = generate("tiny", seed=3, qos_gbps=(4.0, 5.0))
    path = tmp_path / "memo.sqlite"
    o = BeamformingOracle(store=OracleStore(path, flush_every=0))
    qs = _queries(inst, 3)
    refs = [o.solve(inst, *q) for q in qs]
    o.store.flush()
    db = sqlite3.connect(path)
    keys = [r[0] for r in db.execute("SELECT key FROM memo ORDER BY rowid")]
    big = np.full((2, inst.antennas), 10.0 * np.sqrt(inst.nodes.power_max_w.max()), complex)
    db.execute("UPDATE memo SET beams = ? WHERE key = ?", (big.tobytes(), keys[0]))
    db.execute("UPDATE memo SET beams = ? WHERE key = ?", (b"garbage", keys[1]))
    meta = _json.loads(db.execute("SELECT meta FROM memo WHERE key = ?", (keys[2],)).fetchone()[0])
    meta.update(qos_feasible=True, qos_infeasible_users=[])
    db.execute("UPDATE memo SET meta = ? WHERE key = ?", (_json.dumps(meta), keys[2]))
    db.commit()
    fresh = BeamformingOracle(store=OracleStore(path))
    got = [fresh.solve(inst, *q) for q in qs]
    assert fresh.misses == 2 and fresh.store_hits == 1 and fresh.store.rejected == 1
    for a, b in zip(got, refs, strict=True):
        assert np.all(np.sum(np.abs(a.beams) ** 2, axis=1)
                      <= inst.nodes.power_max_w[list(a.nodes)] * (1 + 1e-9))
        np.testing.assert_allclose(a.rates_bps, b.rates_bps, rtol=1e-12)
    below = got[2].rates_bps < inst.users.qos_bps[list(got[2].users)] * (1 - 1e-9)
    assert got[2].qos_feasible == (not below.any() and refs[2].qos_feasible)
    assert set(np.asarray(got[2].users)[below]) <= set(got[2].qos_infeasible_users)


def test_sweep_cells_share_the_store_only_after_trusted_runs(tmp_path, monkeypatch):
    """Built-in cells (trusted hosts, experiments/isolation.py) write their oracle results to
    the sweep's store after a run that left the instance unchanged, and drop them otherwise;
    plugin sandboxes never open the store."""
    import inspect

    from fgamcd_opt.experiments import isolation
    from fgamcd_opt.oracle.store import OracleStore

    path = str(tmp_path / "memo.sqlite")
    cell = {"cell": "c0", "spec": "t", "point": {}, "solver_point": {}, "replicate": 0,
            "instance_seed": 5, "solver_label": "hybrid", "solver": "hybrid",
            "scenario": "tiny", "generator_params": {}, "solver_params": {},
            "time_limit_s": None, "oracle": "fast", "oracle_options": {},
            "oracle_store": path}
    monkeypatch.setattr(isolation, "tamper_reason", lambda *a: "instance modified")
    row = isolation.run_builtin_cell(cell)
    assert row["state"] == "tampered" and len(OracleStore(path)) == 0  # dropped
    monkeypatch.undo()
    row = isolation.run_builtin_cell({**cell, "instance_seed": 6})
    assert row["state"] == "done" and len(OracleStore(path)) > 0  # shared
    assert "store" not in inspect.getsource(isolation.sandbox_solve)


# ---- regions --------------------------------------------------------------------------------
def test_regions_partition_nodes_and_users_with_halos():
    from fgamcd_opt.regions import split_regions

    inst = generate("metro", seed=0, n_nodes=16, n_users=120)
    regions = split_regions(inst, 4, halo_m=600.0)
    cores = np.concatenate([r.core for r in regions])
    assert sorted(cores.tolist()) == list(range(16))
    assert sorted(np.concatenate([r.users for r in regions]).tolist()) == list(range(120))
    sizes = [len(r.users) for r in regions]
    assert max(sizes) <= 2 * min(sizes)  # balanced by users
    for r in regions:
        assert set(inst.users.node[r.users].tolist()) <= set(r.core.tolist())
        assert not set(r.halo.tolist()) & set(r.core.tolist())
        for n in r.halo:  # every halo node is within reach of one of the region's users
            d = np.hypot(*(inst.users.positions_m[r.users] - inst.nodes.positions_m[n]).T)
            assert d.min() <= 600.0


@pytest.mark.parametrize("sidecar", [False, True])
def test_region_instances_draw_the_whole_instances_channels(sidecar):
    from fgamcd_opt.channels import ArrayChannels
    from fgamcd_opt.regions import split_regions, subinstance

    inst = generate("metro", seed=2, n_nodes=9, n_users=40)
    if sidecar:
        inst.channels = ArrayChannels(np.stack([inst.channel(k) for k in range(5)]))
    r = split_regions(inst, 3)[1]
    sub = subinstance(inst, r)
    for k in range(5):
        np.testing.assert_array_equal(sub.channel(k), inst.channel(k, r.users)[r.nodes])
        np.testing.assert_array_equal(sub.backhaul_rates(k),
                                      inst.backhaul_rates(k)[np.ix_(r.nodes, r.nodes)])
    assert (sub.nodes.storage_bytes[len(r.core):] == 0).all()
    np.testing.assert_array_equal(sub.error_radius, inst.error_radius[np.ix_(r.nodes, r.users)])


@pytest.mark.parametrize("solver", ["hybrid", "nocoop", "coarse"])
def test_stitched_plans_are_valid_and_complete(solver):
    from fgamcd_opt.evaluator import STRUCTURAL_KINDS
    from fgamcd_opt.regions import solve_regions

    inst = generate("metro", seed=4, n_nodes=9, n_users=45)
    plan, info = solve_regions(inst, solver, {}, 3)
    ev = evaluate(inst, plan)
    assert not [v for v in ev.violations if v.kind in STRUCTURAL_KINDS]
    assert info["regions"] == 3 and len(info["per_region"]) == 3
    if solver != "nocoop":  # nocoop may leave users without their PBs at their own node
        assert ev.complete
    seen = {(m.dst, m.block) for m in plan.migrations}
    assert len(seen) == len(plan.migrations)  # a node never receives a PB twice
    holds = plan.holds(inst.repository)
    assert not any(holds[m.dst, m.block] for m in plan.migrations)


def test_fgamcd_solve_regions_on_a_dask_cluster(tmp_path):
    from fgamcd_opt.cli.main import solve_main
    from fgamcd_opt.instance_io import save_instance

    inst = generate("metro", seed=4, n_nodes=9, n_users=45)
    path = tmp_path / "m.json"
    save_instance(inst, path)
    out = tmp_path / "p.plan.json"
    rc = solve_main([str(path), "--solver", "hybrid", "--regions", "3", "--dask-workers", "2",
                     "-o", str(out), "--oracle-store", str(tmp_path / "memo.sqlite")])
    assert rc == 0
    rec = json.loads(out.with_name("p.run.json").read_text())
    assert rec["metadata"]["regions"]["regions"] == 3
    assert "dask" in rec["metadata"]["regions"]["executor"]
    assert rec["total_delay_s"] is not None and rec["oracle_calls"] > 0
