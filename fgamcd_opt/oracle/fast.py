r"""`fast`: successive convex approximation (SCA) on the beams directly, with the exact margin.

The worst-case amplitude a_u(x) = |sum_n g_{n,u}^H x_n| - sum_n rho_{n,u} ||x_n|| is a convex
function (|.|) minus a convex function (norms). At the current point x0, the phase-aligned linear
part Re(e^{-j phi_u} sum_n g_{n,u}^H x_n), phi_u = arg(sum_n g_{n,u}^H x0_n), is a global minorant
of |.| that is tight at x0. Replacing |.| by it gives a second-order cone program (SOCP)

    maximise s
    s.t.   Re(e^{-j phi_u} g_u^H x) - sum_n rho_{n,u} r_n >= t_u s     (every served user u)
           Re(e^{-j phi_u} g_u^H x) - sum_n rho_{n,u} r_n >= sqrt(floor_u)   (QoS floors, if any)
           ||x_n|| <= r_n <= 1                                           (per-node power)

whose optimum is >= the current objective (x0 is feasible for it), so the exact objective never
decreases; iterate until the relative gain is below ``tol``. Each SOCP is built as sparse
matrices and handed to Clarabel directly (no modelling-layer compilation; the sparsity pattern is
built once per shape and shared, and only the user rows change). The problem is non-convex, so three
deterministic starts (weighted MRT, robust MRT of the weakest user, plain MRT) each get a few SCA
steps and only the most promising one is run to convergence (``n_random_starts`` adds seeded
random starts: the multi-start reference of the benchmark).

Run on the reduced problem (problem.reduce()), each SOCP has 2 p d + p + 1 variables.
"""

from __future__ import annotations

import time

import clarabel
import numpy as np
import scipy.sparse as sp

from .methods import MethodOutput, MethodStatus, mrt, robust_mrt
from .problem import BeamProblem, project_power

_SETTINGS_CACHE: dict = {}


def _settings(max_iter: int = 100, limit: float | None = None) -> clarabel.DefaultSettings:
    s = _SETTINGS_CACHE.get(max_iter) if limit is None else None
    if s is None:
        s = clarabel.DefaultSettings()
        s.verbose = False
        s.max_iter = max_iter
        # each SOCP only proposes the next SCA point, which the exact objective then judges:
        # 1e-5 / 1e-6 give the same SCA results as 1e-7 / 1e-8 (exact min-rate ratio >= 0.9998
        # on 600 metro subproblems) with ~12% less time (docs/model.md section 6)
        s.tol_gap_abs = 1e-5
        s.tol_gap_rel = 1e-5
        s.tol_feas = 1e-6
        # the template's solver is kept and updated in place between SCA steps (its A's
        # values change, not its pattern), which Clarabel allows only without presolve and
        # with explicit zeros kept; the problem has no infinite bounds for presolve to drop
        s.presolve_enable = False
        s.input_sparse_dropzeros = False
        if limit is None:
            _SETTINGS_CACHE[max_iter] = s
        else:
            s.time_limit = limit
    return s


