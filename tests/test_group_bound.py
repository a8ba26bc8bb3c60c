"""The multicast group bound and the partition bound (fgamcd_opt/group_bound.py,
docs/milp.md section 3.5): no beam may beat a group bound, no partition may beat a PB bound."""

from __future__ import annotations

import numpy as np
import pytest

from fgamcd_opt.generators import generate
from fgamcd_opt.group_bound import (
    PHASE_RTOL,
    PartitionBound,
    amplitude_bound,
    best_partition,
    refine_concurrently,
    set_partitions,
)
from fgamcd_opt.oracle import BeamformingOracle
from fgamcd_opt.oracle.core import normalised_problem
from fgamcd_opt.oracle.fast import solve_fast
from fgamcd_opt.oracle.methods import amplitude_upper_bound
from fgamcd_opt.oracle.problem import BeamProblem
from fgamcd_opt.phase_bound import _BoxSocp, phase_bound
from fgamcd_opt.planner import PlannerOptions, plan_group


def random_problem(seed: int, p: int, v: int, d: int, rho_scale: float = 0.3) -> BeamProblem:
    rng = np.random.default_rng(seed)
    g = (rng.standard_normal((p, v, d)) + 1j * rng.standard_normal((p, v, d))) \
        * rng.uniform(0.2, 2.0, (p, v, 1))
    rho = rng.uniform(0.0, rho_scale, (p, v)) * np.linalg.norm(g, axis=2).mean()
    return BeamProblem(g, rho, np.zeros(v))


def best_beam_amplitude(pr: BeamProblem, starts: int = 10, seed: int = 0) -> float:
    out = solve_fast(pr, n_random_starts=starts, seed=seed)
    return float(pr.amplitude(out.x).min())


def grid_amplitude(pr: BeamProblem, steps: int = 60) -> float:
    """Brute force for scalar beams (d = 1) from two nodes: node 0 real in [0, 1] (a common
    phase is free), node 1 over a polar grid of the unit disc."""
    assert pr.dim == 1 and pr.n_nodes == 2
    best = 0.0
    mags = np.linspace(0, 1, steps)
    phases = np.linspace(0, 2 * np.pi, 2 * steps, endpoint=False)
    for a in mags:
        for b in mags:
            x1 = b * np.exp(1j * phases)  # all phases at once
            sig = np.abs(pr.g[0, :, 0].conj()[:, None] * a + pr.g[1, :, 0].conj()[:, None] * x1)
            amp = sig - (pr.rho[0][:, None] * a + pr.rho[1][:, None] * b)
            best = max(best, float(np.maximum(amp, 0).min(axis=0).max()))
    return best


def test_orthogonal_users_bound_is_tight_and_beats_per_user():
    # one node, two users on orthogonal channels, no error: max-min |x_1|, |x_2| = 1/sqrt(2)
    g = np.zeros((1, 2, 2), complex)
    g[0, 0, 0] = g[0, 1, 1] = 1.0
    pr = BeamProblem(g, np.zeros((1, 2)), np.zeros(2))
    ub, info = amplitude_bound(pr)
    assert info["per_user"] == pytest.approx(1.0)
    assert 1 / np.sqrt(2) - 1e-6 <= ub <= 0.72
    assert info["source"] in ("sdp", "phase")


@pytest.mark.parametrize("seed", range(6))
def test_bound_above_brute_force_scalar_beams(seed):
    pr = random_problem(seed, p=2, v=3, d=1)
    ub, _ = amplitude_bound(pr)
    assert grid_amplitude(pr) <= ub * (1 + 1e-9)
    assert ub <= amplitude_upper_bound(pr).min() * (1 + 1e-12)


@pytest.mark.parametrize("seed,p,v,d", [(0, 2, 2, 2), (1, 3, 3, 2), (2, 3, 4, 3), (3, 2, 5, 3),
                                        (4, 4, 3, 2)])
def test_no_multistart_beam_beats_the_bound(seed, p, v, d):
    pr = random_problem(seed, p, v, d)
    ub, _ = amplitude_bound(pr)
    assert best_beam_amplitude(pr) <= ub * (1 + 1e-9)


