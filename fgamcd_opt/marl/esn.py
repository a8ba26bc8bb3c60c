"""Echo-state-network data augmentation (paper section III-D, eqs. 15-18; docs/model.md
section 9), in numpy.

q(k) = tanh(eta_in v(k) + eta_re q(k-1)), (r^(k), s^(k+1)) = eta_out q(k), v(k) = (s(k), d(k)).
eta_in (uniform in [-input_scale, input_scale]) and eta_re (Gaussian, rescaled to spectral norm
``spectral_norm`` < 1: the echo-state property, Assumption 2; Fig. 19 uses ||eta_re|| < 0.5) are
drawn once from the seed and never trained. eta_out minimises eq. 16 over every real tuple seen so
far by ridge regression, kept as running sums (Q^T Q, Q^T Y), so tuning costs one 1024 x 1024
solve per episode whatever the history length.

Generation control: the reservoir is run over the episode's real sequence (q is reset at the
start of each episode, as the sequence restarts at PB 1); the prediction for step k becomes a
synthetic tuple (s(k), d(k), r^(k), s^(k+1)) only if ||prediction - real|| <= xi (eq. 17), and at
most tau_e = floor(tau0 K Lambda^floor(e / E-)) are kept in episode e (eq. 18), where K is the
number of steps of the episode. Steps are drawn in a random order from the seeded generator.
"""

from __future__ import annotations

import math

import numpy as np


def tau_schedule(episode: int, steps: int, tau0: float, attenuation: float, every: int) -> int:
    """Eq. 18: the most synthetic samples allowed in ``episode`` (0-based)."""
    return int(math.floor(tau0 * steps * attenuation ** (episode // max(every, 1))))


class EchoStateNetwork:
    def __init__(self, in_dim: int, out_dim: int, reservoir: int = 1024,
                 spectral_norm: float = 0.5, input_scale: float = 0.1, ridge: float = 1e-2,
                 seed: int = 0):
        if not 0 < spectral_norm < 1:
            raise ValueError("the reservoir's spectral norm must be in (0, 1) (echo-state "
                             "property)")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 15]))
        self.eta_in = rng.uniform(-input_scale, input_scale, (reservoir, in_dim))
        w = rng.standard_normal((reservoir, reservoir))
        self.eta_re = w * (spectral_norm / np.linalg.norm(w, 2))
        self.eta_out = np.zeros((out_dim, reservoir))
        self.ridge = ridge
        self._qq = np.zeros((reservoir, reservoir))
        self._qy = np.zeros((reservoir, out_dim))
        self.n_fitted = 0

    @property
    def reservoir_norm(self) -> float:
        return float(np.linalg.norm(self.eta_re, 2))

    def states(self, v: np.ndarray) -> np.ndarray:
        """(T, in) inputs of one sequence -> (T, reservoir) states q(1..T), q(0) = 0."""
        q = np.zeros(self.eta_re.shape[0])
        u = v @ self.eta_in.T
        out = np.empty((len(v), q.size))
        for t in range(len(v)):
            q = np.tanh(u[t] + self.eta_re @ q)
            out[t] = q
        return out

    def fit(self, q: np.ndarray, y: np.ndarray) -> None:
        """Tune eta_out (eq. 16) on new real tuples, ridge regression over all tuples so far."""
        self._qq += q.T @ q
        self._qy += q.T @ y
        self.n_fitted += len(q)
        a = self._qq + self.ridge * np.eye(self._qq.shape[0])
        self.eta_out = np.linalg.solve(a, self._qy).T

    def predict(self, q: np.ndarray) -> np.ndarray:
        return q @ self.eta_out.T

    def augment(self, v: np.ndarray, y: np.ndarray, tau: int, xi: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
        """One episode's sequence (inputs v, real targets y): tune on it, then return the indices
        of the kept steps and their predicted targets (eq. 17 filter, at most ``tau``)."""
        q = self.states(v)
        pred_before = self.predict(q) if self.n_fitted else None
        self.fit(q, y)
        # predictions of the tuned ESN are the synthetic data (Algorithm 1 lines 12-13)
        pred = self.predict(q)
        err = np.linalg.norm(pred - y, axis=1)
        order = rng.permutation(len(v))
        keep = [int(i) for i in order if err[i] <= xi][: max(tau, 0)]
        stats = {"esn_error_mean": float(err.mean()) if len(err) else 0.0,
                 "esn_error_before_mean": float(np.linalg.norm(pred_before - y, axis=1).mean())
                 if pred_before is not None and len(y) else float("nan"),
                 "synthetic_candidates": int((err <= xi).sum()), "synthetic_kept": len(keep)}
        return np.asarray(keep, dtype=int), pred[keep], stats

    def state_dict(self) -> dict:
        return {"eta_in": self.eta_in, "eta_re": self.eta_re, "eta_out": self.eta_out,
                "qq": self._qq, "qy": self._qy, "n_fitted": self.n_fitted}

    def load_state_dict(self, d: dict) -> None:
        self.eta_in, self.eta_re, self.eta_out = d["eta_in"], d["eta_re"], d["eta_out"]
        self._qq, self._qy, self.n_fitted = d["qq"], d["qy"], int(d["n_fitted"])
