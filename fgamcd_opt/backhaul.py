"""Backhaul rates R^bac_{n,m}(k) in bits/s: node n -> node m while PB k is migrated.

Three sources: ``uniform`` (drawn per (n, m, k) from U[low, high], regenerated from
``SeedSequence([seed, k, 1])`` like the channels), ``matrix`` (one N x N matrix for every PB) and
``sidecar`` (a K x N x N array in the instance's ``.npz``). Diagonal entries are +inf: a node
never migrates to itself.
"""

from __future__ import annotations

import numpy as np


class UniformBackhaul:
    kind = "uniform"

    def __init__(self, seed: int, low_bps: float, high_bps: float, n_nodes: int):
        self.seed = int(seed)
        self.low_bps = float(low_bps)
        self.high_bps = float(high_bps)
        self.n_nodes = n_nodes
        self._cache: dict[int, np.ndarray] = {}

    def rates(self, k: int) -> np.ndarray:
        r = self._cache.get(k)
        if r is None:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(k), 1]))
            r = rng.uniform(self.low_bps, self.high_bps, size=(self.n_nodes, self.n_nodes))
            np.fill_diagonal(r, np.inf)
            r.setflags(write=False)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[k] = r
        return r

    def spec(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, "low_bps": self.low_bps,
                "high_bps": self.high_bps}


class MatrixBackhaul:
    kind = "matrix"

    def __init__(self, rates_bps):
        r = np.array(rates_bps, dtype=float)
        np.fill_diagonal(r, np.inf)
        r.setflags(write=False)
        self.matrix = r

    def rates(self, k: int) -> np.ndarray:
        return self.matrix

    def spec(self) -> dict:
        m = np.where(np.isinf(self.matrix), 0.0, self.matrix)
        return {"kind": self.kind, "rates_bps": m.tolist()}


class ArrayBackhaul:
    kind = "sidecar"

    def __init__(self, array):
        a = np.array(array, dtype=float)
        for k in range(a.shape[0]):
            np.fill_diagonal(a[k], np.inf)
        a.setflags(write=False)
        self.array = a

    def rates(self, k: int) -> np.ndarray:
        return self.array[int(k)]

    def spec(self) -> dict:
        return {"kind": self.kind}
