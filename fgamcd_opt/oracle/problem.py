r"""The beamforming subproblem P2(k) in normalised units.

For one PB k with participating nodes P (p of them) and served users V (v of them), node n sends
w_n = sqrt(P_n) x_n with ||x_n|| <= 1. Dividing user u's received signal by its noise amplitude
sigma_u gives O(1) data for the solvers:

    g_{n,u}   = sqrt(P_n) h~_{n,u} / sigma_u                 (normalised channel, (p, v, M))
    rho_{n,u} = sqrt(P_n / c_{n,u}) / sigma_u                (normalised error radius, (p, v))
    a_u(x)    = max(0, |sum_n g_{n,u}^H x_n| - sum_n rho_{n,u} ||x_n||)
    SNR_u     = a_u(x)^2                                     (exact worst case, rates.py)

With Table II's numbers g is ~70 at 200 m and rho ~14, so the solvers see well-scaled data.

Structure used by every method: with isotropic error shapes, node n's best x_n lies in the span of
its channels to the served users. Write x_n = x_par + x_perp with x_perp orthogonal to every
g_{n,u}; x_perp adds nothing to any g^H x and only raises ||x_n|| (power and robust margin), so
dropping it never lowers any a_u. ``reduce()`` returns orthonormal bases Q_n (M x d_n,
d_n = rank <= min(M, v)) and the reduced problem with channels Q_n^H g_{n,u}; ``lift()`` maps
reduced beams back (norms are preserved because Q_n has orthonormal columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rates import robust_amplitude


@dataclass(frozen=True)
class BeamProblem:
    """Normalised robust multicast beamforming problem for one PB.

    Attributes
    ----------
    g : (p, v, d) complex
        Normalised estimated channels (see module docstring).
    rho : (p, v) float
        Normalised error radii, >= 0.
    snr_required : (v,) float
        Worst-case SNR each user needs for its QoS floor, 2^(Q_u/B) - 1 (linear).
    """

    g: np.ndarray
    rho: np.ndarray
    snr_required: np.ndarray

    @property
    def n_nodes(self) -> int:
        return self.g.shape[0]

    @property
    def n_users(self) -> int:
        return self.g.shape[1]

    @property
    def dim(self) -> int:
        return self.g.shape[2]

    def amplitude(self, x: np.ndarray) -> np.ndarray:
        """Exact worst-case amplitude a_u(x) of each user (same kernel as the evaluator)."""
        return robust_amplitude(self.g, self.rho, x)

    def min_snr(self, x: np.ndarray) -> float:
        return float(np.min(self.amplitude(x)) ** 2) if self.n_users else float("inf")

    def qos_ratio(self, x: np.ndarray) -> float:
        """min_u SNR_u / SNR_req_u (>= 1 means every QoS floor is met)."""
        snr = self.amplitude(x) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(self.snr_required > 0, snr / self.snr_required, np.inf)
        return float(np.min(ratio)) if self.n_users else float("inf")

    def dead_users(self) -> np.ndarray:
        """Users whose worst-case amplitude is 0 for *every* beam: ||g_{n,u}|| <= rho_{n,u} for all
        participating n, since |sum g^H x| <= sum ||g|| ||x|| <= sum rho ||x||."""
        reach = np.linalg.norm(self.g, axis=2) > self.rho * (1 + 1e-12)
        return np.flatnonzero(~reach.any(axis=0))

    def reduce(self) -> tuple[BeamProblem, list[np.ndarray]]:
        """Project every node onto the span of its served users' channels (isotropic errors)."""
        bases = []
        for n in range(self.n_nodes):
            u_, s, _ = np.linalg.svd(self.g[n].T, full_matrices=False)  # (d, v) columns g_{n,u}
            tol = s.max(initial=0.0) * max(self.g.shape[1:]) * np.finfo(float).eps
            bases.append(u_[:, s > tol])
        d = max((b.shape[1] for b in bases), default=0)
        d = max(d, 1)
        g_red = np.zeros((self.n_nodes, self.n_users, d), dtype=complex)
        for n, q in enumerate(bases):
            # pad unused coordinates with zeros (a zero column costs nothing and is never used)
            g_red[n, :, : q.shape[1]] = self.g[n] @ q.conj()
        padded = []
        for q in bases:
            pad = np.zeros((q.shape[0], d), dtype=complex)
            pad[:, : q.shape[1]] = q
            padded.append(pad)
        return BeamProblem(g_red, self.rho, self.snr_required), padded

    @staticmethod
    def lift(x_reduced: np.ndarray, bases: list[np.ndarray]) -> np.ndarray:
        """Map reduced beams (p, d) back to full dimension (p, M)."""
        return np.stack([q @ x for q, x in zip(bases, x_reduced, strict=True)])


def project_power(x: np.ndarray) -> np.ndarray:
    """Scale each node's normalised beam onto the unit ball (never exceed the power budget)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norms > 1.0, x / np.maximum(norms, 1e-300), x)
