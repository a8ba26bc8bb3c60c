r"""Batched first-order beamforming: the iterations of many subproblems at once, in numpy or
torch, on a GPU when one is present (docs/model.md section 12).

Problem (oracle/methods.py): maximise ``min_u a_u(x) / t_u`` over ``||x_n|| <= 1`` with the exact
robust amplitude ``a_u(x) = |sum_n g_{n,u}^H x_n| - sum_n rho_{n,u} ||x_n||``. The method is
accelerated proximal gradient ascent on its log-sum-exp smoothing

    f_tau(x) = -tau log sum_u exp(-a_u(x) / (t_u tau)),

whose temperature tau is a fraction of the current value, annealed from 0.2 to 0.003 over the
iterations (a smoothing error below 0.3% times log v at the end). With the softmin weights w of
the current point, the smooth part of the ascent direction for node n is
``c_n = sum_u (w_u / t_u) e^{j phi_u} g_{n,u}`` (phi_u the phase of u's signal) and the margins
weigh ``beta_n = sum_u (w_u / t_u) rho_{n,u}``, handled by their proximal map, a block soft
threshold: ``x_n <- (1 - eta beta_n / ||y_n||)_+ y_n`` with ``y = x + eta c``, then the projection
onto the unit ball. A node whose weighted pull does not beat its weighted margin is silenced,
as robust MRT does for one user. The step eta of each problem grows by 1.2 after an accepted
step (the smoothed objective did not decrease) and halves after a rejected one; Nesterov
momentum restarts on rejection. The best point by the *exact* objective is kept.

Every quantity is computed per problem along its own axes and problems are bucketed by shape,
so a problem's result does not depend on which others share its batch. The method is local,
like SCA: :func:`solve_first_order` runs it from the same deterministic starts as ``fast``
(fast.starting_points) and returns the best; the oracle uses it only with the ``first_order``
option (oracle/core.py), where its result is polished by a few SCA steps and checked against
them by the exact worst-case evaluation. On this project's 2-core CPU a batch of a few starts
is slower than Clarabel's SOCPs (benchmarks/bench_oracle.py ``sizes``), which is why ``fast``
does not use it by default; on a GPU the same code runs thousands of problems per iteration.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..lru import LRU
from .problem import BeamProblem

KAPPA_START = 0.2
KAPPA_END = 3e-3


class _Numpy:
    """The array operations of the kernel, numpy flavour."""

    name = "numpy"

    def asarray(self, a):
        return np.asarray(a)

    def tonumpy(self, a):
        return np.asarray(a)

    def einsum(self, spec, *ops):
        return np.einsum(spec, *ops)

    def norm(self, a, axis):
        return np.linalg.norm(a, axis=axis)

    def amin(self, a, axis, keepdims=False):
        return a.min(axis=axis, keepdims=keepdims)

    def sum(self, a, axis, keepdims=False):
        return a.sum(axis=axis, keepdims=keepdims)

    def where(self, c, a, b):
        return np.where(c, a, b)

    def maximum(self, a, b):
        return np.maximum(a, b)

    def minimum(self, a, b):
        return np.minimum(a, b)

    def exp(self, a):
        return np.exp(a)

    def log(self, a):
        return np.log(a)

    def full(self, shape, value):
        return np.full(shape, float(value))

    def copy(self, a):
        return a.copy()


class _Torch(_Numpy):
    """The same operations on torch tensors (float64/complex128) on ``device``."""

    name = "torch"

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.device = device

    def asarray(self, a):
        return self.torch.as_tensor(np.asarray(a), device=self.device)

    def tonumpy(self, a):
        return a.detach().cpu().numpy()

    def einsum(self, spec, *ops):
        return self.torch.einsum(spec, *ops)

    def norm(self, a, axis):
        return self.torch.linalg.vector_norm(a, dim=axis)

    def amin(self, a, axis, keepdims=False):
        return a.amin(dim=axis, keepdim=keepdims)

    def sum(self, a, axis, keepdims=False):
        return a.sum(dim=axis, keepdim=keepdims)

    def where(self, c, a, b):
        t = self.torch
        a = a if t.is_tensor(a) else t.tensor(a, device=self.device)
        b = b if t.is_tensor(b) else t.tensor(b, device=self.device)
        return t.where(c, a, b)

    def maximum(self, a, b):
        t = self.torch
        b = b if t.is_tensor(b) else t.tensor(b, dtype=a.dtype, device=self.device)
        return t.maximum(a, b)

    def minimum(self, a, b):
        t = self.torch
        b = b if t.is_tensor(b) else t.tensor(b, dtype=a.dtype, device=self.device)
        return t.minimum(a, b)

    def exp(self, a):
        return self.torch.exp(a)

    def log(self, a):
        return self.torch.log(a)

    def full(self, shape, value):
        return self.torch.full(shape, float(value), dtype=self.torch.float64,
                               device=self.device)

    def copy(self, a):
        return a.clone()


def backend(device: str | None = None):
    """numpy on the CPU (``None`` or 'cpu'); torch on ``device`` ('cuda', 'cuda:1', or 'auto':
    CUDA when torch sees one, else numpy)."""
    if device in (None, "cpu", "numpy"):
        return _Numpy()
    if device == "auto":
        return _Torch("cuda") if cuda_available() else _Numpy()
    return _Torch(device)


_CUDA: bool | None = None


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU. Without an NVIDIA device node torch is not even imported
    (an import costs a second or two per process), unless it already is."""
    global _CUDA
    if _CUDA is None:
        import sys
        from pathlib import Path

        if "torch" not in sys.modules and not Path("/dev/nvidia0").exists():
            _CUDA = False
        else:
            try:
                import torch

                _CUDA = bool(torch.cuda.is_available())
            except ImportError:
                _CUDA = False
    return _CUDA


