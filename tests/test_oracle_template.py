"""The fast oracle's SOCP template (per-shape cached sparsity pattern) against the construction it
replaced: Clarabel must receive bit-identical A, b, q and cones (at its first SOCP, and as the
values of A updated in place at the next ones: the template keeps its Clarabel solver), and the
oracle's beams and rates must match the reference, which builds a fresh solver per SOCP, to the
solver's tolerance (a kept solver reuses its first equilibration, so the interior-point
iterates, not the problems, differ in the last digits).

``_ReferenceTemplate`` below is the previous ``_SocpTemplate`` (scipy hstack/vstack per
template), kept verbatim as the reference.
"""

from __future__ import annotations

import clarabel
import numpy as np
import pytest
import scipy.sparse as sp

from fgamcd_opt.generators import generate
from fgamcd_opt.oracle import BeamformingOracle, BeamProblem
from fgamcd_opt.oracle import fast as fast_mod
from fgamcd_opt.oracle.fast import _SocpTemplate, solve_fast


class _ReferenceTemplate:
    """The previous construction, kept as the reference (do not optimise)."""

    def __init__(self, problem: BeamProblem, t: np.ndarray, floors: np.ndarray | None):
        p, v, d = problem.g.shape
        self.p, self.v, self.d = p, v, d
        nx = 2 * p * d
        self.nz = nz = nx + p + 1
        self.ir = nx
        self.i_s = nx + p
        self.has_floors = floors is not None
        n_user_rows = v * (2 if self.has_floors else 1)
        rho_block = np.tile(problem.rho.T, (2 if self.has_floors else 1, 1))
        s_col = np.concatenate([t, np.zeros(v)]) if self.has_floors else np.asarray(t, float)
        self.user_const = np.hstack([rho_block, s_col[:, None]])
        self.b_user = np.zeros(n_user_rows)
        if self.has_floors:
            self.b_user[v:] = -np.sqrt(np.maximum(floors, 0.0))
        a_pow = sp.hstack([sp.csc_matrix((p, nx)), sp.identity(p), sp.csc_matrix((p, 1))])
        b_pow = np.ones(p)
        rows, cols = [], []
        row = 0
        for n in range(p):
            rows.append(row)
            cols.append(self.ir + n)
            row += 1
            for j in range(2 * d):
                rows.append(row)
                cols.append(2 * d * n + j)
                row += 1
        a_soc = sp.csc_matrix((-np.ones(len(rows)), (rows, cols)), shape=(row, nz))
        a_const = sp.vstack([a_pow, a_soc])
        self.b_const = np.concatenate([b_pow, np.zeros(row)])
        self.cones = [clarabel.NonnegativeConeT(n_user_rows + p)] + [
            clarabel.SecondOrderConeT(2 * d + 1) for _ in range(p)
        ]
        self.P = sp.csc_matrix((nz, nz))
        self.q = np.zeros(nz)
        self.q[self.i_s] = -1.0
        a_user = np.ones((n_user_rows, nz))
        a_user[:, nx:] = np.where(self.user_const != 0, self.user_const, 1e-300)
        self.A = sp.vstack([sp.csc_matrix(a_user), a_const]).tocsc()
        self.A.sort_indices()
        self.n_user_rows = n_user_rows
        pos = []
        for col in range(nx):
            lo, hi = self.A.indptr[col], self.A.indptr[col + 1]
            r = self.A.indices[lo:hi]
            pos.append(lo + np.flatnonzero(r < n_user_rows))
        self.user_pos = np.concatenate(pos)
        self.b = np.concatenate([self.b_user, self.b_const])

    def solve(self, g_rot: np.ndarray):
        p, v, d = self.p, self.v, self.d
        lin = np.concatenate([g_rot.real, g_rot.imag], axis=2)
        lin = lin.transpose(1, 0, 2).reshape(v, 2 * p * d)
        if self.has_floors:
            lin = np.vstack([lin, lin])
        self.A.data[self.user_pos] = -lin.T.ravel()
        a, b = self.A, self.b
        solver = clarabel.DefaultSolver(self.P, self.q, a, b, self.cones, fast_mod._settings())
        sol = solver.solve()
        z = np.asarray(sol.x)
        xr = z[: 2 * p * d].reshape(p, 2, d)
        x = xr[:, 0, :] + 1j * xr[:, 1, :]
        return x, str(sol.status), float(-sol.obj_val) if np.isfinite(sol.obj_val) else -np.inf


