"""The shared beamforming oracle: closed forms, structure, robustness, QoS search, memoisation.

(fast vs sdr comparisons live in test_oracle_vs_sdr.py; the SDR itself in test_sdr.py.)
"""

from __future__ import annotations

import numpy as np
import pytest

from fgamcd_opt.generators import generate
from fgamcd_opt.oracle import BeamformingOracle, BeamProblem, OracleStatus, normalised_problem
from fgamcd_opt.oracle.fast import solve_fast
from fgamcd_opt.oracle.methods import amplitude_upper_bound, robust_mrt


def random_problem(rng, p, v, m=8, rho=0.25, spread=(0.5, 2.0), snr_req=1.0):
    g = (rng.standard_normal((p, v, m)) + 1j * rng.standard_normal((p, v, m))) / np.sqrt(2)
    g *= rng.uniform(*spread, size=(p, v))[:, :, None]
    radius = rho * np.linalg.norm(g, axis=2) * rng.uniform(0.5, 1.5, size=(p, v))
    return BeamProblem(g, radius, np.full(v, snr_req))


def sample_worst(problem: BeamProblem, x: np.ndarray, rng, n=200) -> np.ndarray:
    """Realised amplitudes |sum (g + e)^H x| for errors on the ellipsoid boundaries
    (||e_{n,u}|| = rho_{n,u}), half of them adversarially phased. Shape (n, v)."""
    p, v, d = problem.g.shape
    out = np.empty((n, v))
    for s in range(n):
        e = rng.standard_normal((p, v, d)) + 1j * rng.standard_normal((p, v, d))
        if s % 2:  # push against the signal: e_n ~ -phase * x_n / ||x_n|| plus noise
            sig = np.einsum("nvd,nd->v", problem.g.conj(), x)
            ph = sig / np.maximum(np.abs(sig), 1e-300)
            xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
            e = -np.conj(ph)[None, :, None] * xn[:, None, :] * 3 + 0.3 * e
        e *= (problem.rho / np.maximum(np.linalg.norm(e, axis=2), 1e-300))[:, :, None]
        out[s] = np.abs(np.einsum("nvd,nd->v", (problem.g + e).conj(), x))
    return out


def test_single_node_single_user_is_robust_mrt():
    rng = np.random.default_rng(0)
    for _ in range(5):
        pr = random_problem(rng, 1, 1, m=6)
        out = solve_fast(pr)
        expected = np.linalg.norm(pr.g[0, 0]) - pr.rho[0, 0]
        assert pr.amplitude(out.x)[0] == pytest.approx(expected, rel=1e-6)
        # and the closed form helper agrees
        assert pr.amplitude(robust_mrt(pr).x)[0] == pytest.approx(expected, rel=1e-12)


def test_single_user_several_nodes_reaches_the_upper_bound():
    rng = np.random.default_rng(1)
    for _ in range(5):
        pr = random_problem(rng, 3, 1)
        out = solve_fast(pr)
        ub = amplitude_upper_bound(pr)[0]
        assert pr.amplitude(out.x)[0] == pytest.approx(ub, rel=1e-5)


@pytest.mark.parametrize("p,v", [(1, 3), (2, 2), (2, 4), (3, 3)])
def test_power_respected_and_bound_never_exceeded(p, v):
    rng = np.random.default_rng(10 * p + v)
    for _ in range(4):
        pr = random_problem(rng, p, v)
        out = solve_fast(pr)
        assert np.all(np.linalg.norm(out.x, axis=1) <= 1 + 1e-9)
        amp = pr.amplitude(out.x)
        assert np.all(amp <= amplitude_upper_bound(pr) * (1 + 1e-9))


def test_span_reduction_is_lossless():
    """Reduced problem solved and lifted = same exact objective; adding a component orthogonal
    to a node's served channels never raises any user's worst-case amplitude."""
    rng = np.random.default_rng(2)
    for _ in range(5):
        pr = random_problem(rng, 2, 3, m=10)
        red, bases = pr.reduce()
        assert red.dim <= 3
        out = solve_fast(red)
        x = BeamProblem.lift(out.x, bases)
        assert pr.min_snr(x) == pytest.approx(red.min_snr(out.x), rel=1e-9)
        for _ in range(10):
            z = rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape)
            for n in range(pr.n_nodes):
                q = bases[n]
                z[n] -= q @ (q.conj().T @ z[n])  # orthogonal to node n's channel span
            assert np.allclose(np.einsum("nvd,nd->v", pr.g.conj(), z), 0, atol=1e-9)
            y = x + 0.3 * z
            y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1.0)
            scale = np.linalg.norm(x + 0.3 * z, axis=1)
            # same parallel part, larger norm -> amplitudes can only drop
            assert np.all(pr.amplitude(x + 0.3 * z) <= pr.amplitude(x) + 1e-9)
            assert np.all(scale >= np.linalg.norm(x, axis=1) - 1e-12)
        # the unreduced solve reaches the same value (within the SCA tolerance)
        full = solve_fast(pr)
        assert pr.min_snr(full.x) == pytest.approx(pr.min_snr(x), rel=2e-3)


def test_sampled_errors_never_beat_the_reported_worst_case_robust():
    rng = np.random.default_rng(3)
    for _ in range(6):
        pr = random_problem(rng, 2, 3)
        x = solve_fast(pr).x
        reported = pr.amplitude(x)
        realised = sample_worst(pr, x, rng)
        assert np.all(realised >= reported[None, :] - 1e-9)
        # the adversarial samples get close to the worst case (the closed form is tight)
        assert np.all(realised.min(axis=0) <= reported + 0.05 * np.linalg.norm(pr.g, axis=(0, 2)))


