r"""Global branch and bound on the received phases: a certified upper bound on the best robust
max-min amplitude of one multicast group (docs/milp.md section 3.5; docs/model.md sections 3,
4 and 10).

Normalised units of ``oracle/problem.py``: beams x_n with ||x_n|| <= 1,
a_u(x) = |g_u^H x| - rho_u^T t(x), t_n(x) = ||x_n||; we bound s* = max_x min_u a_u(x).

**Box relaxation.** Multiplying x by e^{j theta} changes no |g_u^H x| and no ||x_n||, so some
optimum has arg(g_0^H x) = 0 for a chosen reference user 0. For a *box* of phase arcs
A_u = [c_u - d_u, c_u + d_u] (d_0 = 0), consider every beam whose received phase
arg(g_u^H x) lies in A_u for every u and which reaches a_u(x) >= s for all u. Writing
z_u = e^{-j c_u} g_u^H x = |z_u| e^{j psi_u}, |psi_u| <= d_u:

    Re z_u = |z_u| cos psi_u >= cos(d_u) |z_u| >= cos(d_u) (s + rho_u^T t(x)),
    |Im z_u| = |z_u| |sin psi_u| <= tan(d_u) Re z_u                              (d_u < pi/2).

So (x, t(x), s) is feasible for the SOCP

    U(box) = max s   s.t.  Re z_u >= cos(d_u) (s + rho_u^T t),  |Im z_u| <= tan(d_u) Re z_u,
                           ||x_n|| <= t_n <= 1,

(for d_u = pi/2 only Re z_u >= 0 remains, for d_u > pi/2 nothing: the convex hull of a sector
wider than a half plane is the plane), hence U(box) >= every such beam's min_u a_u. Every beam
with a positive min amplitude has a received phase for every user and lies in some box of any
partition of the phase torus; so max over the boxes of a partition of U(box) >= s* (and s* = 0
is bounded by anything >= 0). A box's bound is also capped by its parent's (a sub-box holds
fewer beams), so a failed SOCP solve keeps the parent's value. The relaxation is the convex hull
of the sector {|z| >= r, arg z in A_u}; it is exact as the arcs shrink to points (with d_u = 0
for all u it is one step of the oracle's SCA), which makes the branch and bound converge.

**Branch and bound.** Best-first over boxes: split the widest arc of the box with the largest
bound at its midpoint. A box whose bound is below the target is closed (its bound is
remembered); the bound returned at any stop is max(largest closed bound, largest open bound),
valid whenever the search stops (budget, target met). Every SOCP solution x is a real beam;
evaluated exactly it gives an achievable amplitude (the incumbent), which only steers the
stopping rule.

Each SOCP is built as sparse matrices and handed to Clarabel directly (a fixed sparsity pattern
per group; only the user rows change between boxes).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import clarabel
import numpy as np
import scipy.sparse as sp

from .oracle.problem import BeamProblem, project_power

# Safety margin added to Clarabel's optimum before it is used as an upper bound (data scaled so
# the per-user bound is 1; Clarabel's tolerances below are 1e-8)
SAFETY_RTOL = 1e-6
SAFETY_ATOL = 1e-6
HALF_PI = 0.5 * np.pi


def _settings() -> clarabel.DefaultSettings:
    s = clarabel.DefaultSettings()
    s.verbose = False
    s.max_iter = 200
    s.tol_gap_abs = 1e-8
    s.tol_gap_rel = 1e-8
    s.tol_feas = 1e-8
    return s


_SETTINGS = _settings()


class _BoxSocp:
    """The box SOCP of the module docstring for one (reduced) problem.

    Variables z = [Re x (p d), Im x (p d), t (p), s]; rows: one equality (Im z_0 = 0), three
    inequality rows per user (the sector), p rows t_n <= 1, p second-order cones."""

    def __init__(self, problem: BeamProblem):
        p, v, d = problem.g.shape
        self.p, self.v, self.d = p, v, d
        nx = 2 * p * d
        self.nx = nx
        self.nz = nz = nx + p + 1
        g = problem.g.transpose(1, 0, 2).reshape(v, p * d)  # stacked g_u
        # g^H x = sum conj(g) x: Re = [Re g, Im g] . [Re x, Im x], Im = [-Im g, Re g] . [...]
        self.re = np.hstack([g.real, g.imag])  # (v, nx)
        self.im = np.hstack([-g.imag, g.real])
        self.rho = problem.rho.T  # (v, p)
        self.q = np.zeros(nz)
        self.q[-1] = -1.0
        self.P = sp.csc_matrix((nz, nz))
        # constant rows: t_n <= 1, then the cones (t_n, Re x_n, Im x_n)
        a_pow = sp.hstack([sp.csc_matrix((p, nx)), sp.identity(p), sp.csc_matrix((p, 1))])
        rows, cols = [], []
        row = 0
        for n in range(p):
            rows.append(row)
            cols.append(nx + n)
            row += 1
            for part in range(2):
                for j in range(d):
                    rows.append(row)
                    cols.append(part * p * d + n * d + j)
                    row += 1
        a_soc = sp.csc_matrix((-np.ones(len(rows)), (rows, cols)), shape=(row, nz))
        self.a_const = sp.vstack([a_pow, a_soc]).tocsc()
        self.b_const = np.concatenate([np.ones(p), np.zeros(row)])
        self.soc = [clarabel.SecondOrderConeT(2 * d + 1) for _ in range(p)]

    def _template(self):
        """The constant-pattern A of every box: 1 + 3 v dense user rows (explicit zeros where
        a box leaves a row inactive), then the constant rows; only A.data and b change."""
        n_user = 1 + 3 * self.v
        a = sp.vstack([sp.csc_matrix(np.ones((n_user, self.nz))), self.a_const]).tocsc()
        a.sort_indices()
        # the user rows are the first n_user entries of every column (sorted row indices)
        self._pos = (a.indptr[:-1, None] + np.arange(n_user)[None, :]).ravel()
        self._a = a
        self._cones = [clarabel.ZeroConeT(1), clarabel.NonnegativeConeT(3 * self.v + self.p),
                       *self.soc]
        self._b = np.concatenate([np.zeros(n_user), self.b_const])

    def solve(self, lo: np.ndarray, hi: np.ndarray):
        """U(box) for arcs [lo_u, hi_u] (user 0: lo = hi = 0). Returns (value or None, x)."""
        v, p, nx = self.v, self.p, self.nx
        if not hasattr(self, "_a"):
            self._template()
        c = 0.5 * (lo + hi)
        half = 0.5 * (hi - lo)
        cc, sc = np.cos(c), np.sin(c)
        re_rot = cc[:, None] * self.re + sc[:, None] * self.im  # Re(e^{-jc} g^H x)
        im_rot = cc[:, None] * self.im - sc[:, None] * self.re
        rows = np.zeros((1 + 3 * v, self.nz))
        b = self._b.copy()
        rows[0, :nx] = self.im[0]  # Im(g_0^H x) = 0: the rotation fixed
        sector = half < HALF_PI - 1e-12  # a proper sector: cos(d) (s + rho^T t) <= Re z
        plane = np.abs(half - HALF_PI) <= 1e-12  # a half plane: 0 <= Re z
        cd = np.where(sector, np.cos(np.minimum(half, HALF_PI)), 0.0)
        r1 = rows[1::3]
        r1[:, :nx] = -re_rot
        r1[:, nx:nx + p] = cd[:, None] * self.rho
        r1[:, -1] = cd
        off = ~(sector | plane)  # wider than a half plane: no constraint (row 0 <= 1)
        r1[off] = 0.0
        b[1:1 + 3 * v:3][off] = 1.0
        # |Im z| <= tan(d) Re z for proper sectors of users 1..v-1 (user 0 is pinned above)
        cone = sector & (half > 0)
        cone[0] = False
        td = np.where(cone, np.tan(np.where(cone, half, 0.0)), 0.0)
        r2, r3 = rows[2::3], rows[3::3]
        r2[:, :nx] = im_rot - td[:, None] * re_rot
        r3[:, :nx] = -im_rot - td[:, None] * re_rot
        r2[~cone] = 0.0
        r3[~cone] = 0.0
        b[2:1 + 3 * v:3][~cone] = 1.0
        b[3:1 + 3 * v:3][~cone] = 1.0
        a = self._a
        a.data[self._pos] = rows.T.ravel()
        cones = self._cones
        try:
            sol = clarabel.DefaultSolver(self.P, self.q, a, b, cones, _SETTINGS).solve()
        except Exception:  # a solver failure only means this box is not refined
            return None, None
        z = np.asarray(sol.x)
        pd = self.nx // 2
        x = (z[:pd] + 1j * z[pd:self.nx]).reshape(self.p, self.d)
        if str(sol.status) != "Solved" or not np.all(np.isfinite(z)):
            return None, x
        # the dual objective bounds the maximum from above when the dual is feasible; take the
        # larger of the two plus a margin (Clarabel's gap tolerance is 1e-8)
        val = max(-float(sol.obj_val), -float(sol.obj_val_dual))
        return val + SAFETY_RTOL * abs(val) + SAFETY_ATOL, x


@dataclass
class PhaseBoundResult:
    bound: float  # certified upper bound on s* (normalised amplitude)
    incumbent: float  # best exact amplitude of a beam found
    x: np.ndarray | None  # that beam (problem coordinates); None if ``achieved`` was not beaten
    boxes: int = 0  # SOCPs solved
    open_boxes: int = 0
    time_s: float = 0.0
    converged: bool = False
    info: dict = field(default_factory=dict)


def delay_target(amplitude: float, rtol: float) -> float:
    """The amplitude whose rate is (1 + rtol) times the rate at ``amplitude`` (SNR = a^2): a
    bound below it is within rtol of the incumbent in delay terms."""
    a2 = float(amplitude) ** 2
    return float(np.sqrt(np.expm1((1.0 + rtol) * np.log1p(a2))))


def phase_bound(problem: BeamProblem, achieved: float = 0.0, rtol: float = 0.01,
                max_boxes: int = 20000, time_budget_s: float = np.inf,
                cap: float = np.inf, atol: float = 1e-3) -> PhaseBoundResult:
    """Branch and bound of the module docstring on ``problem`` (already reduced and without
    useless nodes, or not: any shape is valid). ``achieved``: an amplitude some beam reaches
    (steers the stopping rule only). Stops when the bound is within ``rtol`` of the incumbent
    in *rate* (hence delay) terms, or below ``atol`` times the per-user bound (a group that weak
    is worth nothing to a plan, and no incumbent may ever prove it), or at the budget.
    ``cap``: a valid upper bound known from elsewhere (the root box's starting value)."""
    t0 = time.perf_counter()
    p, v, _ = problem.g.shape
    per_user = np.maximum(np.linalg.norm(problem.g, axis=2) - problem.rho, 0).sum(axis=0)
    # the weakest user is the reference (its phase fixed at 0)
    order = np.argsort(per_user, kind="stable")
    pr = BeamProblem(problem.g[:, order], problem.rho[:, order], problem.snr_required[order])
    scale = float(per_user.min()) if v else 0.0
    if v == 0 or scale <= 0:
        return PhaseBoundResult(scale if v else np.inf, 0.0, None, converged=True)
    sp_ = _BoxSocp(BeamProblem(pr.g / scale, pr.rho / scale, pr.snr_required))
    best_x = None
    inc = max(float(achieved), 0.0) / scale
    lo0 = np.full(v, -np.pi)
    hi0 = np.full(v, np.pi)
    lo0[0] = hi0[0] = 0.0

    def evaluate(lo, hi, parent):
        """(bound, user whose arc is split next: the widest) of a box; updates the incumbent
        with the box's SOCP beam, evaluated exactly. (Splitting the user whose exact amplitude
        falls furthest below the box's value was tried: no fewer boxes.)"""
        nonlocal inc, best_x
        val, x = sp_.solve(lo, hi)
        if x is not None and np.all(np.isfinite(x)):
            x = project_power(x)
            amp = float(pr.amplitude(x).min()) / scale
            if amp > inc:
                inc, best_x = amp, x
        return (parent if val is None else min(parent, val)), int(np.argmax(hi - lo))

    boxes = 1
    root, split0 = evaluate(lo0, hi0, min(1.0, cap / scale) if np.isfinite(cap) else 1.0)
    heap = [(-root, 0, lo0, hi0, split0)]
    closed = 0.0
    counter = 1
    converged = False
    while heap:
        target = max(delay_target(inc * scale, rtol) / scale, atol)
        if -heap[0][0] <= target:
            converged = True
            break
        if boxes >= max_boxes or time.perf_counter() - t0 > time_budget_s:
            break
        neg, _, lo, hi, u = heapq.heappop(heap)
        mid = 0.5 * (lo[u] + hi[u])
        for a, b in ((lo[u], mid), (mid, hi[u])):
            lo2, hi2 = lo.copy(), hi.copy()
            lo2[u], hi2[u] = a, b
            val, split = evaluate(lo2, hi2, -neg)
            boxes += 1
            target = max(delay_target(inc * scale, rtol) / scale, atol)
            if val <= target:
                closed = max(closed, val)
            else:
                heapq.heappush(heap, (-val, counter, lo2, hi2, split))
                counter += 1
    converged = converged or not heap
    top = -heap[0][0] if heap else 0.0
    bound = max(closed, top) * scale
    return PhaseBoundResult(bound=bound, incumbent=inc * scale, x=best_x, boxes=boxes,
                            open_boxes=len(heap), time_s=time.perf_counter() - t0,
                            converged=converged)
