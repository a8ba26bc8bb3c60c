"""The model repository: AI models as ordered lists of parameter blocks (PBs).

Symbols (docs/model.md section 1): K PBs indexed k, size S(k) in bytes; J models indexed j,
model j is the ordered list K_j of its PBs. Fine-tuned models share frozen PBs, and a shared PB
is stored and broadcast once; the reuse statistics below quantify how much that saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Block:
    """One parameter block (PB)."""

    id: str
    name: str
    size_bytes: int
    base_model: str


@dataclass(frozen=True)
class Model:
    """One AI model: an ordered tuple of PB indices (positions in ``Repository.blocks``)."""

    id: str
    name: str
    base_model: str
    task: str | None
    blocks: tuple[int, ...]


class Repository:
    """Blocks and models, with index lookups and reuse statistics (all sizes in bytes)."""

    def __init__(self, blocks: list[Block], models: list[Model]):
        self.blocks = list(blocks)
        self.models = list(models)
        self.block_index = {b.id: i for i, b in enumerate(self.blocks)}
        self.model_index = {m.id: j for j, m in enumerate(self.models)}
        self.sizes = np.array([b.size_bytes for b in self.blocks], dtype=np.int64)

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @property
    def n_models(self) -> int:
        return len(self.models)

    @cached_property
    def membership(self) -> np.ndarray:
        """(J, K) bool: membership[j, k] is True when PB k belongs to model j."""
        m = np.zeros((self.n_models, self.n_blocks), dtype=bool)
        for j, model in enumerate(self.models):
            m[j, list(model.blocks)] = True
        return m

    @cached_property
    def model_bytes(self) -> np.ndarray:
        """(J,) size of each whole model in bytes (what coarse-grained caching stores per copy)."""
        return self.membership.astype(np.int64) @ self.sizes

    @property
    def unique_bytes(self) -> int:
        """Bytes to store every model once with shared PBs stored once: sum_k S(k)."""
        return int(self.sizes.sum())

    @property
    def naive_bytes(self) -> int:
        """Bytes to store every model as an independent copy: sum_j sum_{k in K_j} S(k)."""
        return int(self.model_bytes.sum())

    @cached_property
    def block_degree(self) -> np.ndarray:
        """(K,) number of models containing each PB."""
        return self.membership.sum(axis=0)

    def shared_fraction(self) -> np.ndarray:
        """(J,) the parameter reuse ratio of each model: share of its bytes in PBs that at least
        one other model also contains."""
        shared = self.block_degree > 1
        return (self.membership.astype(np.int64) @ (self.sizes * shared)) / self.model_bytes

    def pairwise_reuse(self) -> np.ndarray:
        """(J, J) r[i, j] = bytes of K_i ∩ K_j / bytes of K_i (share of model i that model j
        also contains; 1 on the diagonal; not symmetric)."""
        mem = self.membership.astype(np.float64)
        common = (mem * self.sizes) @ mem.T
        return common / self.model_bytes[:, None]

    def reuse_summary(self) -> dict:
        """Headline reuse statistics (sizes in bytes)."""
        pair = self.pairwise_reuse()
        off = pair[~np.eye(self.n_models, dtype=bool)] if self.n_models > 1 else np.zeros(1)
        shared = self.shared_fraction()
        return {
            "n_blocks": self.n_blocks,
            "n_models": self.n_models,
            "unique_bytes": self.unique_bytes,
            "naive_bytes": self.naive_bytes,
            "storage_saving": (1.0 - self.unique_bytes / self.naive_bytes) if self.naive_bytes
            else 0.0,
            "reuse_ratio_mean": float(shared.mean()) if self.n_models else 0.0,
            "reuse_ratio_min": float(shared.min()) if self.n_models else 0.0,
            "reuse_ratio_max": float(shared.max()) if self.n_models else 0.0,
            "pairwise_reuse_mean": float(off.mean()),
            "pairwise_reuse_max": float(off.max()),
            "pairs_sharing": int((off > 0).sum()),
            "shared_blocks": int((self.block_degree > 1).sum()),
            "block_bytes_min": int(self.sizes.min()) if self.n_blocks else 0,
            "block_bytes_max": int(self.sizes.max()) if self.n_blocks else 0,
        }

    def graph(self):
        """Bipartite model-PB graph: nodes ('model', j) and ('block', k); an edge when k is in
        K_j, with the edge attribute ``position`` (index of the PB in the model's order)."""
        import networkx as nx  # lazily: only the statistics need the graph

        g = nx.Graph()
        for k, b in enumerate(self.blocks):
            g.add_node(("block", k), bipartite=1, id=b.id, size_bytes=b.size_bytes,
                       base_model=b.base_model)
        for j, m in enumerate(self.models):
            g.add_node(("model", j), bipartite=0, id=m.id, base_model=m.base_model)
            for pos, k in enumerate(m.blocks):
                g.add_edge(("model", j), ("block", k), position=pos)
        return g

    def sharing_graph(self):
        """Model-model graph weighted by shared bytes (the one-mode projection)."""
        import networkx as nx  # lazily: only the statistics need the graph

        g = nx.Graph()
        g.add_nodes_from(range(self.n_models))
        mem = self.membership.astype(np.float64)
        common = (mem * self.sizes) @ mem.T
        for i in range(self.n_models):
            for j in range(i + 1, self.n_models):
                if common[i, j] > 0:
                    g.add_edge(i, j, shared_bytes=int(common[i, j]))
        return g