class _Structure:
    """What the SCA subproblem's matrices share across every problem of one (p, v, d, floors)
    shape: the CSC pattern of A, its constant entries, b's constant rows, q, P and the cones.

    Built once per shape and shared by every template of that shape, so its arrays are made
    read-only: a template copies ``data0`` and writes its own values into the copy.

    A's rows: the ``nu`` user rows (dense: every column), then r_n <= 1 (p rows), then one
    second-order cone (r_n, Re x_n, Im x_n) per node (2 d + 1 rows each), i.e. s = b - A z with
    A = -selector. Columns: z = [Re x_1, Im x_1, ..., Re x_p, Im x_p, r_1..r_p, s].
    """

    def __init__(self, p: int, v: int, d: int, has_floors: bool):
        nx = 2 * p * d
        nz = nx + p + 1
        nu = v * (2 if has_floors else 1)
        n_soc = 2 * d + 1
        m = nu + p + p * n_soc
        user_rows = np.arange(nu)
        # column c = 2 d n + j of x_n: the user rows, then its row in node n's cone
        x_soc = nu + p + np.arange(p)[:, None] * n_soc + 1 + np.arange(2 * d)[None, :]
        x_rows = np.hstack([np.broadcast_to(user_rows, (nx, nu)), x_soc.reshape(nx, 1)])
        x_data = np.hstack([np.ones((nx, nu)), -np.ones((nx, 1))])
        # column r_n: the user rows, its power row, the head of node n's cone
        r_rows = np.hstack([np.broadcast_to(user_rows, (p, nu)), (nu + np.arange(p))[:, None],
                            (nu + p + np.arange(p) * n_soc)[:, None]])
        r_data = np.hstack([np.ones((p, nu)), np.ones((p, 1)), -np.ones((p, 1))])
        # scipy picks int32 index arrays for matrices this small; Clarabel gets the same values
        self.indices = np.concatenate([x_rows.ravel(), r_rows.ravel(), user_rows]).astype(np.int32)
        self.data0 = np.concatenate([x_data.ravel(), r_data.ravel(), np.ones(nu)])
        counts = np.concatenate([np.full(nx, nu + 1), np.full(p, nu + 2), [nu]])
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        # the user rows of column c start at indptr[c] (rows are sorted and users come first)
        self.user_pos = (self.indptr[:nx, None] + user_rows[None, :]).ravel()
        # user_const (nu, p + 1) goes to the r and s columns in (column, row) order
        self.const_pos = (self.indptr[nx:nz, None] + user_rows[None, :]).ravel()
        self.shape = (m, nz)
        self.nx, self.nz, self.nu = nx, nz, nu
        self.b_const = np.concatenate([np.ones(p), np.zeros(p * n_soc)])
        self.q = np.zeros(nz)
        self.q[nx + p] = -1.0
        self.P = sp.csc_matrix((nz, nz))
        for a in (self.indices, self.data0, self.indptr, self.user_pos, self.const_pos,
                  self.b_const, self.q, self.P.data, self.P.indices, self.P.indptr):
            a.flags.writeable = False
        self.cones = (clarabel.NonnegativeConeT(nu + p),) + tuple(
            clarabel.SecondOrderConeT(n_soc) for _ in range(p))


_STRUCTURES: dict[tuple[int, int, int, bool], _Structure] = {}


def _structure(p: int, v: int, d: int, has_floors: bool) -> _Structure:
    key = (p, v, d, has_floors)
    st = _STRUCTURES.get(key)
    if st is None:
        # shapes are few (nodes x users x antennas of one instance family); a bounded dict keeps
        # a pathological stream of shapes from growing without limit
        if len(_STRUCTURES) >= 4096:
            _STRUCTURES.clear()
        st = _STRUCTURES[key] = _Structure(p, v, d, has_floors)
    return st