def _exact(xp, g, rho, t, x):
    """(a / t, s, ||x_n||) for a batch: g (B, p, v, d), rho (B, p, v), t (B, v), x (B, p, d)."""
    s = xp.einsum("bnvd,bnd->bv", g.conj(), x)
    r = xp.norm(x, axis=2)
    a = abs(s) - xp.einsum("bnv,bn->bv", rho, r)
    return a / t, s, r


def _softmin(xp, z, zmin, tau):
    e = xp.exp(xp.minimum(-(z - zmin) / tau, 700.0))
    se = xp.sum(e, axis=1)
    return zmin[:, 0] - tau[:, 0] * xp.log(se), e / se[:, None]


def first_order_batch(g, rho, t, x0, iterations: int = 1000, xp=None):
    """The kernel on one batch of equally shaped problems (module docstring). Returns the best
    points by the exact objective and their values (arrays of the backend)."""
    xp = xp or _Numpy()
    b = g.shape[0]
    gmax = xp.maximum(xp.sum(xp.norm(g, axis=3), axis=2).amax(1) if xp.name == "torch"
                      else xp.sum(xp.norm(g, axis=3), axis=2).max(axis=1), 1e-12)
    eta = 1.0 / gmax
    x = xp.copy(x0)
    y = xp.copy(x0)
    z, _, _ = _exact(xp, g, rho, t, x)
    best = xp.amin(z, axis=1)
    best_x = xp.copy(x)
    streak = xp.full((b,), 0.0)
    for it in range(iterations):
        kappa = KAPPA_START * (KAPPA_END / KAPPA_START) ** (it / max(iterations - 1, 1))
        z, s, _ = _exact(xp, g, rho, t, y)
        zmin = xp.amin(z, axis=1, keepdims=True)
        tau = kappa * xp.maximum(abs(zmin), 1e-3 * gmax[:, None])
        fy, w = _softmin(xp, z, zmin, tau)
        phase = s / xp.maximum(abs(s), 1e-300)
        c = xp.einsum("bnvd,bv->bnd", g, (w / t) * phase)
        beta = xp.einsum("bnv,bv->bn", rho, w / t)
        step = y + eta[:, None, None] * c
        ny = xp.norm(step, axis=2)
        shrink = xp.maximum(1.0 - eta[:, None] * beta / xp.maximum(ny, 1e-150), 0.0)
        xn = step * shrink[..., None]
        xn = xn / xp.maximum(xp.norm(xn, axis=2), 1.0)[..., None]
        zn, _, _ = _exact(xp, g, rho, t, xn)
        fn, _ = _softmin(xp, zn, zmin, tau)
        ok = fn >= fy
        eta = xp.where(ok, eta * 1.2, eta * 0.5)
        x_new = xp.where(ok[:, None, None], xn, x)
        streak = xp.where(ok, streak + 1.0, 0.0)
        mom = xp.where(ok, (streak - 1.0) / (streak + 2.0), 0.0)
        y = x_new + mom[:, None, None] * (x_new - x)
        y = y / xp.maximum(xp.norm(y, axis=2), 1.0)[..., None]
        x = x_new
        m = xp.amin(zn, axis=1)
        better = ok & (m > best)
        best = xp.where(better, m, best)
        best_x = xp.where(better[:, None, None], xn, best_x)
    return best_x, best


