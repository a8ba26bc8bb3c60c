"""The ground truth: exact worst-case rates (rates.py) and the delay evaluator (evaluator.py).

Numbers are checked against formulas written out here, independently of the library:
worst-case amplitude max(0, |sum_n h_n^H w_n| - sum_n ||w_n|| / sqrt(c_n)), rate
B log2(1 + a^2 / sigma^2), broadcast delay 8 S / min rate, migration 8 S / R^bac.
"""

from __future__ import annotations

import cmath
import json
import math

import numpy as np
import pytest

from fgamcd_opt.evaluator import evaluate
from fgamcd_opt.oracle import BeamformingOracle
from fgamcd_opt.plan import DeliveryUnit, Migration, Plan
from fgamcd_opt.rates import (
    nominal_amplitude,
    rate_from_amplitude,
    robust_amplitude,
    worst_case_rates,
)


def crandn(rng, shape, scale=1.0):
    return scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)


def hand_rate(h, w, c, sigma2, bandwidth):
    """Worst-case rate of one user, written out with plain Python complex arithmetic.
    h, w: lists (one entry per node) of lists (per antenna) of complex."""
    signal = sum(sum(hi.conjugate() * wi for hi, wi in zip(hn, wn, strict=True))
                 for hn, wn in zip(h, w, strict=True))
    margin = sum(math.sqrt(sum(abs(wi) ** 2 for wi in wn)) / math.sqrt(cn)
                 for wn, cn in zip(w, c, strict=True))
    amp = max(0.0, abs(signal) - margin)
    return bandwidth * math.log2(1.0 + amp * amp / sigma2)


def assert_clean(ev, inst):
    """Nothing is NaN; the parts are finite; the total is finite exactly when the plan is
    complete and breaks at most QoS (else +inf, written as JSON null); strict JSON."""
    for x in (ev.delivered_delay_s, ev.migration_delay_s, ev.broadcast_delay_s):
        assert math.isfinite(x)
    comparable = ev.complete and all(v.kind == "qos" for v in ev.violations)
    assert math.isfinite(ev.total_delay_s) == comparable
    if comparable:
        assert ev.total_delay_s == ev.delivered_delay_s
    d = ev.to_dict(inst)
    json.dumps(d, allow_nan=False)
    assert (d["total_delay_s"] is None) == (not comparable)


# ---------------------------------------------------------------------------------------
# hand-computed single links
# ---------------------------------------------------------------------------------------
SINGLE_CASES = {
    # M = 1: |h| = 5e-3, |w| = 0.8, radius 1e-3: amplitude 4e-3 - 8e-4 = 3.2e-3, SNR 10240
    1: ([3e-3 + 4e-3j], [0.8 * cmath.exp(0.3j)]),
    2: ([1e-3 + 2e-3j, -1.5e-3 + 0.5e-3j], [0.6 - 0.2j, 0.3 + 0.5j]),
}


@pytest.mark.parametrize("m", [1, 2])
def test_single_link_rate_delay_match_hand_computation(make_instance, m):
    h, w = SINGLE_CASES[m]
    c, sigma2, bw, size = 1e6, 1e-9, 1e6, 5000
    inst = make_instance(np.array(h).reshape(1, 1, 1, m), [size], [(0,)], [0], c=c,
                         noise_w=sigma2, bandwidth_hz=bw, power_w=1.0)
    plan = Plan(cache=[{0}], units=[DeliveryUnit(0, (0,), (0,), beams=np.array([w]))])
    ev = evaluate(inst, plan)
    rate = hand_rate([h], [w], [c], sigma2, bw)
    if m == 1:  # fully by hand: B log2(1 + (5e-3 * 0.8 - 0.8 * 1e-3)^2 / 1e-9)
        assert rate == pytest.approx(1e6 * math.log2(1 + 10240), rel=1e-12)
    assert ev.units[0].rates_bps[0] == pytest.approx(rate, rel=1e-12)
    assert ev.units[0].delay_s == pytest.approx(8 * size / rate, rel=1e-12)
    assert ev.total_delay_s == pytest.approx(8 * size / rate, rel=1e-12)
    assert ev.broadcast_delay_s == pytest.approx(ev.total_delay_s)
    assert ev.migration_delay_s == 0.0
    assert ev.status == "feasible", ev.violations
    assert ev.units[0].beam_source == "plan"
    assert ev.units[0].power_w[0] == pytest.approx(sum(abs(x) ** 2 for x in w))


