r"""The paper's robust CoMP beamforming subroutine (section III-F, eqs. 23-33): SDR + S-procedure +
DC rank penalty. This is the *reference* method: faithful to the paper, not the fastest.

Model (normalised units of :mod:`problem`: amplitudes in noise standard deviations, SNR linear)
------------------------------------------------------------------------------------------------
Stack the p nodes' beams x = (x_1, ..., x_p), x_n in C^d, and lift W = x x^H (Hermitian PSD, size
n = p d). Per-node power (eq. 23c): the trace of W's n-th d x d diagonal block is <= 1.

Errors use the paper's AGGREGATE set (eq. 28): user u's stacked normalised error satisfies
sum_n ||e_{n,u}||^2 / rho_{n,u}^2 <= budget (the paper's budget is N, the total number of nodes;
default here p). Writing e = D_u f with D_u = blockdiag(rho_{n,u} I_d) (so rho = 0, perfect CSI,
needs no special case), "SNR_u >= gamma_u for every error" reads

    (g_u + D_u f)^H W (g_u + D_u f) >= gamma_u   for all ||f||^2 <= budget,

and by the S-procedure (Lemma 1, eq. 26 with A1 = I, b1 = 0, kappa1 = -budget; A2 = -D W D,
b2 = -D W g, kappa2 = gamma_u - g^H W g) this holds iff some eps_u >= 0 gives

    [[D W D + eps_u I,   D W g              ],
     [g^H W D,           g^H W g - gamma_u - eps_u budget]]  >= 0               (eq. 29/30)

i.e. B^H W B + diag(eps_u I, -gamma_u - eps_u budget) >= 0 with B = [D_u, g_u]. For a rank-one
W the guaranteed SNR is max(0, |g^H x| - sqrt(budget) ||D_u x||)^2, which never exceeds the exact
worst case a_u(x)^2 of :mod:`rates` when budget >= p (Cauchy-Schwarz: the aggregate set contains
the product of the per-node balls), so rank-one solutions are safe under the exact model.

Objective: maximise a common gamma with gamma_u = gamma * weights_u^2 (the max-min SNR / min
broadcast delay form of (23d)/(30)); optional per-user floors (QoS, eq. 29) add a second LMI per
user with gamma_u = floors_u and its own eps (as the paper does with (29) and (30)).

Rank one by the DC penalty (eqs. 32-33): iteration 0 solves the relaxation without penalty; if W
is rank one (lambda_2 <= rank_tol lambda_1) it is optimal for the model and we stop. Otherwise
iterate

    maximise  gamma / gamma0 - mu (tr W - u1^H W u1)

with u1 the principal eigenvector of the previous W and gamma0 the iteration-0 (relaxation)
value. **Normalisation**: the paper minimises 1/zeta + mu (tr W - ||W||) with 1/zeta a delay in
seconds, so its mu = 1 is tied to its units; dividing gamma by gamma0 makes the objective
dimensionless and O(1) (tr W <= p), which is what makes mu = 1 meaningful here for every scaling
of the data. The beam is x = sqrt(lambda_1) u1, split per node, any node with ||x_n|| > 1 (solver
tolerance) scaled back onto the unit ball.

Solvers (measured, see benchmarks/bench_sdr_compile.py)
--------------------------------------------------------
* ``"SCS"`` (default): the SDP is assembled directly in SCS's native *complex* PSD cones (no
  real 2n x 2n embedding, no cvxpy); the shape-dependent structure is cached per shape key and the
  SCS workspace is reused across DC iterations (only the objective vector changes; warm start).
* ``"CLARABEL"``: cvxpy with Parameters (DPP, compiled once per shape key and cached), Clarabel
  interior point. Accurate, but Clarabel's KKT system with dense PSD scaling blocks fills in
  completely for these dense LMIs: per SDP ~1.3 s at p d = 10, ~6 s at p d = 15, ~220 s at
  p d = 30, versus 0.05 / 0.15 / 0.8 s for SCS (relaxation values agree to ~1e-7). The cvxpy/DPP
  overhead is only ~5 ms per solve; Clarabel's own factorisation is the cost, so calling it
  directly would not help. This path is the cross-check of the SCS assembly (two independent
  formulations).

Measured behaviour (random Table-II-like instances, rho ~ 0.1-0.3 ||g||, p <= 3, v <= 5)
----------------------------------------------------------------------------------------
* The relaxation is rank one for ~25-60% of instances (more often at small v and small errors).
* Otherwise DC with mu = 1 usually reaches rank one after 1-3 iterations (median 1; the paper
  reports 2-3), losing ~7-15% of the relaxation value. At rho ~ 0.3 ||g|| about 15% of instances
  stall at a non-rank-one stationary point (lambda_2/lambda_1 -> 0.05-0.2): ITERATION_LIMIT, the
  beam is the principal eigenvector of the last W. ``mu_growth=2`` (not in the paper) reaches rank
  one in 2-3 iterations on those. Larger fixed mu converges in 1 iteration to poorer beams.
* The aggregate set lets the whole budget concentrate on one link (radius sqrt(budget) rho_n):
  a user served mainly by one node with rho_n > ||g_n|| / sqrt(budget) is dead under the paper's
  model although alive under the exact one; most stalls happen there (no rank-one W has gamma > 0
  while the relaxation does).

Not thread-safe: the cached cvxpy problems hold parameter values (use processes to parallelise).

Failures never raise: the other solver is tried (Clarabel only while it is affordable), then the
best valid beam so far (or robust MRT toward the weakest user) is returned with
NUMERICAL_FAILURE. Malformed arguments (shapes, non-finite data, non-positive weights, negative
budget) raise ValueError.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import scs

from ..lru import LRU
from .methods import MethodOutput, MethodStatus, amplitude_upper_bound, robust_mrt
from .problem import BeamProblem, project_power

__all__ = ["solve_sdr", "sdr_cache_info", "clear_sdr_cache", "SOLVERS"]

SOLVERS = ("SCS", "CLARABEL")
_CACHE_SIZE = 64
# Clarabel is only used as a fallback while one SDP stays around a second (see module docstring).
_CLARABEL_AFFORDABLE_DIM = 12
_SQRT2 = np.sqrt(2.0)
# Below this (scaled units, where gamma <= p) a relaxation value counts as zero: some user is
# unreachable and gamma / gamma0 would divide by solver noise; the data scale (1) is used instead.
_GAMMA_TINY = 1e-7
# eps 1e-7: measured 1.5x faster than 1e-8 with the same relaxation values to ~1e-9 and rank ratios
# ~1e-9 after DC; 1e-6 starts to move gamma (~2e-7 relative) and the rank test (1e-6) gets close.
_SCS_SETTINGS: dict[str, Any] = dict(eps_abs=1e-7, eps_rel=1e-7, max_iters=50_000, verbose=False)


_SCS_CACHE = LRU(_CACHE_SIZE)
_CVXPY_CACHE = LRU(_CACHE_SIZE)
_COMPILES = {"SCS": 0, "CLARABEL": 0}


def sdr_cache_info() -> dict[str, int]:
    """Number of compilations so far per solver and the cached entries (for tests/benchmarks)."""
    return {
        "compiles_scs": _COMPILES["SCS"],
        "compiles_clarabel": _COMPILES["CLARABEL"],
        "cached_scs": len(_SCS_CACHE),
        "cached_clarabel": len(_CVXPY_CACHE),
    }


def clear_sdr_cache() -> None:
    _SCS_CACHE.clear()
    _CVXPY_CACHE.clear()


# --------------------------------------------------------------------------------------------
# Scaled data shared by both backends
# --------------------------------------------------------------------------------------------


@dataclass
class _Data:
    """Problem data divided by ``scale`` so the SDP entries are O(1).

    The LMI is homogeneous: scaling g and rho by 1/s scales gamma, eps and the floors by 1/s^2, so
    solving the scaled SDP and multiplying gamma by s^2 is exact.
    """

    p: int
    d: int
    v: int
    g: np.ndarray  # (p, v, d) complex, scaled
    rho: np.ndarray  # (p, v) float, scaled (zeroed when budget == 0: non-robust)
    w2: np.ndarray  # (v,) weights^2
    floors: np.ndarray | None  # (v,) scaled SNR floors (>= 0)
    budget: float
    scale: float  # s; SNR values in caller units = s^2 * scaled values

    @property
    def n(self) -> int:
        return self.p * self.d

    def stacked(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """(g_u, diag of D_u): the stacked channel (length n) and per-entry error radius."""
        return self.g[:, u, :].reshape(-1), np.repeat(self.rho[:, u], self.d)


@dataclass
class _SdpResult:
    ok: bool  # a usable (finite, solved or almost solved) W
    infeasible: bool
    W: np.ndarray | None
    gamma: float  # scaled units
    status: str
    solve_time: float
    solver: str
    compile_time: float = 0.0
    inaccurate: bool = False
    message: str = ""


# --------------------------------------------------------------------------------------------
# SCS backend: native complex PSD cones, structure cached per shape
# --------------------------------------------------------------------------------------------


def _cvec_index(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SCS's complex vec of a k x k Hermitian matrix, entry by entry: (row, col, part) with
    part 0 = diagonal, 1 = sqrt(2) Re, 2 = sqrt(2) Im of a strictly lower entry; lower triangle
    stacked column-wise (length k^2)."""
    rows, cols, part = [], [], []
    for j in range(k):
        rows.append(j)
        cols.append(j)
        part.append(0)
        for i in range(j + 1, k):
            rows += [i, i]
            cols += [j, j]
            part += [1, 2]
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64), np.array(part)


