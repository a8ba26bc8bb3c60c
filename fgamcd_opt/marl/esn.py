"""Echo-state-network data augmentation (paper section III-D, eqs. 15-18, Algorithm 1 lines
10-19; docs/model.md section 9), in numpy.

q(k) = tanh(eta_in v(k) + eta_re q(k-1)), (r^(k), s^(k+1)) = eta_out q(k), v(k) = (s(k), d(k)).
eta_in (uniform in [-input_scale, input_scale]) and eta_re (Gaussian, rescaled to spectral norm
``spectral_norm`` < 1: the echo-state property, Assumption 2; Fig. 19 uses ||eta_re|| < 0.5) are
drawn once from the seed and never trained. eta_out minimises eq. 16 over every real tuple seen so
far by ridge regression, kept as running sums (Q^T Q, Q^T Y), so tuning costs one 1024 x 1024
solve per episode whatever the history length.

Algorithm 1, per episode: the reservoir runs over the episode's real sequence (q is reset at
the start of each episode, as the sequence restarts at PB 1); line 12 predicts (r^(k),
s^(k+1)) with eta_out as tuned on the *earlier* episodes, line 13 tunes eta_out on this
episode's tuples, and line 14's filter (eq. 17) compares the line-12 prediction with the real
tuple: the check is out of sample (a prediction is never judged on the data it was fitted to).
A step whose error is at most xi becomes the synthetic tuple (s(k), d(k), r^(k), s^(k+1)); at
most tau_e = floor(tau0 K Lambda^floor(e/E-)) are kept in episode e (eq. 18), K being the steps
of the episode, in a random order from the seeded generator.

The error of eq. 17 is measured in standard deviations of the real data, so that neither the
613-720 state entries nor the reward's units decide it alone:
err(k) = sqrt(((r^ - r) / sigma_r)^2 + mean_i ((s^_i - s_i) / sigma_i)^2), sigma the standard
deviations of the real targets so far (entries that never varied count with sigma = 1e-3).
A predictor no better than the running mean scores about sqrt(2) = 1.41, so xi = 1.12 (Table
II) keeps only predictions clearly better than that.
"""

from __future__ import annotations

import math

import numpy as np


def tau_schedule(episode: int, steps: int, tau0: float, attenuation: float, every: int) -> int:
    """Eq. 18: the most synthetic samples allowed in ``episode`` (0-based)."""
    return int(math.floor(tau0 * steps * attenuation ** (episode // max(every, 1))))


def running_std(y1: np.ndarray, y2: np.ndarray, n: int) -> np.ndarray:
    """Standard deviation of each target entry from the running sums of the targets and of
    their squares over ``n`` tuples (floor 1e-3: entries that never varied)."""
    m = max(int(n), 1)
    var = np.maximum(y2 / m - (y1 / m) ** 2, 0.0)
    return np.maximum(np.sqrt(var), 1e-3)


def standardised_errors(pred: np.ndarray, y: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Eq. 17's error per step in standard deviations ``std`` of the real targets (module
    docstring); column 0 is the reward, the rest the next state."""
    z = (pred - y) / std
    return np.sqrt(z[:, 0] ** 2 + np.mean(z[:, 1:] ** 2, axis=1))


def filter_predictions(pred: np.ndarray, y: np.ndarray, err: np.ndarray, fitted_before: bool,
                       tau: int, xi: float, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Algorithm 1 line 14 and eq. 18: keep at most ``tau`` steps (in a random order from
    ``rng``) whose out-of-sample error ``err`` is at most ``xi``. Shared by every augmenter
    (the ESN here, the RNN and cGAN ablations in augment.py). Returns the kept indices, their
    predicted targets and statistics."""
    order = rng.permutation(len(y))
    keep = [int(i) for i in order if err[i] <= xi][: max(tau, 0)]
    r_err = np.abs(pred[:, 0] - y[:, 0])
    stats = {"esn_error_mean": float(np.mean(err)) if fitted_before and len(err) else
             float("nan"),
             "esn_reward_error_mean": float(r_err.mean()) if fitted_before and len(y)
             else float("nan"),
             "esn_kept_reward_error_mean": float(r_err[keep].mean()) if keep
             else float("nan"),
             "real_reward_abs_mean": float(np.abs(y[:, 0]).mean()) if len(y) else 0.0,
             "synthetic_candidates": int((err <= xi).sum()), "synthetic_kept": len(keep)}
    return np.asarray(keep, dtype=int), pred[keep], stats


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
        self._y1 = np.zeros(out_dim)  # running sums of the real targets and their squares
        self._y2 = np.zeros(out_dim)
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
        self._y1 += y.sum(axis=0)
        self._y2 += (y * y).sum(axis=0)
        self.n_fitted += len(q)
        a = self._qq + self.ridge * np.eye(self._qq.shape[0])
        self.eta_out = np.linalg.solve(a, self._qy).T

    def predict(self, q: np.ndarray) -> np.ndarray:
        return q @ self.eta_out.T

    def target_std(self) -> np.ndarray:
        """Standard deviation of each target entry over the real tuples so far (floor 1e-3)."""
        return running_std(self._y1, self._y2, self.n_fitted)

    def errors(self, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Eq. 17's error per step, in standard deviations (module docstring)."""
        return standardised_errors(pred, y, self.target_std())

    def augment(self, v: np.ndarray, y: np.ndarray, tau: int, xi: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
        """Algorithm 1 lines 10-19 on one episode's sequence (inputs v, real targets y):
        predict with the ESN tuned on earlier episodes, tune on this one, keep at most ``tau``
        steps whose out-of-sample error is at most ``xi``. Returns the kept indices, their
        predicted targets and statistics (the first episode keeps nothing: no predictor yet)."""
        q = self.states(v)
        fitted_before = self.n_fitted > 0
        pred = self.predict(q)  # line 12: before this episode's tuning (out of sample)
        err = self.errors(pred, y) if fitted_before else np.full(len(v), np.inf)
        self.fit(q, y)  # line 13
        return filter_predictions(pred, y, err, fitted_before, tau, xi, rng)

    def state_dict(self) -> dict:
        return {"eta_in": self.eta_in, "eta_re": self.eta_re, "eta_out": self.eta_out,
                "qq": self._qq, "qy": self._qy, "y1": self._y1, "y2": self._y2,
                "n_fitted": self.n_fitted}

    def load_state_dict(self, d: dict) -> None:
        self.eta_in, self.eta_re, self.eta_out = d["eta_in"], d["eta_re"], d["eta_out"]
        self._qq, self._qy, self.n_fitted = d["qq"], d["qy"], int(d["n_fitted"])
        self._y1, self._y2 = d["y1"], d["y2"]
