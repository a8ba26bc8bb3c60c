"""The replay buffer B of Algorithm 1: a ring of (o, mask, d, r, o', mask', done, discount,
synthetic).

Observations are stored per agent, (N, D) float32: the storage entries are bytes / 1 GB, and
float16's 11-bit mantissa would round them to ~1 MB, coarser than the smallest PBs (3.6 KB);
the global state is their concatenation (paper section III-B), so it is not stored twice.
``d`` is the executed action (after masks, the coverage guard and the migrations the delivery
used), ``discount`` the factor of the bootstrap term (gamma^n for an n-step return).
Sampling uses the caller's seeded generator.
"""

from __future__ import annotations

import numpy as np


class ReplayBuffer:
    def __init__(self, capacity: int, n_agents: int, obs_dim: int, obs_rows: int | None = None,
                 extras: dict | None = None):
        """``obs_rows``: rows of one observation (default one per agent; 1 for the packed
        graph, which every agent shares). ``extras``: name -> shape of further float32 fields a
        learner stores per transition (QMIX-DA's recurrent states)."""
        self.capacity = int(capacity)
        n, d = n_agents, obs_dim
        rows = n if obs_rows is None else int(obs_rows)
        self.obs = np.zeros((capacity, rows, d), np.float32)
        self.next_obs = np.zeros((capacity, rows, d), np.float32)
        self.mask = np.zeros((capacity, n, n), np.bool_)
        self.next_mask = np.zeros((capacity, n, n), np.bool_)
        self.act = np.zeros((capacity, n, n), np.bool_)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.bool_)
        self.discount = np.zeros(capacity, np.float32)
        self.synthetic = np.zeros(capacity, np.bool_)
        self.extras = tuple(extras or ())
        for name, shape in (extras or {}).items():
            setattr(self, name, np.zeros((capacity, *shape), np.float32))
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, mask, act, reward, next_obs, next_mask, done, discount,
            synthetic=False, extras: dict | None = None) -> None:
        """Add a batch (leading axis) of transitions (``extras``: the declared fields)."""
        obs = np.asarray(obs)
        b = len(obs)
        idx = (self.pos + np.arange(b)) % self.capacity
        self.obs[idx] = obs
        self.mask[idx] = mask
        self.act[idx] = act
        self.reward[idx] = reward
        self.next_obs[idx] = next_obs
        self.next_mask[idx] = next_mask
        self.done[idx] = done
        self.discount[idx] = discount
        self.synthetic[idx] = synthetic
        for name in self.extras:
            getattr(self, name)[idx] = (extras or {})[name]
        self.pos = int((self.pos + b) % self.capacity)
        self.size = int(min(self.size + b, self.capacity))

    def sample(self, batch: int, rng: np.random.Generator) -> dict:
        idx = rng.integers(0, self.size, size=batch)
        return {k: getattr(self, k)[idx] for k in (
            "obs", "mask", "act", "reward", "next_obs", "next_mask", "done", "discount",
            *self.extras)}

    _FIELDS = ("obs", "next_obs", "mask", "next_mask", "act", "reward", "done", "discount",
               "synthetic")

    def state_dict(self) -> dict:
        return {"pos": self.pos, "size": self.size,
                **{k: getattr(self, k)[: self.size].copy()
                   for k in (*self._FIELDS, *self.extras)}}

    def load_state_dict(self, d: dict) -> None:
        self.pos, self.size = int(d["pos"]), int(d["size"])
        for k in (*self._FIELDS, *self.extras):
            getattr(self, k)[: self.size] = d[k]