def test_nonrobust_violates_qos_under_errors_where_robust_does_not():
    """The Fig. 15 effect: beams optimised on the estimates only can look QoS-feasible on h~
    while errors inside the ellipsoid push users below Q_u; robust beams are guaranteed."""
    inst = generate("paper-literal", seed=3, qos_gbps=(1.0, 2.0), node_layout="grid")
    oracle = BeamformingOracle()
    violations_nonrobust = 0
    checked = 0
    for k in inst.requested_blocks:
        users = tuple(inst.requesters(k))
        if len(users) < 2:
            continue
        if checked >= 25:
            break
        nodes = (int(inst.users.node[users[0]]),)
        robust = oracle.solve(inst, k, nodes, users, method="fast")
        naive = oracle.solve(inst, k, nodes, users, method="nonrobust")
        pr = normalised_problem(inst, k, nodes, users)
        for res in (robust, naive):
            x = res.beams / np.sqrt(inst.nodes.power_max_w[list(nodes)])[:, None]
            realised = sample_worst(pr, x, np.random.default_rng(int(k)), n=60)
            snr_real = realised.min(axis=0) ** 2
            meets = snr_real >= pr.snr_required * (1 - 1e-9)
            if res is robust and res.qos_feasible:
                assert meets.all(), "robust beams reported QoS-feasible were beaten by an error"
            if res is naive:
                nominal = np.abs(np.einsum("nvd,nd->v", pr.g.conj(), x)) ** 2
                if np.all(nominal >= pr.snr_required) and not meets.all():
                    violations_nonrobust += 1
        checked += 1
    assert checked >= 10
    assert violations_nonrobust >= 1


def test_dead_users_detected_without_a_solve():
    inst = generate("tiny", seed=0, error_c=1e6)  # error radius 1e-3: everyone out of reach
    oracle = BeamformingOracle()
    k = int(inst.requested_blocks[0])
    users = tuple(inst.requesters(k))
    res = oracle.solve(inst, k, (0, 1), users)
    assert res.status == OracleStatus.ZERO_RATE
    assert res.min_rate_bps == 0.0
    assert set(res.zero_rate_users) == set(users)
    assert not res.qos_feasible
    assert res.iterations == 0


def test_qos_feasibility_search_finds_floors_the_maxmin_point_misses():
    """Heterogeneous floors: the max-min SNR beam leaves the demanding user short, but a beam
    meeting every floor exists; the oracle must find it (search for feasibility, not a
    comparison of the max-min rate with the largest Q_u)."""
    rng = np.random.default_rng(7)
    found = 0
    for _ in range(30):
        pr = random_problem(rng, 2, 2, m=4, rho=0.1)
        x = solve_fast(pr).x
        snr = pr.amplitude(x) ** 2
        # floors: user 0 asks for more than the max-min point gives it, user 1 for less
        floors = np.array([snr.min() * 1.15, snr.min() * 0.3])
        ratio_pr = BeamProblem(pr.g, pr.rho, floors)
        q = solve_fast(ratio_pr, np.sqrt(floors))
        if ratio_pr.qos_ratio(q.x) < 1:
            continue
        f = solve_fast(ratio_pr, None, floors, init=q.x)
        assert np.all(ratio_pr.amplitude(f.x) ** 2 >= floors * (1 - 1e-7))
        found += 1
    assert found >= 3


def test_oracle_reports_qos_and_respects_power(paper_default):
    inst = paper_default
    oracle = BeamformingOracle()
    for k in inst.requested_blocks[:15]:
        users = tuple(inst.requesters(k))
        res = oracle.solve(inst, k, (0, 1, 2), users)
        assert res.beams.shape == (3, inst.antennas)
        assert np.all(res.power_w <= inst.nodes.power_max_w[:3] * (1 + 1e-9))
        below = [u for u, r in zip(users, res.rates_bps, strict=True)
                 if r < inst.users.qos_bps[u] * (1 - 1e-9)]
        if res.qos_feasible:
            assert not below
        else:
            assert res.qos_infeasible_users
        assert res.status in (OracleStatus.CONVERGED, OracleStatus.OPTIMAL,
                              OracleStatus.ZERO_RATE, OracleStatus.ITERATION_LIMIT)


def test_memoisation_and_bounded_cache(tiny_instance=None):
    inst = generate("tiny", seed=0)
    oracle = BeamformingOracle(cache_size=3)
    k = int(inst.requested_blocks[0])
    users = tuple(inst.requesters(k))
    a = oracle.solve(inst, k, (0,), users)
    b = oracle.solve(inst, k, (0,), users)
    assert a is b and oracle.hits == 1 and oracle.misses == 1
    c = oracle.solve(inst, k, (0,), users, n_random_starts=2)  # other options: new solve
    assert c is not a and oracle.misses == 2
    for n in (1, 2):
        oracle.solve(inst, k, (n,), users)
    assert len(oracle._cache) == 3  # bounded
    oracle.solve(inst, k, (0,), users)  # evicted -> solved again
    assert oracle.misses == 5


def test_never_raises_on_degenerate_channels():
    oracle_pr = BeamProblem(np.zeros((2, 2, 3), complex), np.full((2, 2), 0.1), np.ones(2))
    out = solve_fast(oracle_pr)
    assert np.all(np.isfinite(out.x))
    assert np.all(np.linalg.norm(out.x, axis=1) <= 1 + 1e-9)
    assert oracle_pr.dead_users().tolist() == [0, 1]
