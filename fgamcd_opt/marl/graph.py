"""The state s(k) of the MAASN-DA environment as a graph, for the architecture whose parameters
do not depend on N or on the users per node (docs/maasn.md section 8).

The padded observation of eq. 10 fixes N and the users per node P; a policy trained on it fits
only instances with the same N and at most P users at a node. The graph form carries the same
information without either: per node m its remaining storage C~_m(k) and its users' remaining
demand D_m(k) (both in GB), per ordered pair (n, m) the backhaul R^bac_{n,m}(k) / 1e10 and the
information-exchange indicator varpi_{n,m}, per user its node and whether it requests PB k, and
S(k) / S_max. Agent n's view is derived from it by the networks (``networks.SharedActor``):
the nodes it cannot observe (varpi = 0) read as zeros, as in eq. 10.

So that the replay buffer, the demonstrations and the learner stay those of the padded form,
one step's graph is packed into one flat float32 vector of a fixed layout (``GraphLayout``:
up to ``n_max`` nodes and ``u_max`` users; unused slots are masked), the same vector for every
agent. ``pack`` (numpy) and ``unpack`` (torch) are inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GraphLayout:
    n_max: int  # most nodes an instance may have
    u_max: int  # most users an instance may have

    @property
    def fields(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        n, u = self.n_max, self.u_max
        return (("node", (n, 2)), ("glob", (1,)), ("bh", (n, n)), ("vis", (n, n)),
                ("req", (u,)), ("unode", (u,)), ("agents", (n,)))

    @property
    def dim(self) -> int:
        return int(sum(np.prod(s) for _, s in self.fields))

    def check(self, n_nodes: int, n_users: int, where: str = "instance") -> None:
        from ..errors import ParameterError

        if n_nodes > self.n_max or n_users > self.u_max:
            raise ParameterError(
                f"{where} has N={n_nodes} nodes and U={n_users} users; this policy's graph "
                f"layout holds at most N={self.n_max} and U={self.u_max}")

    def pack(self, node, size, bh, vis, req, unode) -> np.ndarray:
        """One step's graph (arrays of the real N nodes and U users) -> (dim,) float32."""
        n, u = len(node), len(req)
        self.check(n, u)
        parts = {
            "node": np.zeros((self.n_max, 2)), "glob": np.array([size]),
            "bh": np.zeros((self.n_max, self.n_max)), "vis": np.zeros((self.n_max, self.n_max)),
            "req": np.zeros(self.u_max), "unode": np.full(self.u_max, -1.0),
            "agents": np.zeros(self.n_max)}
        parts["node"][:n] = node
        parts["bh"][:n, :n] = bh
        parts["vis"][:n, :n] = vis
        parts["req"][:u] = req
        parts["unode"][:u] = unode
        parts["agents"][:n] = 1.0
        return np.concatenate([parts[k].reshape(-1) for k, _ in self.fields]).astype(np.float32)

    def unpack(self, x):
        """(..., dim) torch tensor -> dict of tensors shaped (..., *field shape); ``unode`` as
        long (-1: no user)."""
        out, at = {}, 0
        lead = x.shape[:-1]
        for name, shape in self.fields:
            size = int(np.prod(shape))
            out[name] = x[..., at:at + size].reshape(*lead, *shape)
            at += size
        out["unode"] = out["unode"].round().long()
        return out

    def to_dict(self) -> dict:
        return {"n_max": self.n_max, "u_max": self.u_max}


def pad_agents(a: np.ndarray, n_max: int) -> np.ndarray:
    """(..., N, N) agent-layout actions or masks -> (..., n_max, n_max), zeros elsewhere: the
    padded nodes have the highest indices, so agent n's real other nodes stay its first
    N - 1 columns."""
    n = a.shape[-1]
    out = np.zeros((*a.shape[:-2], n_max, n_max), dtype=a.dtype)
    out[..., :n, :n] = a
    return out
