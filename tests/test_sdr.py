"""Tests of the paper's SDR + DC beamforming subroutine (fgamcd_opt.oracle.sdr)."""

from __future__ import annotations

import numpy as np
import pytest

from fgamcd_opt.oracle import sdr
from fgamcd_opt.oracle.methods import MethodStatus, amplitude_upper_bound
from fgamcd_opt.oracle.problem import BeamProblem
from fgamcd_opt.oracle.sdr import clear_sdr_cache, sdr_cache_info, solve_sdr

RANK_ONE = (MethodStatus.OPTIMAL, MethodStatus.CONVERGED)


def random_problem(rng: np.random.Generator, p: int, v: int, d: int, rho_frac: float = 0.2,
                   scale: float = 50.0) -> BeamProblem:
    """Normalised problem with Table-II-like magnitudes: Rician-ish channels (a ULA line-of-sight
    part plus CN(0, I) scattering), per-link path-loss spread, rho ~ rho_frac ||g_{n,u}||."""
    k = 3.0
    steer = np.exp(1j * np.pi * np.sin(rng.uniform(-np.pi / 2, np.pi / 2, (p, v, 1)))
                   * np.arange(d))
    scat = (rng.normal(size=(p, v, d)) + 1j * rng.normal(size=(p, v, d))) / np.sqrt(2)
    g = np.sqrt(k / (k + 1)) * steer + np.sqrt(1 / (k + 1)) * scat
    g *= scale * rng.uniform(0.3, 1.0, (p, v, 1))
    rho = rho_frac * np.linalg.norm(g, axis=2) * rng.uniform(0.5, 1.5, (p, v))
    return BeamProblem(g, rho, np.ones(v))


def random_shapes(n: int, seed: int) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 4)), s)
            for s in range(n)]


def check_power(x: np.ndarray) -> None:
    assert np.all(np.isfinite(x))
    assert np.all(np.linalg.norm(x, axis=1) <= 1 + 1e-9)


@pytest.mark.parametrize("solver", ["SCS", "CLARABEL"])
def test_single_node_single_user_is_robust_mrt(solver):
    rng = np.random.default_rng(1)
    pr = random_problem(rng, 1, 1, 3)
    # p = 1 and budget = 1: the aggregate set is the per-node ball, so the SDR is exact
    out = solve_sdr(pr, budget=1.0, solver=solver)
    a = np.linalg.norm(pr.g[0, 0]) - pr.rho[0, 0]
    assert out.status is MethodStatus.OPTIMAL
    assert out.iterations == 0
    assert pr.amplitude(out.x)[0] == pytest.approx(a, rel=1e-4)
    assert out.extra["gamma"] == pytest.approx(a ** 2, rel=1e-4)
    check_power(out.x)