class _SocpTemplate:
    """The SCA subproblem of one problem: A, b, q, P and cones handed to Clarabel.

    Variable layout: z = [Re x_1, Im x_1, ..., Re x_p, Im x_p, r_1..r_p, s]. The pattern of A
    depends only on the shape and is shared (``_Structure``); this template owns a copy of A's
    values, fills the problem's rho, t and floors once, and only the user rows of the x columns
    change between SCA iterations (``solve``).
    """

    def __init__(self, problem: BeamProblem, t: np.ndarray, floors: np.ndarray | None):
        p, v, d = problem.g.shape
        self.p, self.v, self.d = p, v, d
        self.has_floors = floors is not None
        st = _structure(p, v, d, self.has_floors)
        self.nz = st.nz
        self.ir = st.nx  # index of r_1
        self.i_s = st.nx + p  # index of s
        self.n_user_rows = n_user_rows = st.nu
        # user rows: s*t_u - Re(...) + rho^T r <= b_u (b_u = 0 or -sqrt(floor_u))
        rho_t = np.asarray(problem.rho, dtype=float).T
        s_col = np.asarray(t, dtype=float)
        if self.has_floors:
            rho_t = np.vstack([rho_t, rho_t])
            s_col = np.concatenate([s_col, np.zeros(v)])
        self.user_const = np.hstack([rho_t, s_col[:, None]])  # (rows, p + 1)
        self.b_user = np.zeros(n_user_rows)
        if self.has_floors:
            self.b_user[v:] = -np.sqrt(np.maximum(floors, 0.0))
        self.b_const = st.b_const
        self.b = np.concatenate([self.b_user, st.b_const])
        data = st.data0.copy()
        # zero coefficients keep a tiny placeholder so that the pattern stays the shared one
        uc = self.user_const
        data[st.const_pos] = np.where(uc != 0, uc, 1e-300).T.ravel()
        self.A = sp.csc_matrix((data, st.indices, st.indptr), shape=st.shape, copy=False)
        self.A.has_sorted_indices = True
        self.user_pos = st.user_pos
        # the x columns come first and hold n_user_rows + 1 entries each, users first
        self._x_user = self.A.data[: st.nx * (n_user_rows + 1)].reshape(st.nx, n_user_rows + 1)
        self.P, self.q = st.P, st.q
        self.cones = list(st.cones)
        self._solver = None  # Clarabel's solver, built at the first solve, updated after

    def solve(self, g_rot: np.ndarray, time_limit: float | None = None):
        """One SOCP with user channels already rotated by e^{j phi_u}: g_rot (p, v, d);
        ``time_limit`` (s): Clarabel stops there (a huge group under a run's time limit)."""
        p, v, d = self.p, self.v, self.d
        # Re(g^H x) = Re(g) . Re(x) + Im(g) . Im(x); column 2 d n + j of x_n, row u
        lin = np.stack([g_rot.real, g_rot.imag], axis=1).transpose(0, 1, 3, 2)
        lin = lin.reshape(2 * p * d, v)
        np.negative(lin, out=self._x_user[:, :v])
        if self.has_floors:
            np.negative(lin, out=self._x_user[:, v:2 * v])
        if time_limit is not None:  # rare (a run's deadline): a solver of its own
            solver = clarabel.DefaultSolver(self.P, self.q, self.A, self.b, self.cones,
                                            _settings(limit=max(float(time_limit), 1e-3)))
        elif self._solver is None:
            solver = self._solver = clarabel.DefaultSolver(self.P, self.q, self.A, self.b,
                                                           self.cones, _settings())
        else:
            # same pattern, new values: Clarabel keeps its symbolic factorisation and
            # allocations (a quarter of an SOCP's time at metro scale; docs/model.md section 6)
            solver = self._solver
            solver.update(A=self.A.data)
        sol = solver.solve()
        z = np.asarray(sol.x)
        xr = z[: 2 * p * d].reshape(p, 2, d)
        x = xr[:, 0, :] + 1j * xr[:, 1, :]
        return x, str(sol.status), float(-sol.obj_val) if np.isfinite(sol.obj_val) else -np.inf


def _objective(problem: BeamProblem, x: np.ndarray, t: np.ndarray) -> float:
    a = np.abs(np.einsum("nvd,nd->v", problem.g.conj(), x)) - problem.rho.T @ np.linalg.norm(
        x, axis=1
    )
    return float(np.min(a / t))


def _floors_met(problem: BeamProblem, x: np.ndarray, floors: np.ndarray | None) -> bool:
    if floors is None:
        return True
    return bool(np.all(problem.amplitude(x) ** 2 >= floors * (1 - 1e-7)))


def starting_points(problem: BeamProblem, t: np.ndarray, n_random: int = 0, seed: int = 0):
    """Deterministic starts: weighted MRT toward all users (weaker users weighted up), robust MRT
    of the weakest user, and optionally ``n_random`` seeded random beams (multi-start)."""
    strength = np.maximum(np.linalg.norm(problem.g, axis=2) - problem.rho, 0.0).sum(axis=0)
    weak = np.divide(t, np.maximum(strength, 1e-12))
    starts = [mrt(problem, weights=weak / weak.max()).x]
    starts.append(robust_mrt(problem, user=int(np.argmax(weak))).x)
    if problem.n_users > 1:
        starts.append(mrt(problem).x)
    rng = np.random.default_rng(seed)
    for _ in range(n_random):
        z = rng.standard_normal(problem.g.shape[::2]) + 1j * rng.standard_normal(
            problem.g.shape[::2]
        )
        starts.append(project_power(z / np.linalg.norm(z, axis=1, keepdims=True)))
    return starts


