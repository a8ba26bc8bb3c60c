"""A problem instance: nodes, users, repository, backhaul, bandwidth and channels.

Symbols and units (MODEL.md section 1): N nodes n with M antennas, power budget P_max (W) and
storage C_n (bytes); U users u at positions (m), associated with node, requesting model r_u, QoS
floor Q_u (bits/s), noise power sigma_u^2 (W); bandwidth B (Hz); backhaul R^bac_{n,m}(k) (bits/s);
channels h~_{n,u}(k) (complex amplitude gain) with error ellipsoids C_{n,u} = c_{n,u} I_M.

An :class:`Instance` is immutable problem data; solvers read it, nothing writes it. Channels are
regenerated per PB on demand (see channels.py), so one environment step (one PB) costs one small
generation, never the whole tensor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .repository import Repository


@dataclass(frozen=True)
class Nodes:
    ids: tuple[str, ...]
    positions_m: np.ndarray  # (N, 2)
    antennas: int  # M, the same for every node in schema v1
    power_max_w: np.ndarray  # (N,)
    storage_bytes: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Users:
    ids: tuple[str, ...]
    positions_m: np.ndarray  # (U, 2)
    node: np.ndarray  # (U,) int: associated node index
    model: np.ndarray  # (U,) int: requested model index r_u
    qos_bps: np.ndarray  # (U,) Q_u
    noise_w: np.ndarray  # (U,) sigma_u^2

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Instance:
    name: str
    nodes: Nodes
    users: Users
    repository: Repository
    bandwidth_hz: float
    backhaul: object  # UniformBackhaul | MatrixBackhaul | ArrayBackhaul: .rates(k) -> (N, N)
    channels: object  # RicianChannels | ArrayChannels: .channel(k) -> (N, U, M)
    error: object  # ErrorShape: .radius (N, U) = 1/sqrt(c)
    area_m: tuple[float, float] = (1000.0, 1000.0)
    info_exchange_radius_m: float = 500.0
    description: str = ""
    provenance: dict = field(default_factory=dict)
    channel_fingerprints: dict = field(default_factory=dict)
    source_file: str | None = None

    # ---- sizes -------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_blocks(self) -> int:
        return self.repository.n_blocks

    @property
    def n_models(self) -> int:
        return self.repository.n_models

    @property
    def antennas(self) -> int:
        return self.nodes.antennas

    # ---- demand ------------------------------------------------------------------------
    @cached_property
    def demand(self) -> np.ndarray:
        """(U, K) bool: demand[u, k] is True when PB k is in user u's requested model."""
        return self.repository.membership[self.users.model]

    @cached_property
    def requested_blocks(self) -> np.ndarray:
        """Sorted indices of the PBs that at least one user requests."""
        return np.flatnonzero(self.demand.any(axis=0))

    @cached_property
    def _requesters(self) -> list[np.ndarray]:
        d = self.demand
        return [np.flatnonzero(d[:, k]) for k in range(self.n_blocks)]

    def requesters(self, k: int) -> np.ndarray:
        """Users u with k in K_{r_u} (sorted user indices)."""
        return self._requesters[k]

    @cached_property
    def requested_models(self) -> np.ndarray:
        return np.unique(self.users.model)

    @cached_property
    def info_exchange(self) -> np.ndarray:
        """(N, N) bool varpi_{n,m}: nodes closer than the information-exchange radius (n != m)."""
        p = self.nodes.positions_m
        d = np.hypot(*(p[:, None, :] - p[None, :, :]).transpose(2, 0, 1))
        w = d < self.info_exchange_radius_m
        np.fill_diagonal(w, False)
        return w

    # ---- physical layer ----------------------------------------------------------------
    def channel(self, k: int, users=None) -> np.ndarray:
        """(N, V, M) complex estimated channels h~_{n,u}(k) to ``users`` (default: all U) while
        PB k is broadcast. Only the requested columns are generated."""
        return self.channels.channel(k, users)

    def user_channel(self, k: int, u: int) -> np.ndarray:
        """(N, M) channels from every node to user u for PB k (read-only)."""
        return self.channels.user_channel(k, u)

    def backhaul_rates(self, k: int) -> np.ndarray:
        """(N, N) backhaul rates R^bac_{n,m}(k) in bits/s (+inf on the diagonal)."""
        return self.backhaul.rates(k)

    @property
    def error_radius(self) -> np.ndarray:
        """(N, U) channel-error radius 1/sqrt(c_{n,u}) (same units as the channels)."""
        return self.error.radius

    @cached_property
    def snr_required(self) -> np.ndarray:
        """(U,) worst-case SNR needed for Q_u: 2^(Q_u / B) - 1."""
        return np.expm1(self.users.qos_bps / self.bandwidth_hz * np.log(2.0))

    # ---- identity ----------------------------------------------------------------------
    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical problem data (provenance and description excluded); the key
        under which oracle results are memoised."""
        from .instance_io import instance_to_dict  # local: io depends on this module

        d = instance_to_dict(self)
        for key in ("provenance", "description", "name", "sidecar"):
            d.pop(key, None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str).encode()
        extra = b""
        if getattr(self.channels, "kind", "") == "sidecar":
            extra += hashlib.sha256(np.ascontiguousarray(self.channels.array).tobytes()).digest()
        if getattr(self.backhaul, "kind", "") == "sidecar":
            extra += hashlib.sha256(np.ascontiguousarray(self.backhaul.array).tobytes()).digest()
        return hashlib.sha256(blob + extra).hexdigest()[:16]

    def summary(self) -> dict:
        """Counts, reuse and request statistics (what ``fgamcd-info`` prints)."""
        rep = self.repository
        reuse = rep.reuse_summary()
        n_req = np.array([len(self.requesters(k)) for k in self.requested_blocks])
        model_counts = np.bincount(self.users.model, minlength=self.n_models)
        req_bytes = int(rep.sizes[self.requested_blocks].sum())
        naive_req = int((rep.model_bytes[self.users.model]).sum())
        return {
            "name": self.name,
            "N": self.n_nodes,
            "U": self.n_users,
            "J": self.n_models,
            "K": self.n_blocks,
            "M": self.antennas,
            "bandwidth_hz": self.bandwidth_hz,
            "storage_bytes": self.nodes.storage_bytes.tolist(),
            "power_max_w": self.nodes.power_max_w.tolist(),
            **reuse,
            "requested_models": int(len(self.requested_models)),
            "requested_blocks": int(len(self.requested_blocks)),
            "requested_unique_bytes": req_bytes,
            "requested_naive_bytes": naive_req,
            "requesters_per_block_mean": float(n_req.mean()) if n_req.size else 0.0,
            "requesters_per_block_max": int(n_req.max()) if n_req.size else 0,
            "blocks_with_several_requesters": int((n_req > 1).sum()),
            "top_model_requests": int(model_counts.max()) if model_counts.size else 0,
            "qos_bps_min": float(self.users.qos_bps.min()) if self.n_users else 0.0,
            "qos_bps_max": float(self.users.qos_bps.max()) if self.n_users else 0.0,
        }