@pytest.mark.parametrize("case", random_shapes(14, seed=7))
def test_power_rank_one_and_guarantees(case):
    """Power, rank-one recovery, and the SDP's gamma as a certified lower bound of the exact
    worst case (aggregate set with budget >= p contains the per-node product set)."""
    p, v, d, seed = case
    rng = np.random.default_rng(100 + seed)
    pr = random_problem(rng, p, v, d)
    w = rng.uniform(0.5, 2.0, v)
    out = solve_sdr(pr, weights=w)
    check_power(out.x)
    assert out.status in RANK_ONE, out.message
    assert out.extra["rank_ratio"] <= 1e-6
    assert out.iterations <= 20
    if out.status is MethodStatus.OPTIMAL:
        assert out.iterations == 0
    gamma_u = out.extra["gamma"] * w ** 2
    np.testing.assert_allclose(out.extra["gamma_u"], gamma_u)
    exact = pr.amplitude(out.x) ** 2
    assert np.all(out.extra["snr_model"] >= (1 - 1e-4) * gamma_u)
    assert np.all(exact >= (1 - 1e-4) * gamma_u)
    # exact >= aggregate model (Cauchy-Schwarz), and nothing beats the relaxation bound
    assert np.all(exact >= out.extra["snr_model"] * (1 - 1e-9))
    assert out.extra["gamma"] <= out.extra["gamma_relaxation"] * (1 + 1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_sampled_errors_never_beat_reported_worst_case(seed):
    rng = np.random.default_rng(200 + seed)
    p, v, d = 3, 3, 2
    pr = random_problem(rng, p, v, d, rho_frac=0.3)
    out = solve_sdr(pr)
    x = out.x
    worst = pr.amplitude(x) ** 2
    # 200 errors on the boundary of every per-node ball: ||e_{n,u}|| = rho_{n,u}
    e = rng.normal(size=(200, p, v, d)) + 1j * rng.normal(size=(200, p, v, d))
    e *= (pr.rho / np.linalg.norm(e, axis=3))[..., None]
    realised = np.abs(np.einsum("snvd,nd->sv", (pr.g[None] + e).conj(), x)) ** 2
    assert np.all(realised >= worst[None] * (1 - 1e-9) - 1e-9)
    # and the adversarial error attains it: e_n = -rho_n conj(phase) x_n / ||x_n||
    sig = np.einsum("nvd,nd->v", pr.g.conj(), x)
    nx = np.linalg.norm(x, axis=1)
    unit = np.divide(x, nx[:, None], out=np.zeros_like(x), where=nx[:, None] > 0)
    e_adv = -pr.rho[:, :, None] * np.conj(sig / np.abs(sig))[None, :, None] * unit[:, None, :]
    adv = np.abs(np.einsum("nvd,nd->v", (pr.g + e_adv).conj(), x)) ** 2
    np.testing.assert_allclose(adv, worst, rtol=1e-9, atol=1e-9)


def test_floors_infeasible_and_feasible():
    rng = np.random.default_rng(3)
    pr = random_problem(rng, 2, 3, 3)
    base = solve_sdr(pr)
    assert base.status in RANK_ONE
    # infeasible: above the single-user optimum of every user
    bad = 4 * amplitude_upper_bound(pr) ** 2
    out = solve_sdr(pr, floors=bad)
    assert out.status is MethodStatus.INFEASIBLE
    check_power(out.x)
    # the beam is the penalty-free max-min solution without floors
    assert out.extra["gamma_relaxation"] == pytest.approx(base.extra["gamma_relaxation"],
                                                          rel=1e-5)
    # feasible: floors the max-min beam already meets under the aggregate model
    floors = base.extra["snr_model"] * np.array([0.9, 0.5, 0.95])
    out = solve_sdr(pr, floors=floors)
    assert out.status in RANK_ONE, out.message
    check_power(out.x)
    assert np.all(out.extra["snr_model"] >= floors * (1 - 1e-4))
    assert np.all(pr.amplitude(out.x) ** 2 >= floors * (1 - 1e-4))


def test_floors_reweight_toward_a_user():
    """A floor above what the max-min beam gives user 0 must be met (the max-min drops)."""
    rng = np.random.default_rng(4)
    pr = random_problem(rng, 2, 2, 2)
    base = solve_sdr(pr)
    single = amplitude_upper_bound(pr) ** 2
    floor0 = base.extra["snr_model"][0] + 0.3 * (single[0] - base.extra["snr_model"][0])
    floors = np.array([floor0, 0.0])
    out = solve_sdr(pr, floors=floors)
    if out.status is MethodStatus.INFEASIBLE:  # only allowed if the relaxation says so
        assert out.extra["infeasible_status"].startswith("infeasible")
    else:
        assert out.status in RANK_ONE
        assert out.extra["snr_model"][0] >= floor0 * (1 - 1e-4)


def test_degenerate_inputs_do_not_raise():
    rng = np.random.default_rng(5)
    # all-zero channels, perfect CSI
    pr = BeamProblem(np.zeros((2, 2, 3), complex), np.zeros((2, 2)), np.ones(2))
    out = solve_sdr(pr)
    check_power(out.x)
    assert out.extra["gamma"] == pytest.approx(0.0, abs=1e-9)
    # with floors > 0 that is infeasible
    out = solve_sdr(pr, floors=np.ones(2))
    assert out.status is MethodStatus.INFEASIBLE
    check_power(out.x)
    # one user with g = 0: the max-min is 0, the call still returns a valid beam
    pr = random_problem(rng, 2, 3, 2)
    g = pr.g.copy()
    g[:, 1, :] = 0
    pr0 = BeamProblem(g, pr.rho, pr.snr_required)
    out = solve_sdr(pr0)
    check_power(out.x)
    assert out.status in (*RANK_ONE, MethodStatus.ITERATION_LIMIT)
    assert abs(out.extra["gamma"]) <= 1e-6 * np.max(np.abs(pr.g)) ** 2
    # every user dead (rho >= ||g|| on every link)
    pr_dead = BeamProblem(pr.g, 2 * np.linalg.norm(pr.g, axis=2), pr.snr_required)
    out = solve_sdr(pr_dead)
    check_power(out.x)
    # perfect CSI (rho = 0) and the non-robust SDR (budget = 0) agree
    pr_perfect = BeamProblem(pr.g, np.zeros_like(pr.rho), pr.snr_required)
    a = solve_sdr(pr_perfect).extra["gamma_relaxation"]
    b = solve_sdr(pr, budget=0.0).extra["gamma_relaxation"]
    assert a == pytest.approx(b, rel=1e-5)
    # no users / no nodes
    out = solve_sdr(BeamProblem(np.zeros((2, 0, 3), complex), np.zeros((2, 0)), np.ones(0)))
    assert out.x.shape == (2, 3)


def test_bad_arguments_raise_value_error():
    pr = random_problem(np.random.default_rng(6), 1, 2, 2)
    with pytest.raises(ValueError):
        solve_sdr(pr, weights=np.array([1.0, 0.0]))
    with pytest.raises(ValueError):
        solve_sdr(pr, budget=-1.0)
    with pytest.raises(ValueError):
        solve_sdr(pr, solver="MOSEK")
    with pytest.raises(ValueError):
        solve_sdr(pr, mu_growth=0.5)


def test_compile_cache_is_reused():
    clear_sdr_cache()
    rng = np.random.default_rng(8)
    for solver in ("SCS", "CLARABEL"):
        key = "compiles_scs" if solver == "SCS" else "compiles_clarabel"
        before = sdr_cache_info()[key]
        first = solve_sdr(random_problem(rng, 2, 2, 2), solver=solver)
        assert first.extra["compile_time_s"] > 0
        assert sdr_cache_info()[key] == before + 1
        second = solve_sdr(random_problem(rng, 2, 2, 2), solver=solver)  # new data, same shape
        assert second.extra["compile_time_s"] == 0
        assert sdr_cache_info()[key] == before + 1
        # floors change the shape key (a second LMI per user)
        solve_sdr(random_problem(rng, 2, 2, 2), floors=np.zeros(2), solver=solver)
        assert sdr_cache_info()[key] == before + 2


@pytest.mark.parametrize("shape", [(1, 3, 2), (2, 2, 2), (2, 3, 3)])
def test_scs_and_clarabel_formulations_agree(shape):
    """The direct complex-cone SCS assembly and the cvxpy/DPP model are independent codes."""
    pr = random_problem(np.random.default_rng(9), *shape)
    w = np.linspace(1.0, 1.5, shape[1])
    a = solve_sdr(pr, weights=w, solver="SCS")
    b = solve_sdr(pr, weights=w, solver="CLARABEL")
    assert a.extra["solver"] == "SCS" and b.extra["solver"] == "CLARABEL"
    assert a.extra["gamma_relaxation"] == pytest.approx(b.extra["gamma_relaxation"], rel=1e-5)


def test_unreduced_problem_has_the_same_relaxation():
    """Per-node projection onto the channel span is exact for the SDR too (congruence argument),
    so the reduced and unreduced relaxations have the same value."""
    pr = random_problem(np.random.default_rng(10), 2, 2, 5)  # d = 5 > v = 2
    red, bases = pr.reduce()
    assert red.dim < pr.dim
    full = solve_sdr(pr)
    small = solve_sdr(red)
    assert full.extra["gamma_relaxation"] == pytest.approx(small.extra["gamma_relaxation"],
                                                           rel=1e-5)
    check_power(full.x)
    x = BeamProblem.lift(small.x, bases)
    assert np.all(pr.amplitude(x) ** 2 >= (1 - 1e-4) * small.extra["gamma_u"])


def test_time_limit_stops_dc_iterations():
    # seed chosen so that the relaxation is not rank one (asserted through the status)
    pr = random_problem(np.random.default_rng(13), 2, 4, 3)
    full = solve_sdr(pr)
    assert full.status is MethodStatus.CONVERGED and full.iterations >= 1
    out = solve_sdr(pr, time_limit=0.0)
    assert out.status is MethodStatus.ITERATION_LIMIT
    assert out.iterations == 0
    assert out.extra["rank_ratio"] > 1e-6
    check_power(out.x)
    # the cap on DC iterations reports the same way
    out = solve_sdr(pr, max_dc_iterations=0)
    assert out.status is MethodStatus.ITERATION_LIMIT and out.iterations == 0


class _Broken:
    """A backend whose every solve fails."""

    name = "BROKEN"
    compile_time = 0.0
    setup_time = 0.0

    def __init__(self, data):
        pass

    def solve(self, *args, **kwargs):
        raise RuntimeError("solver exploded")


def test_solver_failure_falls_back_then_reports(monkeypatch):
    pr = random_problem(np.random.default_rng(12), 2, 2, 2)
    ref = solve_sdr(pr)
    # SCS fails -> Clarabel (affordable at p d = 4) takes over
    monkeypatch.setitem(sdr._BACKENDS, "SCS", _Broken)
    out = solve_sdr(pr)
    assert out.status in RANK_ONE
    assert out.extra["solver"] == "SCS->CLARABEL"
    assert out.extra["gamma_relaxation"] == pytest.approx(ref.extra["gamma_relaxation"],
                                                          rel=1e-5)
    # both fail -> NUMERICAL_FAILURE with the robust-MRT fallback, no exception
    monkeypatch.setitem(sdr._BACKENDS, "CLARABEL", _Broken)
    out = solve_sdr(pr)
    assert out.status is MethodStatus.NUMERICAL_FAILURE
    check_power(out.x)
    assert np.any(pr.amplitude(out.x) > 0)


def test_dc_can_stall_at_a_non_rank_one_point():
    """Measured behaviour worth pinning: with mu = 1 this instance's DC sequence converges to a
    stationary point of the penalised problem that is not rank one (lambda_2/lambda_1 -> ~0.17),
    so the method honestly reports ITERATION_LIMIT; a larger mu reaches rank one."""
    pr = random_problem(np.random.default_rng(19), 2, 4, 3)
    out = solve_sdr(pr, max_dc_iterations=8)
    assert out.status is MethodStatus.ITERATION_LIMIT and out.iterations == 8
    assert out.extra["rank_ratio"] > 0.1
    check_power(out.x)
    # the beam is still valid: its aggregate-model SNR is what it is, never above the relaxation
    assert np.all(out.extra["snr_model"] <= out.extra["gamma_relaxation"] * (1 + 1e-6))
    out = solve_sdr(pr, mu=2.0)
    assert out.status is MethodStatus.CONVERGED and out.extra["rank_ratio"] <= 1e-6
    # so does the (non-paper) continuation mu_k = mu * growth^(k-1)
    out = solve_sdr(pr, mu_growth=2.0)
    assert out.status is MethodStatus.CONVERGED and out.extra["rank_ratio"] <= 1e-6
    assert np.all(pr.amplitude(out.x) ** 2 >= (1 - 1e-4) * out.extra["gamma_u"])
