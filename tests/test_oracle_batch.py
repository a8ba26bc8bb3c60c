"""The batched first-order method (fgamcd_opt/oracle/batch.py) and the oracle's batch entry
point: per-problem results independent of the batch, torch and numpy agree, the oracle's
first-order path is checked against the deterministic starts and never falls to rate 0 where
the starts do not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fgamcd_opt.generators import generate
from fgamcd_opt.oracle import BeamformingOracle, normalised_problem
from fgamcd_opt.oracle.batch import _Numpy, _Torch, first_order_batch, solve_first_order
from fgamcd_opt.oracle.fast import _objective, solve_fast, starting_points
from fgamcd_opt.oracle.problem import project_power


def _groups(n=6, v=5, p=2):
    """Real multicast subproblems of a small instance whose users some node reaches."""
    inst = generate("tiny", seed=1, n_users=60)
    out = []
    for k in inst.requested_blocks:
        req = inst.requesters(k)
        if len(req) < v:
            continue
        pr = normalised_problem(inst, int(k), tuple(range(p)), req[:v])
        if pr.dead_users().size:
            continue
        out.append((inst, int(k), tuple(range(p)), tuple(int(u) for u in req[:v]), pr))
        if len(out) >= n:
            break
    assert len(out) == n
    return out


def test_a_problems_result_does_not_depend_on_its_batch():
    probs = [g[-1].reduce()[0] for g in _groups(4)]
    shape = probs[0].g.shape
    same = [pr for pr in probs if pr.g.shape == shape]
    xp = _Numpy()

    def run(batch):
        g = np.stack([pr.g for pr in batch])
        rho = np.stack([pr.rho for pr in batch])
        t = np.ones((len(batch), shape[1]))
        x0 = np.stack([starting_points(pr, np.ones(shape[1]))[0] for pr in batch])
        return first_order_batch(g, rho, t, x0, 150, xp)

    alone = [run([pr]) for pr in same]
    together = run(same)
    for i, (x, v) in enumerate(alone):
        assert np.array_equal(together[0][i], x[0]) and together[1][i] == v[0]


def test_torch_and_numpy_kernels_agree():
    pr = _groups(1)[0][-1].reduce()[0]
    st = np.stack(starting_points(pr, np.ones(pr.n_users)))
    s = len(st)
    args = (np.repeat(pr.g[None], s, 0), np.repeat(pr.rho[None], s, 0), np.ones((s, pr.n_users)),
            st)
    # a few iterations: the accept/reject steps amplify last-bit differences further on
    xn, vn = first_order_batch(*args, 15, _Numpy())
    tx = _Torch("cpu")
    xt, vt = first_order_batch(*(tx.asarray(a) for a in args), 15, tx)
    np.testing.assert_allclose(tx.tonumpy(vt), vn, rtol=1e-9)
    np.testing.assert_allclose(tx.tonumpy(xt), xn, atol=1e-9)


def test_first_order_quality_close_to_sca_and_checked_against_the_starts():
    probs = [g[-1].reduce()[0] for g in _groups(6)]
    out = solve_first_order(probs, iterations=600)
    for pr, (x, value) in zip(probs, out, strict=True):
        t = np.ones(pr.n_users)
        assert np.isclose(value, _objective(pr, x, t))  # the exact objective of its point
        best_start = max(_objective(pr, project_power(x0), t) for x0 in starting_points(pr, t))
        assert value >= best_start - 1e-12
        sca = _objective(pr, solve_fast(pr).x, t)
        assert value >= 0.95 * sca


def test_solve_many_gives_what_solve_gives_and_uses_the_first_order_path():
    groups = _groups(5)
    inst = groups[0][0]
    reqs = [(k, nodes, users) for _, k, nodes, users, _ in groups]
    many = BeamformingOracle(first_order="on", first_order_users=4).solve_many(inst, reqs)
    one = BeamformingOracle(first_order="on", first_order_users=4)
    singles = [one.solve(inst, *q) for q in reqs]
    sca = [BeamformingOracle().solve(inst, *q) for q in reqs]
    for a, b, c in zip(many, singles, sca, strict=True):
        assert np.array_equal(a.beams, b.beams)
        assert not (a.min_rate_bps <= 0 < c.min_rate_bps)  # never rate 0 where SCA is not
        assert a.min_rate_bps >= 0.95 * c.min_rate_bps
    # the first-order path ran (its message), and its options are part of the memo key
    assert any(r.iterations >= 0 for r in many)


def test_first_order_option_is_validated():
    pr = _groups(1)[0][-1].reduce()[0]
    with pytest.raises(ValueError, match="first_order"):
        solve_fast(pr, first_order="sometimes")


def test_warm_start_from_a_subset_never_lowers_the_rate_and_is_deterministic():
    inst = generate("tiny", seed=2, n_users=40)
    oracle = BeamformingOracle()
    checked = 0
    for k in inst.requested_blocks[:30]:
        users = tuple(int(u) for u in inst.requesters(k)[:4])
        if len(users) < 2:
            continue
        sub = oracle.solve(inst, int(k), (0,), users)
        grown = oracle.solve(inst, int(k), (0, 2), users, warm=sub)
        assert grown.min_rate_bps >= sub.min_rate_bps * (1 - 1e-9)
        again = BeamformingOracle().solve(inst, int(k), (0, 2), users, warm=sub)
        assert np.array_equal(again.beams, grown.beams)
        assert oracle.solve(inst, int(k), (0, 2), users, warm=sub) is grown  # memoised
        checked += 1
    assert checked >= 5
    # a warm start that does not fit (other users, or not a subset of the nodes) is ignored
    k = int(inst.requested_blocks[0])
    users = tuple(int(u) for u in inst.requesters(k)[:3])
    sub = oracle.solve(inst, k, (1,), users)
    assert oracle.solve(inst, k, (0, 2), users, warm=sub) is oracle.solve(inst, k, (0, 2), users)
    # nor is one at rate 0 (SCA would stay where it is stuck; the cold starts do better)
    dead = replace(oracle.solve(inst, k, (0,), users), rates_bps=np.zeros(len(users)))
    assert oracle.solve(inst, k, (0, 2), users, warm=dead) is oracle.solve(inst, k, (0, 2), users)


def test_start_from_a_related_group_races_one_start_and_is_deterministic(monkeypatch):
    """``start``: another group's beams of the same PB start the SCA next to one deterministic
    start (race_starts=1); same inputs, same answer (memoised under its digest); ignored when
    it shares no node, is at rate 0, belongs to another PB or comes with ``warm``."""
    from fgamcd_opt.oracle import fast as fast_mod

    inst = generate("tiny", seed=2, n_users=40)
    seen = []
    real = fast_mod.solve_fast

    def spy(problem, weights=None, floors=None, **kw):
        seen.append(kw.get("race_starts"))
        return real(problem, weights, floors, **kw)

    monkeypatch.setattr(fast_mod, "solve_fast", spy)
    oracle = BeamformingOracle()
    checked = 0
    for k in inst.requested_blocks[:40]:
        users = tuple(int(u) for u in inst.requesters(k))
        if len(users) < 4:
            continue
        parent = oracle.solve(inst, int(k), (0, 1, 2), users[:3])
        if parent.min_rate_bps <= 0:
            continue
        seen.clear()
        child = oracle.solve(inst, int(k), (0, 1, 2), users[:4], start=parent)
        assert seen and seen[0] == 1  # the related group's beams raced one cold start
        again = BeamformingOracle().solve(inst, int(k), (0, 1, 2), users[:4], start=parent)
        assert np.array_equal(again.beams, child.beams)
        assert oracle.solve(inst, int(k), (0, 1, 2), users[:4], start=parent) is child
        # the rates are the exact ones of the returned beams, as for any answer
        plain = BeamformingOracle().solve(inst, int(k), (0, 1, 2), users[:4])
        assert child.rates_bps.shape == plain.rates_bps.shape
        checked += 1
    assert checked >= 3
    k = int(inst.requested_blocks[0])
    users = tuple(int(u) for u in inst.requesters(k)[:3])
    other = oracle.solve(inst, k, (1,), users[:2])
    plain = oracle.solve(inst, k, (0, 2), users)
    assert oracle.solve(inst, k, (0, 2), users, start=other) is plain  # no shared node
    dead = replace(oracle.solve(inst, k, (0,), users[:2]), rates_bps=np.zeros(2))
    assert oracle.solve(inst, k, (0, 2), users, start=dead) is plain
    k2 = int(inst.requested_blocks[1])
    wrong_pb = oracle.solve(inst, k2, (0, 2), tuple(int(u) for u in inst.requesters(k2)[:2]))
    if wrong_pb.min_rate_bps > 0:
        assert oracle.solve(inst, k, (0, 2), users, start=wrong_pb) is plain