def same_bits(a, b) -> bool:
    """Equal dtype, shape and bytes (so -0.0 != 0.0 and NaN == NaN of the same payload)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def random_case(rng, p, v, d, floors: bool, zero_rho: bool):
    g = rng.standard_normal((p, v, d)) + 1j * rng.standard_normal((p, v, d))
    rho = rng.uniform(0.0, 0.5, size=(p, v)) * np.linalg.norm(g, axis=2)
    if zero_rho:
        rho[rng.random((p, v)) < 0.4] = 0.0
        rho[0, 0] = 0.0
    t = rng.uniform(0.5, 2.0, size=v)
    fl = rng.uniform(0.0, 1.0, size=v) if floors else None
    if fl is not None:
        fl[rng.random(v) < 0.3] = 0.0
    return BeamProblem(g, rho, np.ones(v)), t, fl


class _Captured:
    """Stands in for clarabel.DefaultSolver: records copies of what Clarabel would receive, at
    construction and at each in-place update of A's values."""

    calls: list = []

    def __init__(self, P, q, A, b, cones, settings):
        self.call = {
            "P": (P.shape, P.data.copy(), P.indices.copy(), P.indptr.copy()),
            "q": np.array(q, copy=True), "b": np.array(b, copy=True),
            "A": (A.shape, A.data.copy(), A.indices.copy(), A.indptr.copy()),
            "cones": [repr(c) for c in cones], "settings": settings}
        _Captured.calls.append(self.call)

    def update(self, **data):
        assert set(data) == {"A"}, "only A's values change between SCA steps"
        a = self.call["A"]
        new = np.asarray(data["A"])
        assert new.shape == a[1].shape
        self.call = {**self.call, "A": (a[0], new.copy(), a[2], a[3])}
        _Captured.calls.append(self.call)

    def solve(self):
        class _Sol:
            x = [0.0] * _Captured.calls[-1]["A"][0][1]
            status = "Solved"
            obj_val = 0.0
        return _Sol()


def assert_same_call(new: dict, ref: dict) -> None:
    assert new["A"][0] == ref["A"][0]
    for i, name in ((1, "data"), (2, "indices"), (3, "indptr")):
        assert same_bits(new["A"][i], ref["A"][i]), f"A.{name} differs"
    assert new["P"][0] == ref["P"][0]
    for i in (1, 2, 3):
        assert same_bits(new["P"][i], ref["P"][i])
    assert same_bits(new["q"], ref["q"])
    assert same_bits(new["b"], ref["b"])
    assert new["cones"] == ref["cones"]
    assert new["settings"] is ref["settings"]


def test_template_matrices_are_bit_identical_to_the_reference(monkeypatch):
    monkeypatch.setattr(clarabel, "DefaultSolver", _Captured)
    rng = np.random.default_rng(20260)
    shapes = [(p, v, d) for p in range(1, 7) for v in range(1, 9) for d in range(1, 5)]
    picked = [shapes[i] for i in rng.choice(len(shapes), size=60, replace=False)]
    picked += [(1, 1, 1), (6, 8, 4)]
    for case, (p, v, d) in enumerate(picked):
        for floors in (False, True):
            pr, t, fl = random_case(rng, p, v, d, floors, zero_rho=case % 2 == 0)
            if case % 5 == 0:
                t[0] = 0.0  # a zero weight takes the placeholder path in the s column too
            new, ref = _SocpTemplate(pr, t, fl), _ReferenceTemplate(pr, t, fl)
            assert same_bits(new.A.indptr, ref.A.indptr)
            assert same_bits(new.A.indices, ref.A.indices)
            assert same_bits(new.A.data, ref.A.data)
            assert same_bits(new.b, ref.b) and same_bits(new.q, ref.q)
            assert same_bits(new.user_pos, ref.user_pos)
            assert same_bits(new.user_const, ref.user_const)
            assert [repr(c) for c in new.cones] == [repr(c) for c in ref.cones]
            # several SCA steps: only the user rows change, identically
            for _ in range(3):
                phase = np.exp(1j * rng.uniform(0, 2 * np.pi, size=v))
                g_rot = pr.g * phase[None, :, None]
                _Captured.calls.clear()
                new.solve(g_rot)
                ref.solve(g_rot)
                assert len(_Captured.calls) == 2
                assert_same_call(*_Captured.calls)