def test_no_beam_beats_the_bound_on_real_clusters():
    """Real paper-default groups (the largest requester sets, several node sets), 10-start
    beams; and the bound must be strictly tighter than the per-user bound on a 5+ user group."""
    inst = generate("paper-default", seed=1)
    blocks = sorted(inst.requested_blocks, key=lambda k: (-len(inst.requesters(k)), k))
    tighter = 0
    for k, nodes in [(blocks[0], (0, 1, 2, 3, 4, 5)), (blocks[1], (1, 2, 4)),
                     (blocks[30], (0, 3)), (blocks[60], (2, 3, 5))]:
        users = inst.requesters(k)
        pr = normalised_problem(inst, int(k), nodes, users)
        ub, info = amplitude_bound(pr)
        assert best_beam_amplitude(pr, starts=6) <= ub * (1 + 1e-9)
        tighter += len(users) >= 5 and ub < 0.9 * info["per_user"]
    assert tighter >= 1


_partitions = set_partitions  # one implementation, in group_bound.py


def test_partition_dp_matches_enumeration():
    rng = np.random.default_rng(0)
    for n in range(1, 6):
        costs = {m: float(rng.uniform(0.5, 3.0)) for m in range(1, 1 << n)}
        want = min(sum(costs[sum(1 << i for i in grp)] for grp in part)
                   for part in _partitions(list(range(n))))
        assert best_partition(n, costs.__getitem__)[0] == pytest.approx(want)


def test_partition_count_bell_number():
    assert sum(1 for _ in _partitions(list(range(7)))) == 877


def test_pb_bound_below_every_partition_plan():
    """Exhaustive over the partitions of a PB's requesters (each group planned by the planner
    with every node free): the partition bound is below every plan's broadcast time."""
    inst = generate("tiny", seed=5, n_nodes=3, n_users=6)
    oracle = BeamformingOracle("fast")
    nodes = tuple(range(inst.n_nodes))
    checked = 0
    for k in inst.requested_blocks:
        users = [int(u) for u in inst.requesters(k)]
        if len(users) < 2 or len(users) > 4:
            continue
        pb = PartitionBound(inst, int(k), users)
        lb, info = pb.delay_lb(nodes)
        best = np.inf
        for part in _partitions(users):
            t = 0.0
            for grp in part:
                g = plan_group(inst, int(k), grp, nodes, oracle, PlannerOptions())
                t += g.broadcast_s
            best = min(best, t)
        assert lb <= best * (1 + 1e-9)
        checked += 1
    assert checked >= 2


def test_concurrent_refinement_equals_sequential_and_joins_its_workers():
    """Group bounds computed in 2 worker processes leave exactly the memo (group values and
    refined set) and PB bounds of the sequential lazy DP, and no worker process behind."""
    import multiprocessing

    inst = generate("tiny", seed=5, n_nodes=3, n_users=6)
    oracle = BeamformingOracle("fast")
    nodes = tuple(range(inst.n_nodes))
    blocks = [int(k) for k in inst.requested_blocks if len(inst.requesters(k)) >= 3][:4]
    assert len(blocks) >= 2

    def bounds(k):
        users = [int(u) for u in inst.requesters(k)]
        pb = PartitionBound(inst, k, users)
        pb.seed_achieved(nodes, oracle.solve(inst, k, nodes, users).rates_bps)
        return pb

    seq = {k: bounds(k) for k in blocks}
    par = {k: bounds(k) for k in blocks}
    before = set(multiprocessing.active_children())
    done = refine_concurrently([(pb, nodes) for pb in par.values()], workers=2)
    assert set(multiprocessing.active_children()) <= before
    assert done >= len(blocks)
    for k in blocks:
        lb_seq, info_seq = seq[k].delay_lb(nodes)
        n_groups = par[k].stats.sdp_groups
        lb_par, info_par = par[k].delay_lb(nodes)
        assert par[k].stats.sdp_groups == n_groups  # everything was memoised
        assert lb_par == lb_seq and info_par == info_seq
        assert par[k]._amp == seq[k]._amp and par[k]._refined == seq[k]._refined