def sca(
    problem: BeamProblem,
    x0: np.ndarray,
    t: np.ndarray,
    floors: np.ndarray | None = None,
    *,
    max_iterations: int = 50,
    tol: float = 1e-5,
    template: _SocpTemplate | None = None,
    stop_at: float | None = None,
    extrapolate: bool = True,
) -> tuple[np.ndarray, float, int, str]:
    """Run SCA from x0 (no new SOCP after ``stop_at``, a ``time.perf_counter()`` instant).
    Returns (x, objective, iterations, clarabel status of the last SOCP).

    ``extrapolate``: after each SCA step x_k -> x_{k+1}, also try the point
    x_{k+1} + beta (x_{k+1} - x_k) (power-projected) and move there if its exact objective is
    higher (and the floors hold); beta grows by 1.5 after a success (at most 4) and halves
    after a failure (at least 1/4). The steps stay monotone, and on 112 metro subproblems
    the iterations to reach plain SCA's 60-step objective fell from 44 to 23 on average,
    never below plain SCA's objective at the same step (docs/model.md section 6)."""
    template = template or _SocpTemplate(problem, t, floors)
    x = project_power(x0)
    best = _objective(problem, x, t)
    last_status = "none"
    it = 0
    beta = 1.0
    for it in range(1, max_iterations + 1):  # noqa: B007 (returned after the loop)
        if stop_at is not None and time.perf_counter() > stop_at:
            last_status = "time_limit"
            break
        sig = np.einsum("nvd,nd->v", problem.g.conj(), x)
        # phase of each user's current signal; any phase will do where the signal is zero
        phase = np.where(np.abs(sig) > 0, sig / np.maximum(np.abs(sig), 1e-300), 1.0)
        try:
            g_rot = problem.g * phase[None, :, None]
            x_new, last_status, _ = (template.solve(g_rot) if stop_at is None else
                                     template.solve(g_rot, stop_at - time.perf_counter()))
        except Exception as exc:  # Clarabel raises on malformed numerics; keep the iterate
            last_status = f"error: {exc}"
            break
        if last_status not in ("Solved", "AlmostSolved") or not np.all(np.isfinite(x_new)):
            break
        x_new = project_power(x_new)
        obj = _objective(problem, x_new, t)
        if obj < best - 1e-9 * max(abs(best), 1.0) or not _floors_met(problem, x_new, floors):
            break  # numerical noise of the SOCP; the previous iterate is kept
        if extrapolate and it > 1:  # x is the previous accepted step (a reject breaks)
            y = project_power(x_new + beta * (x_new - x))
            obj_y = _objective(problem, y, t)
            if obj_y > obj and _floors_met(problem, y, floors):
                x_new, obj, beta = y, obj_y, min(1.5 * beta, 4.0)
            else:
                beta = max(0.5 * beta, 0.25)
        gain = obj - best
        x, best = x_new, obj
        if gain <= tol * max(abs(best), 1e-9):
            break
    return x, best, it, last_status