def _hvec(S: np.ndarray, idx: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Hermitian matrix -> SCS complex vec (preserves the trace inner product)."""
    r, c, part = idx
    val = S[r, c]
    return np.where(part == 0, val.real, _SQRT2 * np.where(part == 1, val.real, val.imag))


def _hmat(x: np.ndarray, k: int, idx: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """SCS complex vec -> Hermitian matrix."""
    r, c, part = idx
    W = np.zeros((k, k), dtype=complex)
    dg, re, im = part == 0, part == 1, part == 2
    W[r[dg], c[dg]] = x[dg]
    W[r[re], c[re]] = (x[re] + 1j * x[im]) / _SQRT2
    return W + np.tril(W, -1).conj().T


@dataclass
class _ScsStructure:
    """Everything about the SCS problem that depends on the shape only (the 'compiled' part)."""

    p: int
    d: int
    v: int
    has_floors: bool
    n: int
    m: int
    n_lmi: int
    nx: int
    idx_n: tuple[np.ndarray, np.ndarray, np.ndarray]
    mat: sp.csr_matrix  # (n^2 complex full vec) <- (n^2 real cvec): x_W -> vec(W), column-major
    sel_full: np.ndarray  # for each cvec(m) row: index into the column-major full vec(M)
    sel_is_im: np.ndarray
    sel_scale: np.ndarray
    diag_rows_m: np.ndarray  # cvec(m) rows of the first n diagonal entries (eps I block)
    corner_row_m: int  # cvec(m) row of the (n, n) corner
    fixed_top: sp.csr_matrix  # power rows, eps >= 0 rows, W >= 0 cone rows
    b_top: np.ndarray
    cone: dict

    @classmethod
    def build(cls, p: int, d: int, v: int, has_floors: bool) -> _ScsStructure:
        n, m = p * d, p * d + 1
        n_lmi = 2 * v if has_floors else v
        nw = n * n
        nx = nw + n_lmi + 1
        idx_n = _cvec_index(n)
        r, c, part = idx_n
        # x_W -> column-major full vec(W): a diagonal entry maps to itself; a lower pair
        # (sqrt2 Re, sqrt2 Im) of W_ij maps to W_ij = (re + i im)/sqrt2 and W_ji = conj(W_ij).
        rows, cols, vals = [], [], []
        t = np.arange(nw)
        dg = part == 0
        rows.append(r[dg] + c[dg] * n)
        cols.append(t[dg])
        vals.append(np.ones(dg.sum(), dtype=complex))
        for p_id, coef in ((1, 1.0), (2, 1j)):
            sel = part == p_id
            rows += [r[sel] + c[sel] * n, c[sel] + r[sel] * n]
            cols += [t[sel], t[sel]]
            vals += [np.full(sel.sum(), coef / _SQRT2), np.full(sel.sum(), np.conj(coef) / _SQRT2)]
        mat = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nw, nw)
        )
        rm, cm, pm = _cvec_index(m)
        sel_full = rm + cm * m
        diag_m = np.flatnonzero(pm == 0)
        # fixed rows: p power rows (sum of the node's diagonal entries <= 1), eps >= 0, W >= 0
        diag_pos = np.flatnonzero(dg)  # cvec position of W_ii, i = 0..n-1 in order
        pow_rows = np.repeat(np.arange(p), d)
        a_pow = sp.csr_matrix((np.ones(n), (pow_rows, diag_pos)), shape=(p, nx))
        a_eps = sp.csr_matrix(
            (-np.ones(n_lmi), (np.arange(n_lmi), nw + np.arange(n_lmi))), shape=(n_lmi, nx)
        )
        a_w = sp.csr_matrix((-np.ones(nw), (np.arange(nw), np.arange(nw))), shape=(nw, nx))
        fixed_top = sp.vstack([a_pow, a_eps, a_w], format="csr")
        b_top = np.concatenate([np.ones(p), np.zeros(n_lmi + nw)])
        cone = {"l": p + n_lmi, "cs": [n] + [m] * n_lmi}
        return cls(
            p=p, d=d, v=v, has_floors=has_floors, n=n, m=m, n_lmi=n_lmi, nx=nx, idx_n=idx_n,
            mat=mat, sel_full=sel_full, sel_is_im=pm == 2,
            sel_scale=np.where(pm == 0, 1.0, _SQRT2), diag_rows_m=diag_m[:n],
            corner_row_m=int(diag_m[n]), fixed_top=fixed_top, b_top=b_top, cone=cone,
        )

    def lmi_map(self, g_u: np.ndarray, r_u: np.ndarray) -> sp.csr_matrix:
        """Real sparse (m^2 x n^2): x_W -> cvec(B^H W B), B = [diag(r_u), g_u].

        vec(B^H W B) = (B^T kron B^H) vec(W) (column-major); then keep the lower triangle's
        real parameters with SCS's sqrt(2) scaling."""
        n = self.n
        b = sp.hstack([sp.diags(r_u), sp.csr_matrix(g_u.reshape(n, 1))], format="csr")
        k = sp.kron(b.T, b.conj().T, format="csr") @ self.mat  # (m^2, n^2) complex
        k = k[self.sel_full]
        scale = sp.diags(self.sel_scale)
        im = sp.diags(self.sel_is_im.astype(float))
        re = sp.diags((~self.sel_is_im).astype(float))
        return scale @ (re @ k.real + im @ k.imag)

    def assemble(self, data: _Data) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
        """A, b (floors active) and b (floors zeroed) for SCS: A x + s = b, s in the cones."""
        n, m, v, nw = self.n, self.m, self.v, self.n * self.n
        blocks = [self.fixed_top]
        b_lmi = np.zeros(self.n_lmi * m * m)
        maps = [self.lmi_map(*data.stacked(u)) for u in range(v)]
        pad = sp.csr_matrix((m * m, self.nx - nw))
        for j in range(self.n_lmi):  # LMIs 0..v-1: objective (eq. 30); v..2v-1: floors (eq. 29)
            u = j % v
            # eps_j: +1 on the top-left diagonal, -budget in the corner; gamma: -w2_u in the
            # corner of the objective LMIs. SCS wants s = b - A x = cvec(LMI), so A = -d/dx.
            rows = [*self.diag_rows_m, self.corner_row_m]
            cols = [nw + j] * (n + 1)
            vals = [1.0] * n + [-data.budget]
            if j < v:
                rows, cols, vals = rows + [self.corner_row_m], cols + [self.nx - 1], vals + [
                    -data.w2[u]]
            eps_gamma = sp.csr_matrix((vals, (rows, cols)), shape=(m * m, self.nx))
            blocks.append(-(sp.hstack([maps[u], pad], format="csr") + eps_gamma))
            if j >= v and data.floors is not None:
                b_lmi[j * m * m + self.corner_row_m] = -data.floors[u]  # constant -floor_u
        A = sp.vstack(blocks, format="csc")
        A.eliminate_zeros()
        b_on = np.concatenate([self.b_top, b_lmi])
        b_off = np.concatenate([self.b_top, np.zeros_like(b_lmi)])
        return A, b_on, b_off


class _ScsBackend:
    name = "SCS"

    def __init__(self, data: _Data) -> None:
        key = (data.p, data.d, data.v, data.floors is not None)
        t0 = time.perf_counter()
        struct = _SCS_CACHE.get(key)
        self.compile_time = 0.0
        if struct is None:
            struct = _ScsStructure.build(*key)
            _SCS_CACHE.put(key, struct)
            _COMPILES["SCS"] += 1
            self.compile_time = time.perf_counter() - t0
        self.s = struct
        t1 = time.perf_counter()
        self.A, self.b_on, self.b_off = struct.assemble(data)
        self.setup_time = time.perf_counter() - t1
        self._solver: scs.SCS | None = None

    def _c(self, penalty: np.ndarray | None, gamma_ref: float) -> np.ndarray:
        c = np.zeros(self.s.nx)
        c[-1] = -1.0 / gamma_ref  # SCS minimises
        if penalty is not None:
            c[: self.s.n * self.s.n] = _hvec(penalty, self.s.idx_n)
        return c

    def solve(self, penalty: np.ndarray | None, gamma_ref: float, floors_on: bool,
              time_left: float | None) -> _SdpResult:
        c = self._c(penalty, gamma_ref)
        b = self.b_on if floors_on else self.b_off
        settings = dict(_SCS_SETTINGS)
        if time_left is not None:
            settings["time_limit_secs"] = max(time_left, 1e-3)
        t0 = time.perf_counter()
        try:
            if self._solver is None:
                self._solver = scs.SCS({"A": self.A, "b": b, "c": c}, self.s.cone, **settings)
                sol = self._solver.solve()
            else:
                # Same A: reuse the factorisation; warm start from the previous iterate.
                self._solver.update(b=b, c=c)
                sol = self._solver.solve(warm_start=True)
        except Exception as exc:  # noqa: BLE001 - a solver failure must not escape
            return _SdpResult(False, False, None, np.nan, f"exception: {exc}",
                              time.perf_counter() - t0, self.name)
        elapsed = time.perf_counter() - t0
        # status_val: 1 solved, 2 solved inaccurate (iteration/time cap), -2/-7 infeasible
        # (accurate/inaccurate); everything else (unbounded, indeterminate, failure) is a failure.
        status, status_val = str(sol["info"]["status"]), int(sol["info"]["status_val"])
        if status_val in (-2, -7):
            return _SdpResult(False, True, None, np.nan, status, elapsed, self.name)
        x = sol["x"]
        if status_val not in (1, 2) or not np.all(np.isfinite(x)):
            return _SdpResult(False, False, None, np.nan, status, elapsed, self.name)
        W = _hmat(x[: self.s.n * self.s.n], self.s.n, self.s.idx_n)
        return _SdpResult(True, False, W, float(x[-1]), status, elapsed, self.name,
                          inaccurate=status_val != 1)


# --------------------------------------------------------------------------------------------
# Clarabel backend: cvxpy + DPP, compiled once per shape
# --------------------------------------------------------------------------------------------


@dataclass
class _CvxpyProblem:
    problem: Any
    W: Any
    gamma: Any
    params: dict = field(default_factory=dict)


def _build_cvxpy(p: int, d: int, v: int, has_floors: bool) -> _CvxpyProblem:
    import cvxpy as cp  # imported lazily: ~1 s, and the default backend does not need it

    n = p * d
    W = cp.Variable((n, n), hermitian=True)
    gamma = cp.Variable()
    n_lmi = 2 * v if has_floors else v
    eps = cp.Variable(n_lmi, nonneg=True)
    # DPP: every product is parameter x variable. With D = diag(r) and B = [D, g]:
    #   D W D = multiply(r r^T, W);  (D W g)_i = sum_j (r_i g_j) W_ij;
    #   g^H W g = sum_ij conj(g_i) g_j W_ij;  tr(Pen W) = sum(multiply(Pen^T, W)).
    R = [cp.Parameter((n, n), nonneg=True, name=f"R{u}") for u in range(v)]
    P = [cp.Parameter((n, n), complex=True, name=f"P{u}") for u in range(v)]
    G = [cp.Parameter((n, n), complex=True, name=f"G{u}") for u in range(v)]
    w2 = cp.Parameter(v, nonneg=True, name="w2")
    budget = cp.Parameter(nonneg=True, name="budget")
    inv_ref = cp.Parameter(nonneg=True, name="inv_ref")
    pen_t = cp.Parameter((n, n), complex=True, name="pen_t")
    floors = cp.Parameter(v, nonneg=True, name="floors") if has_floors else None
    cons = [W >> 0]
    cons += [cp.real(cp.trace(W[k * d:(k + 1) * d, k * d:(k + 1) * d])) <= 1 for k in range(p)]
    eye = np.eye(n)
    for j in range(n_lmi):
        u = j % v
        top = cp.multiply(R[u], W) + eps[j] * eye
        col = cp.reshape(cp.sum(cp.multiply(P[u], W), axis=1), (n, 1), order="F")
        target = gamma * w2[u] if j < v else floors[u]
        corner = cp.real(cp.sum(cp.multiply(G[u], W))) - target - eps[j] * budget
        lmi = cp.bmat([[top, col], [cp.conj(col).T, cp.reshape(corner, (1, 1), order="F")]])
        cons.append(lmi >> 0)
    obj = cp.Maximize(gamma * inv_ref - cp.real(cp.sum(cp.multiply(pen_t, W))))
    prob = cp.Problem(obj, cons)
    if not prob.is_dpp():  # pragma: no cover - a construction bug, not a runtime condition
        raise RuntimeError("SDR problem is not DPP")
    params = {"R": R, "P": P, "G": G, "w2": w2, "budget": budget, "inv_ref": inv_ref,
              "pen_t": pen_t, "floors": floors}
    return _CvxpyProblem(prob, W, gamma, params)


class _ClarabelBackend:
    name = "CLARABEL"

    def __init__(self, data: _Data) -> None:
        import cvxpy as cp

        self._cp = cp
        key = (data.p, data.d, data.v, data.floors is not None)
        t0 = time.perf_counter()
        entry = _CVXPY_CACHE.get(key)
        self.compile_time = 0.0
        fresh = entry is None
        if fresh:
            entry = _build_cvxpy(*key)
        self.e = entry
        n, v = data.n, data.v
        prm = entry.params
        for u in range(v):
            g_u, r_u = data.stacked(u)
            prm["R"][u].value = np.outer(r_u, r_u)
            prm["P"][u].value = np.outer(r_u, g_u)
            prm["G"][u].value = np.outer(g_u.conj(), g_u)
        prm["w2"].value = data.w2
        prm["budget"].value = data.budget
        prm["inv_ref"].value = 1.0
        prm["pen_t"].value = np.zeros((n, n), dtype=complex)
        self._floors = data.floors
        if prm["floors"] is not None:
            prm["floors"].value = data.floors
        if fresh:
            # Compile now (canonicalisation + DPP tensor) so the time is attributable; solve()
            # reuses the problem's cached parameterised program.
            entry.problem.get_problem_data(cp.CLARABEL)
            _CVXPY_CACHE.put(key, entry)
            _COMPILES["CLARABEL"] += 1
            self.compile_time = time.perf_counter() - t0
        self.setup_time = 0.0

    def solve(self, penalty: np.ndarray | None, gamma_ref: float, floors_on: bool,
              time_left: float | None) -> _SdpResult:
        cp = self._cp
        prm = self.e.params
        n = self.e.W.shape[0]
        prm["inv_ref"].value = 1.0 / gamma_ref
        prm["pen_t"].value = (np.zeros((n, n), dtype=complex) if penalty is None
                              else np.ascontiguousarray(penalty.T))
        if prm["floors"] is not None:
            prm["floors"].value = self._floors if floors_on else np.zeros_like(self._floors)
        opts: dict[str, Any] = {}
        if time_left is not None:
            opts["time_limit"] = max(time_left, 1e-3)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "solution may be inaccurate": we check status
                self.e.problem.solve(solver=cp.CLARABEL, **opts)
        except Exception as exc:  # noqa: BLE001 - a solver failure must not escape
            return _SdpResult(False, False, None, np.nan, f"exception: {exc}",
                              time.perf_counter() - t0, self.name)
        elapsed = time.perf_counter() - t0
        status = str(self.e.problem.status)
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            return _SdpResult(False, True, None, np.nan, status, elapsed, self.name)
        W = self.e.W.value
        gam = self.e.gamma.value
        if (status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or W is None or gam is None
                or not np.all(np.isfinite(W))):
            return _SdpResult(False, False, None, np.nan, status, elapsed, self.name)
        W = np.asarray(W, dtype=complex)
        W = 0.5 * (W + W.conj().T)
        return _SdpResult(True, False, W, float(gam), status, elapsed, self.name,
                          inaccurate=status != cp.OPTIMAL)


_BACKENDS = {"SCS": _ScsBackend, "CLARABEL": _ClarabelBackend}


# --------------------------------------------------------------------------------------------
# The method
# --------------------------------------------------------------------------------------------


def _principal(W: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(principal eigenvector, lambda_1, lambda_2 / lambda_1) of a Hermitian W."""
    lam, vec = np.linalg.eigh(0.5 * (W + W.conj().T))
    lam1 = float(lam[-1])
    lam2 = float(max(lam[-2], 0.0)) if lam.size > 1 else 0.0
    # W ~ 0 counts as rank <= 1 (nothing left to penalise)
    ratio = lam2 / lam1 if lam1 > 1e-12 else 0.0
    return vec[:, -1], lam1, ratio


def _beam(W: np.ndarray, p: int, d: int) -> np.ndarray:
    """x = sqrt(lambda_1) u1 split per node, projected onto the per-node unit balls."""
    u1, lam1, _ = _principal(W)
    x = np.sqrt(max(lam1, 0.0)) * u1
    if x.size:
        # fix the free global phase (the largest entry real positive) so results are
        # reproducible across solvers
        k = int(np.argmax(np.abs(x)))
        if abs(x[k]) > 0:
            x = x * (abs(x[k]) / x[k])
    return project_power(x.reshape(p, d))


def _model_snr(problem: BeamProblem, x: np.ndarray, budget: float) -> np.ndarray:
    """Worst-case SNR of each user under the aggregate error set (what the SDP guarantees for a
    rank-one W): max(0, |g^H x| - sqrt(budget) ||D x||)^2, in the caller's normalised units."""
    sig = np.abs(np.einsum("nvd,nd->v", problem.g.conj(), x))
    dx = np.sqrt(np.einsum("nv,n->v", problem.rho ** 2, np.linalg.norm(x, axis=1) ** 2))
    return np.maximum(sig - np.sqrt(budget) * dx, 0.0) ** 2


def _validate(problem: BeamProblem, weights: np.ndarray | None, floors: np.ndarray | None,
              budget: float | None, solver: str) -> tuple[np.ndarray, np.ndarray | None, float]:
    g, rho = np.asarray(problem.g), np.asarray(problem.rho)
    if g.ndim != 3 or rho.shape != g.shape[:2]:
        raise ValueError(f"bad problem shapes g {g.shape}, rho {rho.shape}")
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(rho))) or np.any(rho < 0):
        raise ValueError("channels and radii must be finite, radii >= 0")
    v = g.shape[1]
    w = np.ones(v) if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    if w.shape != (v,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("weights must be (v,) finite and > 0")
    f = None
    if floors is not None:
        f = np.asarray(floors, dtype=float).reshape(-1)
        if f.shape != (v,) or np.any(np.isnan(f)):
            raise ValueError("floors must be (v,) and not NaN")
    b = float(g.shape[0]) if budget is None else float(budget)
    if not np.isfinite(b) or b < 0:
        raise ValueError("budget must be finite and >= 0")
    if solver.upper() not in _BACKENDS:
        raise ValueError(f"solver must be one of {SOLVERS}")
    return w, f, b


def solve_sdr(
    problem: BeamProblem,
    weights: np.ndarray | None = None,
    floors: np.ndarray | None = None,
    *,
    budget: float | None = None,
    mu: float = 1.0,
    max_dc_iterations: int = 20,
    rank_tol: float = 1e-6,
    solver: str = "SCS",
    time_limit: float | None = None,
    mu_growth: float = 1.0,
) -> MethodOutput:
    """Robust max-min beamforming by SDR, S-procedure LMIs and the DC rank penalty (paper III-F).

    Parameters
    ----------
    problem : BeamProblem
        Normalised problem (reduced or not). SNRs below are linear, in normalised units.
    weights : (v,) positive, optional
        Maximise gamma with SNR_u >= gamma * weights_u^2 (default ones: max-min SNR, i.e. min
        broadcast delay; sqrt(SNR_req) gives the QoS-ratio objective of :mod:`methods`).
    floors : (v,) optional
        Per-user SNR floors (QoS, eq. 29); values <= 0 impose nothing.
    budget : float, optional
        Aggregate error budget: sum_n ||e_{n,u}||^2 / rho_{n,u}^2 <= budget (eq. 28). Default p;
        pass the paper's N (total nodes) for the faithful version (the oracle does, with its
        default ``sdr_budget="paper"``). budget >= p keeps the solution
        safe under the exact per-node error model; budget = 0 is the non-robust SDR.
    mu : float
        DC penalty weight for the normalised objective gamma / gamma0 (see module docstring).
    max_dc_iterations : int
        Cap on the penalised SDPs after the relaxation (the paper reports 2-3 in total).
    rank_tol : float
        W counts as rank one when lambda_2 <= rank_tol * lambda_1.
    solver : "SCS" (default) or "CLARABEL"
        First solver; the other is the fallback (Clarabel only while p d <= 12, see above).
    mu_growth : float
        Not in the paper (default 1: fixed mu, faithful). mu_k = mu * mu_growth^(k-1) at DC
        iteration k: a continuation that escapes the non-rank-one stationary points where fixed
        mu = 1 stalls (measured: none at rho <= 0.2 ||g||, ~15% of instances at 0.3 ||g||, most
        of the non-rank-one relaxations at 0.6 ||g||).
    time_limit : float, optional
        Wall-clock seconds for the DC phase: no DC iteration starts after it, a DC solve is capped
        by the remaining time (a cut-short iterate is discarded) -> ITERATION_LIMIT with the
        principal-eigenvector beam of the last complete W. The relaxation itself always runs to
        completion (it provides the beam).

    Returns
    -------
    MethodOutput with x (p, d), ||x_n|| <= 1; iterations = DC iterations. Status: OPTIMAL (the
    relaxation is rank one: optimal for the aggregate-error model), CONVERGED (DC reached rank
    one), ITERATION_LIMIT, INFEASIBLE (floors; beam = penalty-free max-min solution without
    floors) or NUMERICAL_FAILURE. ``extra``: dc_iterations, gamma (SDP value of the final W, SNR),
    gamma_relaxation (iteration 0: an upper bound on the max-min under the aggregate model),
    gamma_u (= gamma * weights^2), snr_model (aggregate-model worst-case SNR of x), rank_ratio,
    solver (e.g. "SCS", or "SCS->CLARABEL" after a fallback), solve_time_s (solver calls),
    compile_time_s (0 when the compiled problem was cached), setup_time_s (data assembly; the
    first Clarabel call also pays the ~1 s cvxpy import here), total_time_s, solves,
    inaccurate_solves, budget, mu, mu_growth. All times are wall-clock seconds.
    """
    t_start = time.perf_counter()
    w, f, b = _validate(problem, weights, floors, budget, solver)
    if not (np.isfinite(mu) and mu >= 0 and np.isfinite(mu_growth) and mu_growth >= 1):
        raise ValueError("need mu >= 0 and mu_growth >= 1 (finite)")
    p, v, d = problem.g.shape
    solver = solver.upper()
    extra: dict[str, Any] = {
        "dc_iterations": 0, "gamma": 0.0, "gamma_relaxation": 0.0, "rank_ratio": 0.0,
        "solver": solver, "solve_time_s": 0.0, "compile_time_s": 0.0, "setup_time_s": 0.0,
        "solves": 0, "inaccurate_solves": 0, "budget": b, "mu": mu, "mu_growth": mu_growth,
    }

    def finish(x: np.ndarray, status: MethodStatus, message: str) -> MethodOutput:
        x = project_power(np.asarray(x, dtype=complex).reshape(p, d))
        extra["gamma_u"] = extra["gamma"] * w ** 2
        extra["snr_model"] = _model_snr(problem, x, b) if v else np.zeros(0)
        extra["total_time_s"] = time.perf_counter() - t_start
        return MethodOutput(x=x, status=status, iterations=extra["dc_iterations"],
                            message=message, extra=extra)

    def fallback_beam() -> np.ndarray:
        if v == 0 or p == 0:
            return np.zeros((p, d), dtype=complex)
        return robust_mrt(problem, user=int(np.argmin(amplitude_upper_bound(problem)))).x

    if v == 0 or p == 0 or d == 0:
        return finish(np.zeros((p, d), dtype=complex), MethodStatus.OPTIMAL, "sdr: nothing to do")

    # ---- scaled data (exact: the LMIs are homogeneous in (g, rho, gamma, eps, floors)) ----
    rho = problem.rho if b > 0 else np.zeros_like(problem.rho)
    stacked_norm = np.sqrt(np.sum(np.abs(problem.g) ** 2, axis=(0, 2)))
    scale = float(max(stacked_norm.max(initial=0.0), rho.max(initial=0.0)))
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    f_scaled = None if f is None else np.maximum(f, 0.0) / scale ** 2
    data = _Data(p, d, v, problem.g / scale, rho / scale, w ** 2, f_scaled, b, scale)
    s2 = scale ** 2

    backends: dict[str, Any] = {}

    def get_backend(name: str) -> Any | None:
        if name not in backends:
            t0 = time.perf_counter()
            try:
                backends[name] = _BACKENDS[name](data)
            except Exception:  # noqa: BLE001 - e.g. cvxpy canonicalisation trouble
                backends[name] = None
                extra["setup_time_s"] += time.perf_counter() - t0
                return None
            be = backends[name]
            extra["compile_time_s"] += be.compile_time
            extra["setup_time_s"] += time.perf_counter() - t0 - be.compile_time
        return backends[name]

    order = [solver] + [s for s in SOLVERS if s != solver]
    affordable = {"SCS": True,
                  "CLARABEL": solver == "CLARABEL" or p * d <= _CLARABEL_AFFORDABLE_DIM}
    used: list[str] = []

    def time_left() -> float | None:
        return None if time_limit is None else time_limit - (time.perf_counter() - t_start)

    def run(penalty: np.ndarray | None, gamma_ref: float, floors_on: bool,
            capped: bool) -> _SdpResult:
        """One SDP, falling back to the other solver on failure (not on infeasibility).
        ``capped``: the solver gets the remaining wall time (DC iterations only)."""
        last = None
        for name in order:
            if not affordable[name]:
                continue
            tl = time_left() if capped else None
            if tl is not None and tl <= 0 and last is not None:
                break  # no time for a fallback solve
            be = get_backend(name)
            if be is None:
                continue
            try:
                res = be.solve(penalty, gamma_ref, floors_on, tl)
            except Exception as exc:  # noqa: BLE001 - backends catch solver errors; belt and braces
                res = _SdpResult(False, False, None, np.nan, f"exception: {exc}", 0.0, name)
            extra["solves"] += 1
            extra["solve_time_s"] += res.solve_time
            extra["inaccurate_solves"] += int(res.inaccurate)
            if name not in used:
                used.append(name)
            extra["solver"] = "->".join(used)
            if res.ok or res.infeasible:
                if name != order[0]:
                    # keep using the solver that works for the remaining DC iterations
                    order.remove(name)
                    order.insert(0, name)
                return res
            last = res
        return last if last is not None else _SdpResult(False, False, None, np.nan,
                                                        "no solver available", 0.0, "")

    # ---- iteration 0: the relaxation (always solved to completion: it provides the beam) ----
    floors_on = f is not None
    res = run(None, 1.0, floors_on, capped=False)
    if res.infeasible and floors_on:
        # The floors are infeasible for the model; report the max-min beam without them.
        extra["infeasible_status"] = res.status
        res2 = run(None, 1.0, False, capped=False)
        if res2.ok:
            extra["gamma"] = extra["gamma_relaxation"] = res2.gamma * s2
            extra["rank_ratio"] = _principal(res2.W)[2]
            return finish(_beam(res2.W, p, d), MethodStatus.INFEASIBLE,
                          f"sdr: floors infeasible ({res.status}); max-min beam without floors")
        return finish(fallback_beam(), MethodStatus.INFEASIBLE,
                      f"sdr: floors infeasible ({res.status}); robust-MRT fallback")
    if not res.ok:
        return finish(fallback_beam(), MethodStatus.NUMERICAL_FAILURE,
                      f"sdr: relaxation failed ({res.status}); robust-MRT fallback")

    gamma0 = res.gamma
    extra["gamma"] = extra["gamma_relaxation"] = gamma0 * s2
    W = res.W
    _, _, ratio = _principal(W)
    extra["rank_ratio"] = ratio
    if ratio <= rank_tol:
        return finish(_beam(W, p, d), MethodStatus.OPTIMAL, "sdr: relaxation is rank one")

    # ---- DC iterations (eq. 33) ----
    # gamma / gamma_ref with gamma_ref = gamma0; a (numerically) zero relaxation value means some
    # user is unreachable, then gamma stays ~0 and the penalty alone drives W to rank one.
    gamma_ref = gamma0 if gamma0 > _GAMMA_TINY else 1.0
    eye = np.eye(data.n)
    status, message = MethodStatus.ITERATION_LIMIT, "sdr: DC iteration cap reached"
    for k in range(1, max_dc_iterations + 1):
        tl = time_left()
        if tl is not None and tl <= 0:
            message = "sdr: time limit reached"
            break
        u1, _, _ = _principal(W)
        mu_k = mu * mu_growth ** (k - 1)
        res = run(mu_k * (eye - np.outer(u1, u1.conj())), gamma_ref, floors_on, capped=True)
        tl = time_left()
        if (not res.ok or res.inaccurate) and tl is not None and tl <= 0:
            # cut short by the time limit: its iterate may be infeasible, keep the previous W
            message = f"sdr: time limit reached during DC iteration {k}"
            break
        if not res.ok:
            return finish(_beam(W, p, d), MethodStatus.NUMERICAL_FAILURE,
                          f"sdr: DC iteration {k} failed ({res.status}); last valid beam")
        extra["dc_iterations"] = k
        W = res.W
        extra["gamma"] = res.gamma * s2
        _, _, ratio = _principal(W)
        extra["rank_ratio"] = ratio
        if ratio <= rank_tol:
            status, message = MethodStatus.CONVERGED, f"sdr: rank one after {k} DC iterations"
            break
    return finish(_beam(W, p, d), status, message)