@pytest.mark.parametrize("m", [1, 2])
def test_migration_then_broadcast_total_is_sum_of_both(make_instance, m):
    h, w = SINGLE_CASES[m]
    c, sigma2, bw, size = 1e6, 1e-9, 1e6, 7000
    chan = np.zeros((1, 2, 1, m), complex)
    chan[0, 1, 0] = h  # the user hears node 1 only
    rates = np.array([[0.0, 2e6], [3e6, 0.0]])  # 0 -> 1 at 2 Mbps
    inst = make_instance(chan, [size], [(0,)], [0], user_nodes=[1], c=c, noise_w=sigma2,
                         bandwidth_hz=bw, backhaul_bps=rates, storage_bytes=[size, 0])
    plan = Plan(cache=[{0}, set()], migrations=[Migration(0, 1, 0)],
                units=[DeliveryUnit(0, (0,), (1,), beams=np.array([w]))])
    ev = evaluate(inst, plan)
    rate = hand_rate([h], [w], [c], sigma2, bw)
    assert ev.status == "feasible", ev.violations  # node 1 stores nothing: buffer is free
    assert ev.migration_delay_s == pytest.approx(8 * size / 2e6, rel=1e-12)
    assert ev.block_migration_s[0] == pytest.approx(8 * size / 2e6, rel=1e-12)
    assert ev.broadcast_delay_s == pytest.approx(8 * size / rate, rel=1e-12)
    assert ev.total_delay_s == pytest.approx(8 * size / rate + 8 * size / 2e6, rel=1e-12)
    assert ev.storage_used_bytes.tolist() == [size, 0]
    assert ev.n_migrations == 1


def test_comp_two_nodes_per_link_error_shapes_and_min_over_users(make_instance):
    """Two nodes, two users, per-link c: rates by hand, delay = 8 S / the smaller rate."""
    rng = np.random.default_rng(3)
    m, size, sigma2, bw = 3, 4321, 2e-9, 5e6
    chan = crandn(rng, (1, 2, 2, m), 1e-3)
    c = np.array([[1e8, 4e8], [2.5e7, 1e9]])  # (N, U)
    beams = crandn(rng, (2, m), 0.5)
    inst = make_instance(chan, [size], [(0,)], [0, 0], c=c, noise_w=sigma2, bandwidth_hz=bw,
                         power_w=10.0)
    plan = Plan(cache=[{0}, {0}], units=[DeliveryUnit(0, (0, 1), (0, 1), beams=beams)])
    ev = evaluate(inst, plan)
    expected = [hand_rate([list(chan[0, 0, u]), list(chan[0, 1, u])], [list(b) for b in beams],
                          [c[0, u], c[1, u]], sigma2, bw) for u in range(2)]
    assert min(expected) > 0
    np.testing.assert_allclose(ev.units[0].rates_bps, expected, rtol=1e-12)
    assert ev.total_delay_s == pytest.approx(8 * size / min(expected), rel=1e-12)


# ---------------------------------------------------------------------------------------
# the closed form against the actual minimum over the ellipsoids
# ---------------------------------------------------------------------------------------
def _value(h, w, e):
    return abs(np.sum(np.conj(h + e) * w))


def _random_case(seed, clipped=False):
    rng = np.random.default_rng(seed)
    p, m = int(rng.integers(1, 4)), int(rng.integers(2, 4))
    h, w = crandn(rng, (p, m)), crandn(rng, (p, m))
    s = abs(np.sum(np.conj(h) * w))
    wn = np.linalg.norm(w, axis=1)
    # radii whose total margin sum_n r_n ||w_n|| is a chosen fraction of the signal
    share = rng.dirichlet(np.ones(p))
    frac = rng.uniform(1.2, 3.0) if clipped else rng.uniform(0.05, 0.9)
    r = frac * s * share / wn
    return h, w, r, s


def _analytic_worst_error(h, w, r, scale=1.0):
    """e_n = -r_n conj(s)/|s| w_n/||w_n|| (scaled): every node's error opposes the signal."""
    s = np.sum(np.conj(h) * w)
    wn = np.linalg.norm(w, axis=1, keepdims=True)
    return -scale * r[:, None] * np.conj(s) / abs(s) * w / wn