def solve_fast(
    problem: BeamProblem,
    weights: np.ndarray | None = None,
    floors: np.ndarray | None = None,
    *,
    init: np.ndarray | None = None,
    n_random_starts: int = 0,
    seed: int = 0,
    max_iterations: int = 100,
    race_iterations: int = 3,
    tol: float = 1e-4,
    time_limit: float | None = None,
    first_order: str = "auto",
    first_order_users: int = 16,
    race_starts: int | None = None,
) -> MethodOutput:
    """Maximise min_u a_u(x)/t_u (t = ``weights``, default 1) subject to SNR floors and power.

    Returns the best SCA result over the starting points (plus ``init`` if given). Never raises:
    a solver error keeps the best valid iterate and reports NUMERICAL_FAILURE.

    ``race_starts``: race only the first this many deterministic starts (besides ``init``; None:
    all), the oracle's warm start (a subset's beams) racing the weighted MRT.

    ``first_order``: 'on', 'off' or 'auto' (on when torch sees a CUDA GPU): groups of at least
    ``first_order_users`` users (without SNR floors) are solved by the batched first-order
    method (oracle/batch.py) from the same starts, then a few SCA steps; its point is checked
    by the exact objective against the starts (never worse than the best of them), and an SCA
    result at rate 0 is retried with it.
    """
    start_time = time.perf_counter()
    stop_at = None if time_limit is None else start_time + time_limit
    t = np.ones(problem.n_users) if weights is None else np.asarray(weights, dtype=float)
    use_fo = _first_order_active(first_order)
    if use_fo and floors is None and problem.n_users >= first_order_users:
        out = _first_order(problem, t, init, first_order, race_iterations, tol)
        if out is not None:
            return out
    starts = ([init] if init is not None else []) + starting_points(
        problem, t, n_random=n_random_starts, seed=seed
    )[:race_starts]
    template = _SocpTemplate(problem, t, floors)
    # Race: a few SCA steps from every start, then run only the most promising one to
    # convergence. Most of SCA's gain comes in its first steps, so the ranking is reliable.
    runs, total_it, statuses = [], 0, []
    for x0 in starts:
        x, obj, it, status = sca(problem, x0, t, floors, max_iterations=race_iterations, tol=tol,
                                 template=template, stop_at=stop_at)
        total_it += it
        statuses.append(status)
        runs.append((obj if _floors_met(problem, x, floors) else -np.inf, x, it))
    runs.sort(key=lambda r: -r[0])
    best_obj, best_x, it0 = runs[0]
    if np.isfinite(best_obj) and it0 >= race_iterations:
        timed_out = time_limit is not None and time.perf_counter() - start_time > time_limit
        if not timed_out:
            x, obj, it, status = sca(problem, best_x, t, floors, max_iterations=max_iterations,
                                     tol=tol, template=template)
            total_it += it
            statuses.append(status)
            if obj >= best_obj:
                best_x, best_obj = x, obj
        else:
            statuses.append("time_limit")
    if not np.isfinite(best_obj):
        best_x = None
    extra = {"iterations_per_start": total_it / max(len(starts), 1), "starts": len(starts),
             "clarabel_status": statuses[-1] if statuses else "none"}
    if best_x is None:
        # no start satisfied the floors: infeasible for this method (a local method: not a proof)
        fallback = sca(problem, starts[0], t, None, max_iterations=max_iterations, tol=tol)[0]
        return MethodOutput(fallback, MethodStatus.INFEASIBLE, total_it,
                            "no start met the SNR floors", extra)
    if use_fo and floors is None and best_obj <= 0:
        # SCA ended with a user at rate 0: the first-order method may still reach everyone
        out = _first_order(problem, t, init, first_order, race_iterations, tol)
        if out is not None and _objective(problem, out.x, t) > best_obj:
            return out
    errors = [s for s in statuses if s.startswith("error")]
    if errors and len(errors) == len(statuses):
        return MethodOutput(best_x, MethodStatus.NUMERICAL_FAILURE, total_it, errors[0], extra)
    if "time_limit" in statuses:
        return MethodOutput(best_x, MethodStatus.ITERATION_LIMIT, total_it, "time limit", extra)
    return MethodOutput(best_x, MethodStatus.CONVERGED, total_it, "sca", extra)


def _first_order_active(mode: str) -> bool:
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"first_order must be 'auto', 'on' or 'off', not {mode!r}")
    if mode == "auto":
        from .batch import backend

        return backend("auto").name == "torch"
    return mode == "on"


def _first_order(problem: BeamProblem, t: np.ndarray, init, mode: str, polish: int,
                 tol: float) -> MethodOutput | None:
    """The batched first-order method from the deterministic starts (and ``init``), then
    ``polish`` SCA steps; None when its point is worse, by the exact objective, than the best
    start (the caller then runs plain SCA)."""
    from .batch import solve_first_order

    (x, value), = solve_first_order([problem], [t], [init],
                                    device="auto" if mode == "auto" else None)
    starts = ([init] if init is not None else []) + starting_points(problem, t)
    if value < max(_objective(problem, project_power(x0), t) for x0 in starts):
        return None
    x, obj, it, status = sca(problem, x, t, None, max_iterations=polish, tol=tol)
    return MethodOutput(x, MethodStatus.CONVERGED, it, "first-order + sca",
                        {"first_order_objective": value, "clarabel_status": status})