_DONE = LRU(4096)  # results of precompute(), by problem digest (what solve_first_order reuses)


def _digest(problem: BeamProblem, t, init, iterations: int, device) -> str:
    h = hashlib.sha256()
    for a in (problem.g, problem.rho, np.asarray(t, dtype=float)):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.shape).encode())
    if init is not None:
        h.update(np.ascontiguousarray(init, dtype=complex).tobytes())
    h.update(f"{iterations}/{device}".encode())
    return h.hexdigest()


def precompute(problems: list[BeamProblem], weights: list | None = None,
               inits: list | None = None, iterations: int = 1000,
               device: str | None = None) -> None:
    """Solve many problems in one batch per shape and keep the results, so that the later
    one-by-one calls (:func:`solve_first_order` from the oracle) find them: the batched path of
    ``BeamformingOracle.solve_many`` (the same results, a problem's being independent of its
    batch)."""
    out = solve_first_order(problems, weights, inits, iterations, device, reuse=False)
    weights = weights or [None] * len(problems)
    inits = inits or [None] * len(problems)
    for pr, w, x0, res in zip(problems, weights, inits, out, strict=True):
        t = np.ones(pr.n_users) if w is None else w
        _DONE.put(_digest(pr, t, x0, iterations, device), res)


def solve_first_order(problems: list[BeamProblem], weights: list | None = None,
                      inits: list | None = None, iterations: int = 1000,
                      device: str | None = None, reuse: bool = True
                      ) -> list[tuple[np.ndarray, float]]:
    """Run the kernel for every problem from its deterministic starts (and ``inits``), all at
    once per shape bucket; returns per problem (best x (p, d), its exact objective
    ``min_u a_u(x) / t_u``). ``reuse``: take results :func:`precompute` left."""
    from .fast import starting_points

    weights = weights or [None] * len(problems)
    inits = inits or [None] * len(problems)
    if reuse and len(problems) == 1:
        t0 = np.ones(problems[0].n_users) if weights[0] is None else weights[0]
        hit = _DONE.get(_digest(problems[0], t0, inits[0], iterations, device))
        if hit is not None:
            return [hit]
    xp = backend(device)
    starts, owner, tvec = [], [], []
    for i, (pr, w, x0) in enumerate(zip(problems, weights, inits, strict=True)):
        t = np.ones(pr.n_users) if w is None else np.asarray(w, dtype=float)
        tvec.append(t)
        for x in ([x0] if x0 is not None else []) + starting_points(pr, t):
            starts.append(np.asarray(x, dtype=complex))
            owner.append(i)
    buckets: dict[tuple, list[int]] = {}
    for s_idx, i in enumerate(owner):
        buckets.setdefault(problems[i].g.shape, []).append(s_idx)
    best: list[tuple[np.ndarray, float] | None] = [None] * len(problems)
    for members in buckets.values():
        own = [owner[s] for s in members]
        g = xp.asarray(np.stack([problems[i].g for i in own]))
        rho = xp.asarray(np.stack([problems[i].rho for i in own]).astype(float))
        t = xp.asarray(np.stack([tvec[i] for i in own]))
        x0 = xp.asarray(np.stack([starts[s] for s in members]))
        bx, bv = first_order_batch(g, rho, t, x0, iterations, xp)
        bx, bv = xp.tonumpy(bx), xp.tonumpy(bv)
        for j, i in enumerate(own):
            if best[i] is None or bv[j] > best[i][1]:
                best[i] = (bx[j], float(bv[j]))
    return best
