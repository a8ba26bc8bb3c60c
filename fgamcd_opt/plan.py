"""The plan: what a solver returns and the evaluator scores.

A plan says what each node stores, which PBs migrate over the backhaul, and how requested PBs are
delivered, as a list of *delivery units*. A unit is one transmission of PB k by a set of nodes to
a set of users; its delay is 8 S(k) / (min worst-case rate of its users). Units are sent one after
another, except units that share a ``slot`` id: those are sent at the same time, from disjoint
node sets with separately designed beams, and since they carry the same PB symbol every user of
the slot hears all of the slot's nodes (the evaluator computes its worst case over all of them);
a slot costs 8 S(k) / (min rate over all its users). This format expresses every delivery mode
the paper compares:

- CoMP broadcast (FGAMCD): one unit per requested PB, all its requesters, several nodes.
- TDMA unicast: one ``unicast`` unit per (PB, user); the slots add up.
- per-model delivery (coarse-grained caching): one unit per (PB, requested model), ``model`` set,
  so a PB shared by two requested models is sent twice.
- no cooperation: per PB one unit per node to its own users with its own beam, one cell after
  another (or all in one ``slot``, then each user also hears the other cells' nodes).
- hybrid multicasting: broadcast units for hot PBs, unicast units for the rest.

Storage: ``cache[n]`` are fine-grained PBs (a shared PB is stored once); ``model_copies[n]`` are
whole-model copies (coarse-grained caching), each paying the full model size. A node *holds* PB k
when it caches it or holds a model copy containing it. Migrations (src, dst, k) need src to hold
k (eq. 2); the copy at dst is buffered and does not use storage. A node participates in a unit
only if it holds or received the PB (eq. 3).

Indices are positions in the instance (nodes, users, blocks, models); the JSON form uses ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Mode = Literal["broadcast", "unicast"]
MODES = ("broadcast", "unicast")


@dataclass
class DeliveryUnit:
    """One transmission of PB ``block`` by ``nodes`` to ``users``.

    beams : optional (len(nodes), M) complex physical beamformers (||w_n||^2 in watts). When
        absent, the evaluator asks the shared oracle, with method ``beamforming`` if given.
    """

    block: int
    users: tuple[int, ...]
    nodes: tuple[int, ...]
    mode: Mode = "broadcast"
    slot: int | None = None
    model: int | None = None
    beams: np.ndarray | None = None
    beamforming: str | None = None

    def __post_init__(self):
        self.block = int(self.block)
        self.users = tuple(int(u) for u in self.users)
        self.nodes = tuple(int(n) for n in self.nodes)


@dataclass(frozen=True)
class Migration:
    src: int
    dst: int
    block: int


@dataclass
class Plan:
    """Caching, migration and delivery decisions for one instance."""

    cache: list[set[int]]
    migrations: list[Migration] = field(default_factory=list)
    units: list[DeliveryUnit] = field(default_factory=list)
    model_copies: list[list[int]] | None = None
    solver: str = ""
    metadata: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, n_nodes: int, solver: str = "") -> Plan:
        return cls(cache=[set() for _ in range(n_nodes)], solver=solver)

    @classmethod
    def from_holds(cls, holds: np.ndarray, migrations=(), units=(), solver: str = "") -> Plan:
        """A fine-grained plan from an (N, K) bool caching matrix a_n(k)."""
        return cls(cache=[set(np.flatnonzero(row).tolist()) for row in holds],
                   migrations=list(migrations), units=list(units), solver=solver)

    @property
    def n_nodes(self) -> int:
        return len(self.cache)

    def copies(self) -> list[list[int]]:
        return self.model_copies if self.model_copies is not None else [
            [] for _ in range(self.n_nodes)]

    def holds(self, repository) -> np.ndarray:
        """(N, K) bool a_n(k) in the broad sense: cached or inside a cached model copy."""
        a = np.zeros((self.n_nodes, repository.n_blocks), dtype=bool)
        for n, blocks in enumerate(self.cache):
            if blocks:
                a[n, list(blocks)] = True
        for n, models in enumerate(self.copies()):
            for j in models:
                a[n, list(repository.models[j].blocks)] = True
        return a

    def storage_used(self, repository) -> np.ndarray:
        """(N,) bytes: cached PBs once each, plus every model copy at its full size."""
        used = np.zeros(self.n_nodes, dtype=np.int64)
        for n, blocks in enumerate(self.cache):
            used[n] = int(repository.sizes[list(blocks)].sum()) if blocks else 0
        for n, models in enumerate(self.copies()):
            used[n] += int(sum(int(repository.model_bytes[j]) for j in models))
        return used