def _numerical_min(h, w, r, starts, rng, iterations=4000):
    """min |sum_n (h_n + e_n)^H w_n| over ||e_n|| <= r_n by projected gradient descent on
    f(e) = |z|^2, z = s + sum_n e_n^H w_n (convex in e over a product of balls), from random
    feasible starts. Gradient: df/d conj-free e_n = 2 conj(z) w_n."""
    p, m = h.shape
    s = np.sum(np.conj(h) * w)
    step = 1.0 / (2.0 * np.sum(np.abs(w) ** 2) * p)
    e = crandn(rng, (starts, p, m))
    e *= (r[None, :] / np.linalg.norm(e, axis=2))[..., None] * rng.uniform(0, 1, (starts, p, 1))
    for _ in range(iterations):
        z = s + np.sum(np.conj(e) * w[None], axis=(1, 2))
        e = e - step * 2.0 * np.conj(z)[:, None, None] * w[None]
        norms = np.linalg.norm(e, axis=2)
        e *= np.minimum(1.0, r[None, :] / np.maximum(norms, 1e-300))[..., None]
    assert np.all(np.linalg.norm(e, axis=2) <= r[None] * (1 + 1e-12))
    return min(_value(h, w, x) for x in e)


@pytest.mark.parametrize("seed", range(10))
def test_closed_form_equals_minimum_over_ellipsoids(seed):
    h, w, r, s = _random_case(seed)
    closed = robust_amplitude(h[:, None, :], r[:, None], w)[0]
    assert closed == pytest.approx(s - np.sum(r * np.linalg.norm(w, axis=1)), rel=1e-12)
    assert closed > 0
    # 1) attained by the analytic worst-case error (a feasible point)
    e = _analytic_worst_error(h, w, r)
    assert np.all(np.linalg.norm(e, axis=1) <= r * (1 + 1e-12))
    assert _value(h, w, e) == pytest.approx(closed, rel=1e-9)
    # 2) a lower bound on every sampled error realisation (interior and boundary)
    rng = np.random.default_rng(100 + seed)
    p, m = h.shape
    for _ in range(2000 // 50):
        d = crandn(rng, (50, p, m))
        d /= np.linalg.norm(d, axis=2, keepdims=True)
        rad = r[None, :, None] * rng.uniform(0, 1, (50, p, 1)) ** (1 / (2 * m))
        rad[:25] = r[None, :, None]  # half of them on the boundary
        vals = np.abs(np.sum(np.conj(h[None] + rad * d) * w[None], axis=(1, 2)))
        assert vals.min() >= closed * (1 - 1e-12)
    # 3) matches an independent numerical minimisation
    num = _numerical_min(h, w, r, starts=4, rng=rng)
    assert num >= closed * (1 - 1e-12)
    assert num == pytest.approx(closed, rel=1e-6, abs=1e-9 * s)


@pytest.mark.parametrize("seed", range(4))
def test_closed_form_clips_at_zero_when_margin_exceeds_signal(seed):
    h, w, r, s = _random_case(seed, clipped=True)
    margin = np.sum(r * np.linalg.norm(w, axis=1))
    assert margin > s
    closed = robust_amplitude(h[:, None, :], r[:, None], w)
    assert closed.tolist() == [0.0]
    assert worst_case_rates(h[:, None, :], r[:, None], w, 1e-9, 1e6).tolist() == [0.0]
    # the errors really can cancel the signal: scale the opposing error to |s| / margin
    e = _analytic_worst_error(h, w, r, scale=s / margin)
    assert np.all(np.linalg.norm(e, axis=1) <= r * (1 + 1e-12))
    assert _value(h, w, e) <= 1e-12 * s
    assert _numerical_min(h, w, r, starts=2, rng=np.random.default_rng(seed)) <= 1e-6 * s


def test_kernel_vectorised_over_users_matches_per_user_formula():
    rng = np.random.default_rng(11)
    p, v, m = 3, 4, 2
    h = crandn(rng, (p, v, m))
    w = crandn(rng, (p, m))
    r = rng.uniform(0, 0.2, (p, v))
    got = robust_amplitude(h, r, w)
    for u in range(v):
        s = abs(sum(np.vdot(h[n, u], w[n]) for n in range(p)))
        marg = sum(r[n, u] * np.linalg.norm(w[n]) for n in range(p))
        assert got[u] == pytest.approx(max(0.0, s - marg), rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(nominal_amplitude(h, w), robust_amplitude(h, 0 * r, w), rtol=1e-14)
    rates = rate_from_amplitude(got, 2e-9, 3e6)
    np.testing.assert_allclose(rates, 3e6 * np.log2(1 + got**2 / 2e-9), rtol=1e-12)


# ---------------------------------------------------------------------------------------
# invariants
# ---------------------------------------------------------------------------------------
def test_adding_phase_aligned_mrt_node_never_lowers_the_amplitude():
    """Precisely: for one user with participants P and any beams w_P, adding a node n with the
    phase-aligned MRT beam w_n = sqrt(P_n) h_n/||h_n|| * s/|s| (s = sum_P h^H w) raises the
    nominal amplitude by exactly sqrt(P_n) ||h_n|| and the worst-case amplitude before clipping
    by sqrt(P_n) (||h_n|| - r_n): never lower when ||h_n|| >= r_n. (With an arbitrary beam for
    the new node the nominal amplitude can drop; checked too, so the precondition matters.)"""
    rng = np.random.default_rng(5)
    dropped = 0
    for _ in range(200):
        p, m = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        h = crandn(rng, (p + 1, 1, m))
        w = crandn(rng, (p, m))
        power = rng.uniform(0.1, 4.0)
        r = rng.uniform(0, 0.5, (p + 1, 1)) * np.linalg.norm(h, axis=2)  # r_n < ||h_n||
        s = np.sum(np.conj(h[:p, 0]) * w)
        hn = h[p, 0]
        w_new = math.sqrt(power) * hn / np.linalg.norm(hn) * s / abs(s)
        w_all = np.vstack([w, w_new])
        before = nominal_amplitude(h[:p], w)[0]
        after = nominal_amplitude(h, w_all)[0]
        assert after >= before
        assert after == pytest.approx(before + math.sqrt(power) * np.linalg.norm(hn), rel=1e-12)
        rb = robust_amplitude(h[:p], r[:p], w)[0]
        ra = robust_amplitude(h, r, w_all)[0]
        assert ra >= rb
        unclipped = before - np.sum(r[:p, 0] * np.linalg.norm(w, axis=1))
        gain = math.sqrt(power) * (np.linalg.norm(hn) - r[p, 0])
        assert ra == pytest.approx(max(0.0, unclipped + gain), rel=1e-9, abs=1e-12)
        # an anti-aligned beam of the same power can lower it
        anti = nominal_amplitude(h, np.vstack([w, -w_new]))[0]
        dropped += anti < before
    assert dropped > 100


def test_adding_aligned_node_in_evaluator_raises_rate(make_instance):
    rng = np.random.default_rng(8)
    m = 3
    chan = crandn(rng, (1, 2, 1, m), 1e-3)
    inst = make_instance(chan, [1000], [(0,)], [0], c=1e9)
    w0 = crandn(rng, (1, m), 0.5)
    s = np.vdot(chan[0, 0, 0], w0[0])
    h1 = chan[0, 1, 0]
    w1 = h1 / np.linalg.norm(h1) * s / abs(s)
    one = evaluate(inst, Plan(cache=[{0}, {0}],
                              units=[DeliveryUnit(0, (0,), (0,), beams=w0)]))
    two = evaluate(inst, Plan(cache=[{0}, {0}],
                              units=[DeliveryUnit(0, (0,), (0, 1), beams=np.vstack([w0, w1]))]))
    assert two.units[0].rates_bps[0] > one.units[0].rates_bps[0]
    assert two.total_delay_s < one.total_delay_s


def test_zero_requests_zero_delay_and_feasible(make_instance):
    inst = make_instance(np.zeros((2, 2, 0, 2)), [10, 20], [(0, 1)], [])
    ev = evaluate(inst, Plan.empty(2))
    assert ev.status == "feasible"
    assert ev.total_delay_s == 0.0 and ev.units == [] and ev.violations == []
    assert ev.n_requested_pairs == 0
    # caching within capacity changes nothing
    ev2 = evaluate(inst, Plan(cache=[{0, 1}, {1}]))
    assert ev2.status == "feasible" and ev2.total_delay_s == 0.0
    assert ev2.storage_used_bytes.tolist() == [30, 20]


def _tdma_vs_broadcast(inst, blocks, nodes):
    oracle = BeamformingOracle("fast")
    cache = [set(int(k) for k in inst.requested_blocks) for _ in range(inst.n_nodes)]
    bc_units, td_units = [], []
    for k in blocks:
        users = tuple(int(u) for u in inst.requesters(k))
        beams = oracle.solve(inst, k, nodes, users).beams
        bc_units.append(DeliveryUnit(k, users, nodes, beams=beams))
        td_units += [DeliveryUnit(k, (u,), nodes, mode="unicast", beams=beams) for u in users]
    bc = evaluate(inst, Plan(cache=cache, units=bc_units), oracle)
    td = evaluate(inst, Plan(cache=cache, units=td_units), oracle)
    return bc, td


def test_tdma_with_same_beams_is_never_faster_than_broadcast_hand(make_instance):
    rng = np.random.default_rng(21)
    size = [3000, 500]
    inst = make_instance(crandn(rng, (2, 2, 4, 3), 1e-3), size, [(0, 1)], [0, 0, 0, 0],
                         c=1e8)
    bc, td = _tdma_vs_broadcast(inst, [0, 1], (0, 1))
    for k in (0, 1):
        rates = bc.units[k].rates_bps
        assert np.all(rates > 0)
        assert bc.block_broadcast_s[k] == pytest.approx(8 * size[k] / rates.min(), rel=1e-12)
        assert td.block_broadcast_s[k] == pytest.approx(np.sum(8 * size[k] / rates), rel=1e-12)
        assert td.block_broadcast_s[k] > bc.block_broadcast_s[k]
    assert td.total_delay_s > bc.total_delay_s


def test_tdma_with_same_beams_is_never_faster_than_broadcast_tiny(tiny):
    blocks = [int(k) for k in tiny.requested_blocks if len(tiny.requesters(k)) >= 2][:6]
    assert blocks
    bc, td = _tdma_vs_broadcast(tiny, blocks, tuple(range(tiny.n_nodes)))
    for k in blocks:
        assert td.block_broadcast_s[k] >= bc.block_broadcast_s[k] * (1 - 1e-12)
    # only some PBs are delivered: both totals are +inf, the delivered parts compare
    assert td.total_delay_s == bc.total_delay_s == np.inf
    assert td.delivered_delay_s > bc.delivered_delay_s


# ---------------------------------------------------------------------------------------
# violations, on a hand instance H: K=3 PBs (1, 2, 3 KB), N=2 nodes, U=3 users, M=2
#   m0 = (b0, b1), m1 = (b1, b2); u0 -> m0 @ n0, u1 -> m1 @ n1, u2 -> m0 @ n1
# ---------------------------------------------------------------------------------------
H_SIZES = [1000, 2000, 3000]
H_REQUESTERS = {0: (0, 2), 1: (0, 1, 2), 2: (1,)}


def hand_h(make_instance, zero_user=None, **kw):
    rng = np.random.default_rng(1234)
    chan = crandn(rng, (3, 2, 3, 2), 1e-3)
    if zero_user is not None:
        chan[:, :, zero_user] *= 1e-3  # ||h|| ~ 1.4e-6, far below the error radius 1e-4
    return make_instance(chan, H_SIZES, [(0, 1), (1, 2)], [0, 1, 0], user_nodes=[0, 1, 1],
                         c=1e8, **kw)


def base_plan(**changes) -> Plan:
    units = {k: DeliveryUnit(k, users, (0, 1)) for k, users in H_REQUESTERS.items()}
    units[2] = DeliveryUnit(2, (1,), (1,))
    plan = Plan(cache=[{0, 1}, {1, 2}], migrations=[Migration(0, 1, 0)],
                units=[units[k] for k in (0, 1, 2)])
    for key, value in changes.items():
        setattr(plan, key, value)
    return plan


def robust_mrt_beam(inst, k, node, user):
    h = inst.channel(k)[node, user]
    return (math.sqrt(inst.nodes.power_max_w[node]) * h / np.linalg.norm(h))[None, :]


@pytest.fixture(scope="module")
def oracle():
    return BeamformingOracle("fast")


def test_base_plan_is_feasible(make_instance, oracle):
    inst = hand_h(make_instance)
    ev = evaluate(inst, base_plan(), oracle)
    assert ev.status == "feasible", ev.violations
    assert ev.undelivered == [] and ev.n_requested_pairs == 6
    assert sorted(ev.block_broadcast_s) == [0, 1, 2]
    assert all(u.beam_source == "oracle:fast" for u in ev.units)
    assert ev.total_delay_s == pytest.approx(
        ev.migration_delay_s + sum(u.delay_s for u in ev.units), rel=1e-12)
    assert_clean(ev, inst)


def _only(ev, kind):
    assert ev.status == "infeasible"
    assert {v.kind for v in ev.violations} == {kind}, ev.violations
    return [v for v in ev.violations if v.kind == kind]


def test_violation_storage(make_instance, oracle):
    inst = hand_h(make_instance, storage_bytes=[2999, 10**6])  # node 0 stores 1000 + 2000 B
    ev = evaluate(inst, base_plan(), oracle)
    (v,) = _only(ev, "storage")
    assert v.nodes == (0,)
    assert ev.storage_used_bytes.tolist() == [3000, 5000]
    assert v.to_dict(inst)["nodes"] == ["n0"]
    assert_clean(ev, inst)


def test_violation_migration_source(make_instance, oracle):
    inst = hand_h(make_instance)
    plan = base_plan()
    plan.migrations.append(Migration(0, 1, 2))  # node 0 does not hold b2
    ev = evaluate(inst, plan, oracle)
    (v,) = _only(ev, "migration_source")
    assert v.nodes == (0,) and v.blocks == (2,)
    assert ev.block_migration_s[2] > 0  # its delay is still counted
    assert_clean(ev, inst)


def test_violation_duplicate_migration(make_instance, oracle):
    inst = hand_h(make_instance)
    plan = base_plan()
    plan.migrations.append(Migration(0, 1, 0))
    ev = evaluate(inst, plan, oracle)
    (v,) = _only(ev, "migration_duplicate")
    assert v.blocks == (0,) and ev.n_migrations == 1


def test_violation_unit_node_without_the_pb(make_instance, oracle):
    inst = hand_h(make_instance)
    plan = base_plan()
    plan.units[2] = DeliveryUnit(2, (1,), (0, 1))  # node 0 neither caches nor receives b2
    ev = evaluate(inst, plan, oracle)
    (v,) = _only(ev, "not_holding")
    assert v.nodes == (0,) and v.blocks == (2,)
    assert_clean(ev, inst)


def test_violation_power(make_instance, oracle):
    inst = hand_h(make_instance)
    plan = base_plan()
    plan.units[2] = DeliveryUnit(2, (1,), (1,), beams=2.0 * robust_mrt_beam(inst, 2, 1, 1))
    ev = evaluate(inst, plan, oracle)
    (v,) = _only(ev, "power")
    assert v.nodes == (1,) and v.blocks == (2,)
    assert ev.units[2].power_w[0] == pytest.approx(4.0)
    assert_clean(ev, inst)


def test_violation_qos(make_instance, oracle):
    inst = hand_h(make_instance, qos_bps=[0.0, 1e8, 0.0])  # u1 cannot reach 100 Mbps
    ev = evaluate(inst, base_plan(), oracle)
    vs = _only(ev, "qos")
    assert len(vs) == 2  # u1 is served by the b1 and b2 units
    assert {v.blocks for v in vs} == {(1,), (2,)}
    assert all(v.users == (1,) for v in vs)
    assert ev.qos_violating_users() == [1]
    assert ev.summary(inst)["qos_violating_users"] == 1
    assert_clean(ev, inst)


def test_violation_zero_rate_user_far_away(make_instance, oracle):
    inst = hand_h(make_instance, zero_user=2)
    ev = evaluate(inst, base_plan(), oracle)
    vs = _only(ev, "zero_rate")
    assert {v.blocks for v in vs} == {(0,), (1,)}  # u2 requests b0 and b1
    assert all(v.users == (2,) for v in vs)
    assert 2 in ev.qos_violating_users()
    dead = [u for u in ev.units if u.block in (0, 1)]
    assert all(u.delay_s == math.inf for u in dead)
    # the delay of what is delivered at a positive rate is still reported, finite
    live = [u for u in ev.units if u.block == 2][0]
    assert ev.delivered_delay_s == pytest.approx(ev.migration_delay_s + live.delay_s, rel=1e-12)
    assert ev.total_delay_s == math.inf and not ev.complete
    d = ev.to_dict(inst)
    assert [u["delay_s"] for u in d["units"]][:2] == [None, None]
    assert_clean(ev, inst)


def test_violation_undelivered_lists_users_and_pbs(make_instance, oracle):
    inst = hand_h(make_instance)
    plan = base_plan()
    del plan.units[0]  # nobody delivers b0 (requested by u0 and u2)
    ev = evaluate(inst, plan, oracle)
    vs = _only(ev, "undelivered")
    assert sorted((v.users, v.blocks) for v in vs) == [((0,), (0,)), ((2,), (0,))]
    assert sorted(ev.undelivered) == [(0, 0), (2, 0)]
    assert ev.undelivered_users() == [0, 2]
    d = ev.to_dict(inst)
    assert sorted((x["user"], x["block"]) for x in d["undelivered"]) == [("u0", "b0"),
                                                                         ("u2", "b0")]
    assert_clean(ev, inst)


def test_violation_spurious_user(make_instance, oracle):
    inst = hand_h(make_instance)
    plan = base_plan()
    plan.units[0] = DeliveryUnit(0, (0, 1, 2), (0, 1))  # u1 (model m1) does not request b0
    ev = evaluate(inst, plan, oracle)
    (v,) = _only(ev, "spurious_user")
    assert v.users == (1,) and v.blocks == (0,)
    assert_clean(ev, inst)


def test_violation_unicast_with_two_users(make_instance, oracle):
    inst = hand_h(make_instance)
    plan = base_plan()
    plan.units[0] = DeliveryUnit(0, (0, 2), (0, 1), mode="unicast")
    ev = evaluate(inst, plan, oracle)
    kinds = {v.kind for v in ev.violations}
    assert "malformed" in kinds
    (v,) = [v for v in ev.violations if v.kind == "malformed"]
    assert v.users == (0, 2) and v.blocks == (0,)
    # the malformed unit delivers nothing
    assert sorted(ev.undelivered) == [(0, 0), (2, 0)]
    assert_clean(ev, inst)


def test_violation_slot_conflict_two_pbs_in_one_slot(make_instance, oracle):
    inst = hand_h(make_instance)
    plan = base_plan()
    plan.units[0].slot = 3
    plan.units[2].slot = 3
    ev = evaluate(inst, plan, oracle)
    (v,) = _only(ev, "slot_conflict")
    assert v.blocks == (0, 2)
    ref = evaluate(inst, base_plan(), oracle)  # conflicting slots are treated as sequential
    assert ev.delivered_delay_s == pytest.approx(ref.total_delay_s, rel=1e-12)
    assert ev.total_delay_s == math.inf  # a structural violation is never comparable
    assert_clean(ev, inst)


def test_malformed_plan_with_wrong_node_count(make_instance, oracle):
    inst = hand_h(make_instance)
    ev = evaluate(inst, Plan.empty(3), oracle)
    assert ev.status == "infeasible"
    assert [v.kind for v in ev.violations] == ["malformed"]
    assert_clean(ev, inst)


def test_infeasible_plan_with_every_violation_still_finite(make_instance, oracle):
    inst = hand_h(make_instance, zero_user=2, qos_bps=[0.0, 1e8, 0.0],
                  storage_bytes=[100, 100])
    plan = base_plan()
    plan.migrations.append(Migration(0, 1, 2))
    plan.units[2] = DeliveryUnit(2, (1, 0), (0, 1), beams=np.full((2, 2), 3.0 + 0j))
    ev = evaluate(inst, plan, oracle)
    kinds = {v.kind for v in ev.violations}
    assert {"storage", "migration_source", "power", "zero_rate", "qos",
            "spurious_user"} <= kinds
    assert_clean(ev, inst)


# ---------------------------------------------------------------------------------------
# slots, model copies, the oracle
# ---------------------------------------------------------------------------------------
def test_own_cell_units_in_one_slot_cost_the_max(make_instance, oracle):
    inst = hand_h(make_instance)
    k = 1  # requested by u0 (cell n0) and u1, u2 (cell n1)
    b0 = robust_mrt_beam(inst, k, 0, 0)
    b1 = robust_mrt_beam(inst, k, 1, 1)

    def plan(slot):
        units = [DeliveryUnit(k, (0,), (0,), slot=slot, beams=b0),
                 DeliveryUnit(k, (1, 2), (1,), slot=slot, beams=b1),
                 DeliveryUnit(0, (0, 2), (0,)), DeliveryUnit(2, (1,), (1,))]
        return Plan(cache=[{0, 1}, {1, 2}], units=units)

    together = evaluate(inst, plan(7), oracle)
    apart = evaluate(inst, plan(None), oracle)
    assert together.status == "feasible", together.violations
    # sequential: each unit alone, by hand, and the PB costs the sum
    a0, a1 = apart.units[0], apart.units[1]
    for res, node in ((a0, 0), (a1, 1)):
        h = inst.channel(k)[node]
        b = (b0 if node == 0 else b1)[0]
        r = [hand_rate([list(h[u])], [list(b)], [1e8], 1e-9, 1e6) for u in res.users]
        np.testing.assert_allclose(res.rates_bps, r, rtol=1e-12)
        assert res.delay_s == pytest.approx(8 * H_SIZES[k] / min(r), rel=1e-12)
    assert apart.block_broadcast_s[k] == pytest.approx(a0.delay_s + a1.delay_s, rel=1e-12)
    # concurrent: the slot costs the max of its units' delays, not the sum
    d0, d1 = together.units[0].delay_s, together.units[1].delay_s
    assert together.block_broadcast_s[k] == pytest.approx(max(d0, d1), rel=1e-12)
    assert together.block_broadcast_s[k] < d0 + d1
    others = sum(together.block_broadcast_s[b] for b in (0, 2))
    assert together.total_delay_s == pytest.approx(max(d0, d1) + others, rel=1e-12)
    # exact slot semantics: the units send the same PB symbol at the same time, so every user
    # of the slot hears both nodes with their beams (eq. 6 with lambda = the union)
    h = inst.channel(k)
    union = {u: hand_rate([list(h[0, u]), list(h[1, u])], [list(b0[0]), list(b1[0])],
                          [1e8, 1e8], 1e-9, 1e6) for u in (0, 1, 2)}
    np.testing.assert_allclose(together.units[0].rates_bps, [union[0]], rtol=1e-12)
    np.testing.assert_allclose(together.units[1].rates_bps, [union[1], union[2]], rtol=1e-12)
    assert together.block_broadcast_s[k] == pytest.approx(8 * H_SIZES[k] / min(union.values()),
                                                          rel=1e-12)


def test_model_copies_pay_storage_per_copy(make_instance, oracle):
    # unique bytes 6000; copies of m0 (b0+b1) and m1 (b1+b2) take 3000 + 5000 = 8000
    inst = hand_h(make_instance, storage_bytes=[7000, 7000])
    fine = Plan(cache=[{0, 1, 2}, set()])
    coarse = Plan(cache=[set(), set()], model_copies=[[0, 1], []])
    assert fine.storage_used(inst.repository).tolist() == [6000, 0]
    assert coarse.storage_used(inst.repository).tolist() == [8000, 0]
    assert coarse.holds(inst.repository)[0].tolist() == [True, True, True]
    ev = evaluate(inst, coarse, oracle)
    assert [v.nodes for v in ev.violations if v.kind == "storage"] == [(0,)]
    ev_fine = evaluate(inst, fine, oracle)
    assert ev_fine.count("storage") == 0


def test_per_model_delivery_sends_shared_pb_twice(make_instance, oracle):
    inst = hand_h(make_instance)
    copies = [[0, 1], [0, 1]]
    units = [DeliveryUnit(0, (0, 2), (0, 1), model=0), DeliveryUnit(1, (0, 2), (0, 1), model=0),
             DeliveryUnit(1, (1,), (0, 1), model=1), DeliveryUnit(2, (1,), (0, 1), model=1)]
    ev = evaluate(inst, Plan(cache=[set(), set()], model_copies=copies, units=units), oracle)
    assert ev.status == "feasible", ev.violations
    assert ev.block_broadcast_s[1] == pytest.approx(ev.units[1].delay_s + ev.units[2].delay_s,
                                                    rel=1e-12)
    bad = evaluate(inst, Plan(cache=[set(), set()], model_copies=copies,
                              units=[*units[:3], DeliveryUnit(2, (1,), (0, 1), model=0)]),
                   oracle)
    assert [v.blocks for v in bad.violations if v.kind == "malformed"] == [(2,)]


def test_evaluator_without_beams_uses_the_oracle(make_instance):
    inst = hand_h(make_instance)
    plan = base_plan()
    plan.units[2].beamforming = "mrt"
    ev = evaluate(inst, plan)  # the shared default oracle
    assert [u.beam_source for u in ev.units] == ["oracle:fast", "oracle:fast", "oracle:mrt"]
    assert [u["beams"] for u in ev.to_dict(inst)["units"]][0] == "oracle:fast"
    mine = BeamformingOracle("fast")
    for unit, res in zip(plan.units, ev.units, strict=True):
        br = mine.solve(inst, unit.block, unit.nodes, unit.users, method=unit.beamforming)
        np.testing.assert_allclose(res.rates_bps, br.rates_bps, rtol=1e-9)
        # and the evaluator's rates are the closed form applied to those beams
        h = inst.channel(unit.block)[np.ix_(unit.nodes, unit.users)]
        radius = inst.error_radius[np.ix_(unit.nodes, unit.users)]
        amp = [max(0.0, abs(sum(np.vdot(h[i, j], br.beams[i]) for i in range(len(unit.nodes))))
                   - sum(radius[i, j] * np.linalg.norm(br.beams[i])
                         for i in range(len(unit.nodes))))
               for j in range(len(unit.users))]
        expect = inst.bandwidth_hz * np.log2(1 + np.square(amp) / inst.users.noise_w[0])
        np.testing.assert_allclose(res.rates_bps, expect, rtol=1e-9)
        assert np.all(res.power_w <= inst.nodes.power_max_w[list(unit.nodes)] * (1 + 1e-9))


@pytest.mark.parametrize("field", ["cache", "model_copies"])
def test_out_of_range_cache_index_is_a_violation_not_a_crash(make_instance, oracle, field):
    inst = hand_h(make_instance)
    plan = base_plan()
    if field == "cache":
        plan.cache[0] = {0, 1, 99}
    else:
        plan.model_copies = [[7], []]
    ev = evaluate(inst, plan, oracle)
    assert ev.status == "infeasible" and "malformed" in {v.kind for v in ev.violations}