# ---------------------------------------------------------------------------------------------
# the phase branch and bound (fgamcd_opt/phase_bound.py)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_box_relaxation_holds_every_beam_in_its_box(seed):
    """The box SOCP's value is >= the min amplitude of any beam whose received phases lie in the
    box (arcs of random widths, some wider than a half plane), the relaxation's core claim."""
    rng = np.random.default_rng(100 + seed)
    pr = random_problem(seed, p=3, v=4, d=2, rho_scale=0.2)
    scale = float(amplitude_upper_bound(pr).min())
    socp = _BoxSocp(BeamProblem(pr.g / scale, pr.rho / scale, pr.snr_required))
    checked = 0
    for _ in range(40):
        x = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
        x *= rng.uniform(0.2, 1.0, (3, 1)) / np.linalg.norm(x, axis=1, keepdims=True)
        sig = np.einsum("nvd,nd->v", pr.g.conj(), x)
        x = x * np.exp(-1j * np.angle(sig[0]))  # rotation: user 0's phase is 0
        phase = np.angle(np.einsum("nvd,nd->v", pr.g.conj(), x))
        amp = float(pr.amplitude(x).min()) / scale
        half = rng.uniform(0.0, 2.2, pr.n_users)
        off = rng.uniform(-1, 1, pr.n_users) * half
        lo, hi = phase - half + off, phase + half + off  # contains phase
        lo[0] = hi[0] = 0.0
        val, _ = socp.solve(lo, hi)
        assert val is not None
        assert amp <= val + 1e-7
        checked += amp > 0
    assert checked >= 5


@pytest.mark.parametrize("seed", range(6))
def test_phase_bound_above_brute_force_scalar_beams(seed):
    pr = random_problem(seed, p=2, v=3, d=1)
    res = phase_bound(pr, max_boxes=3000)
    assert grid_amplitude(pr) <= res.bound * (1 + 1e-9)
    # the incumbent is a real beam's exact amplitude, below the bound
    assert res.x is not None
    assert float(pr.amplitude(res.x).min()) == pytest.approx(res.incumbent, rel=1e-9, abs=1e-12)
    assert np.all(np.linalg.norm(res.x, axis=1) <= 1 + 1e-12)
    assert res.incumbent <= res.bound * (1 + 1e-9)
    assert res.converged  # two free phases at most: it must close


@pytest.mark.parametrize("seed,p,v,d", [(0, 2, 2, 2), (1, 3, 3, 2), (2, 3, 4, 3), (3, 2, 5, 3),
                                        (4, 4, 3, 2)])
def test_no_multistart_beam_beats_the_phase_bound(seed, p, v, d):
    pr = random_problem(seed, p, v, d)
    res = phase_bound(pr, max_boxes=1500)
    best = best_beam_amplitude(pr, starts=10)
    assert best <= res.bound * (1 + 1e-9)
    assert float(pr.amplitude(res.x).min()) == pytest.approx(res.incumbent, rel=1e-9, abs=1e-12)


def test_phase_bound_on_real_clusters_beats_the_sdp():
    """Real paper-default groups of 2-5 requesters: no 10-start beam beats the combined bound,
    which is never above the per-user bound nor (beyond the branch and bound's stopping
    tolerance) above the SDP alone, and is strictly tighter than the SDP on some group."""
    inst = generate("paper-default", seed=0)
    cases = [(95, (1, 3, 4)), (96, (1, 3)), (214, (0, 2, 3, 5)), (31, (1, 2, 4))]
    tighter = 0
    for k, nodes in cases:
        users = inst.requesters(k)
        assert 2 <= len(users) <= 5
        pr = normalised_problem(inst, k, nodes, users)
        ub, info = amplitude_bound(pr)
        sdp, _ = amplitude_bound(pr, phase_boxes=0)
        assert best_beam_amplitude(pr, starts=10) <= ub * (1 + 1e-9)
        assert ub <= info["per_user"] * (1 + 1e-12)
        assert np.log1p(ub**2) <= np.log1p(sdp**2) * (1 + PHASE_RTOL) + 1e-9
        tighter += ub < 0.95 * sdp
    assert tighter >= 1