def test_templates_of_one_shape_do_not_share_values(monkeypatch):
    """Two templates of the same shape share the cached pattern but never each other's values,
    and the cached pattern itself is read-only."""
    monkeypatch.setattr(clarabel, "DefaultSolver", _Captured)
    rng = np.random.default_rng(7)
    pr1, t1, f1 = random_case(rng, 3, 4, 2, True, zero_rho=True)
    pr2, t2, f2 = random_case(rng, 3, 4, 2, True, zero_rho=False)
    a, b = _SocpTemplate(pr1, t1, f1), _SocpTemplate(pr2, t2, f2)
    ref_a = _ReferenceTemplate(pr1, t1, f1)
    assert np.shares_memory(a.A.indices, b.A.indices)  # the shared pattern
    assert not np.shares_memory(a.A.data, b.A.data)
    g1 = pr1.g * np.exp(1j * rng.uniform(0, 6, size=4))[None, :, None]
    g2 = pr2.g * np.exp(1j * rng.uniform(0, 6, size=4))[None, :, None]
    _Captured.calls.clear()
    a.solve(g1)
    b.solve(g2)  # must not touch a's values
    a.solve(g1)
    ref_a.solve(g1)
    assert_same_call(_Captured.calls[2], _Captured.calls[3])
    assert_same_call(_Captured.calls[0], _Captured.calls[2])
    st = fast_mod._structure(3, 4, 2, True)
    for arr in (st.indices, st.indptr, st.data0, st.b_const, st.q):
        assert not arr.flags.writeable
    with pytest.raises(ValueError):
        a.A.indices[0] = 1


def _oracle_results(inst, queries):
    oracle = BeamformingOracle("fast")
    return [oracle.solve(inst, k, nodes, users) for k, nodes, users in queries]


def _queries(inst, n_max, rng):
    out = []
    for k in inst.requested_blocks:
        users = tuple(int(u) for u in inst.requesters(k))
        if len(users) < 2:
            continue
        size = int(rng.integers(1, min(inst.n_nodes, 4) + 1))
        nodes = tuple(sorted(int(n) for n in rng.choice(inst.n_nodes, size=size, replace=False)))
        out.append((int(k), nodes, users))
        if len(out) >= n_max:
            break
    return out


@pytest.mark.parametrize("seed,kwargs,min_floor_templates", [
    (0, {"n_nodes": 3, "n_users": 8}, 0),
    # QoS 3-5 Gb/s: some groups miss Q_u at the max-min beams, so the floor-constrained SOCPs run
    (1, {"n_nodes": 4, "n_users": 10, "qos_gbps": (3.0, 5.0)}, 2),
])
def test_oracle_rates_match_the_reference(monkeypatch, seed, kwargs,
                                                                   min_floor_templates):
    inst = generate("tiny", seed=seed, **kwargs)
    queries = _queries(inst, 12, np.random.default_rng(seed))
    assert len(queries) >= 4
    shapes = []
    structure = fast_mod._structure

    def spy(p, v, d, has_floors):
        shapes.append(has_floors)
        return structure(p, v, d, has_floors)

    monkeypatch.setattr(fast_mod, "_structure", spy)
    new = _oracle_results(inst, queries)
    assert sum(shapes) >= min_floor_templates
    monkeypatch.setattr(fast_mod, "_SocpTemplate", _ReferenceTemplate)
    ref = _oracle_results(inst, queries)
    multi = 0
    for a, b in zip(new, ref, strict=True):
        # the objective (the min rate) to the solver's tolerance; the other users' rates are
        # not optimised and may move more
        assert a.min_rate_bps == pytest.approx(b.min_rate_bps, rel=1e-4)
        assert (a.status, a.qos_feasible, a.qos_infeasible_users) == (
            b.status, b.qos_feasible, b.qos_infeasible_users)
        multi += a.iterations > 0
    assert multi >= 2  # the SCA (not only closed forms) ran


def test_solve_fast_matches_the_reference_with_floors_and_random_starts(monkeypatch):
    rng = np.random.default_rng(11)
    cases = [random_case(rng, p, v, d, floors=f, zero_rho=z)
             for p, v, d, f, z in [(2, 3, 4, True, False), (3, 5, 2, False, True),
                                   (4, 2, 3, True, True)]]
    run = [solve_fast(pr, t, fl, n_random_starts=2, seed=3) for pr, t, fl in cases]
    monkeypatch.setattr(fast_mod, "_SocpTemplate", _ReferenceTemplate)
    ref = [solve_fast(pr, t, fl, n_random_starts=2, seed=3) for pr, t, fl in cases]
    for (pr, t, _), a, b in zip(cases, run, ref, strict=True):
        assert a.status == b.status
        assert fast_mod._objective(pr, a.x, t) == pytest.approx(
            fast_mod._objective(pr, b.x, t), rel=1e-4)