def test_cluster_superset_holds_every_plan_the_cluster_represents():
    """docs/milp.md section 3.5 (cluster bounds): a plan whose PB-k participants are Lam is
    represented by the minimal cluster S reached by removing nodes that do not raise D_k, and
    Lam must lie inside cluster_superset(S), the node set whose partition bound S then gets."""
    from fgamcd_solvers.milp import formulation as milp

    from fgamcd_opt.bounds import link_amplitude_bound

    inst = generate("paper-default", seed=0)
    rng = np.random.default_rng(7)
    checked = grown = 0
    for k in [k for k in inst.requested_blocks if len(inst.requesters(k)) >= 2][:40]:
        o, _, _ = milp.optimistic_block(inst, int(k))
        link = link_amplitude_bound(inst, o.block, o.users)
        noise = inst.users.noise_w[list(o.users)]
        rows = {tuple(np.flatnonzero(c)): i for i, c in enumerate(o.clusters)}

        def delay(nodes, link=link, noise=noise, size=float(o.size_bytes)):
            m = np.zeros((1, inst.n_nodes), dtype=bool)
            m[0, list(nodes)] = True
            return milp._optimistic_delays(m, link, noise, inst.bandwidth_hz,
                                           size)[0] if nodes else np.inf

        for _ in range(4):
            lam = sorted(int(n) for n in np.flatnonzero(rng.random(inst.n_nodes) < 0.7))
            if not np.isfinite(delay(lam)):
                continue
            cur = list(lam)
            changed = True
            while changed:
                changed = False
                for m in list(cur):
                    rest = [n for n in cur if n != m]
                    if delay(rest) <= delay(cur):
                        cur, changed = rest, True
                        break
            sup = milp.cluster_superset(inst, o, rows[tuple(cur)])
            assert set(lam) <= set(sup)
            checked += 1
            grown += len(lam) > len(cur)
    assert checked >= 40 and grown >= 5


@pytest.mark.parametrize("seed", range(3))
def test_subgroup_bound_above_brute_force_scalar_beams(seed):
    # 6 users: the phase bound of a 4-user subgroup, and the SDP (docs/milp.md section 3.5)
    pr = random_problem(100 + seed, p=2, v=6, d=1)
    ub, info = amplitude_bound(pr)
    assert "subgroup" in info
    assert grid_amplitude(pr) <= ub * (1 + 1e-9)


@pytest.mark.parametrize("seed,p,v,d", [(5, 2, 6, 2), (6, 3, 7, 2)])
def test_no_multistart_beam_beats_the_subgroup_bound(seed, p, v, d):
    pr = random_problem(seed, p, v, d)
    ub, info = amplitude_bound(pr)
    assert "subgroup" in info
    assert best_beam_amplitude(pr) <= ub * (1 + 1e-9)


def test_subgroup_bound_tighter_than_the_sdp_on_a_seven_user_group():
    """docs/milp.md section 3.5 (subgroups): PB 77 of paper-default seed 0 (7 requesters, all
    nodes): the phase bound of the greedy 4-user subgroup is below the lifted SDP's, and no
    10-start beam beats it."""
    inst = generate("paper-default", seed=0)
    users = inst.requesters(77)
    assert len(users) == 7
    pr = normalised_problem(inst, 77, tuple(range(inst.n_nodes)), users)
    sub, sub_info = amplitude_bound(pr, steps=0)  # per-user and subgroup bounds, no SDP
    ub, info = amplitude_bound(pr)
    sdp, _ = amplitude_bound(pr, subgroup=False)
    assert sub_info["source"] == "subgroup" and sub < 0.95 * sdp
    # the secant search starts from the subgroup bound, so the combined bound is no weaker
    # (its source label may read "sdp" where the rescaled start differs only by round-off)
    assert ub <= sub * (1 + 1e-12)
    assert best_beam_amplitude(pr, starts=10) <= ub * (1 + 1e-9)
