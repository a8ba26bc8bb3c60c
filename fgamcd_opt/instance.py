"""A problem instance: nodes, users, repository, backhaul, bandwidth and channels.

Symbols and units (docs/model.md section 1): N nodes n with M antennas, power budget P_max (W) and
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
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import ResourceLimitError
from .repository import Repository
from .schema import SCHEMA_VERSION


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
        return np.array([k for k in range(self.n_blocks) if len(self._requesters[k])],
                        dtype=np.int64)

    @cached_property
    def _requesters(self) -> list[np.ndarray]:
        # from the users of each model, not from the (U, K) demand matrix: memory and time
        # O(requested pairs) instead of O(U K) (435 MB of booleans at U = 10^6)
        order = np.argsort(self.users.model, kind="stable")
        bounds = np.searchsorted(self.users.model[order], np.arange(self.n_models + 1))
        per_block: list[list[np.ndarray]] = [[] for _ in range(self.n_blocks)]
        for j in np.unique(self.users.model):
            us = order[bounds[j]:bounds[j + 1]]
            for k in self.repository.models[j].blocks:
                per_block[k].append(us)
        empty = np.zeros(0, dtype=np.int64)
        return [np.sort(np.concatenate(p)) if len(p) > 1 else (p[0] if p else empty)
                for p in per_block]

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
        """sha256 of the canonical problem data (provenance, description and channel
        fingerprints excluded); the key under which oracle results are memoised."""
        # without the channel fingerprints: they are derived from the channel seed and
        # parameters (which are hashed) and their last bits depend on the BLAS kernel, so
        # hashing them gave the same instance different identities on different machines
        d = self.to_dict(with_fingerprints=False)
        for key in ("provenance", "description", "name", "sidecar"):
            d.pop(key, None)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str).encode()
        extra = b""
        if getattr(self.channels, "kind", "") == "sidecar":
            extra += hashlib.sha256(np.ascontiguousarray(self.channels.array).tobytes()).digest()
        if getattr(self.backhaul, "kind", "") == "sidecar":
            extra += hashlib.sha256(np.ascontiguousarray(self.backhaul.array).tobytes()).digest()
        return hashlib.sha256(blob + extra).hexdigest()[:16]

    def fresh_fingerprint(self) -> str:
        """:attr:`fingerprint` recomputed from the current data (the attribute is cached, so it
        would not see a change made after it was first read)."""
        return type(self).__dict__["fingerprint"].func(self)

    def to_dict(self, with_fingerprints: bool = True) -> dict:
        """The JSON form (schema v1; docs/model.md section 1). Sidecar arrays are not included:
        :func:`fgamcd_opt.instance_io.save_instance` writes them. Lives here, not in
        instance_io, so that this module does not import the loader (no import cycle)."""
        rep = self.repository
        ch = self.channels.spec()
        if with_fingerprints and self.channel_fingerprints:
            ch["fingerprints"] = self.channel_fingerprints
        node_ids, model_ids = self.nodes.ids, [m.id for m in rep.models]
        d = {
            "schema_version": SCHEMA_VERSION,
            "kind": "fgamcd-instance",
            "name": self.name,
            "description": self.description,
            "provenance": self.provenance,
            "area_m": [float(a) for a in self.area_m],
            "bandwidth_hz": self.bandwidth_hz,
            "info_exchange_radius_m": self.info_exchange_radius_m,
            "nodes": [
                {"id": node_ids[i], "position_m": self.nodes.positions_m[i].tolist(),
                 "antennas": self.nodes.antennas,
                 "power_max_w": float(self.nodes.power_max_w[i]),
                 "storage_bytes": int(self.nodes.storage_bytes[i])}
                for i in range(self.n_nodes)
            ],
            "users": [
                {"id": uid, "position_m": pos, "node": node_ids[n],
                 "requested_model": model_ids[j], "qos_bps": q, "noise_w": w}
                for uid, pos, n, j, q, w in zip(
                    self.users.ids, self.users.positions_m.tolist(), self.users.node.tolist(),
                    self.users.model.tolist(), self.users.qos_bps.tolist(),
                    self.users.noise_w.tolist(), strict=True)
            ],
            "repository": {
                "blocks": [{"id": b.id, "name": b.name, "size_bytes": b.size_bytes,
                            "base_model": b.base_model} for b in rep.blocks],
                "models": [{"id": m.id, "name": m.name, "base_model": m.base_model,
                            "task": m.task, "blocks": [rep.blocks[k].id for k in m.blocks]}
                           for m in rep.models],
            },
            "backhaul": self.backhaul.spec(),
            "channels": ch,
            "error_shape": self.error.spec(),
        }
        if ch["kind"] == "sidecar" or d["backhaul"]["kind"] == "sidecar":
            d["sidecar"] = Path(self.source_file).with_suffix(".npz").name \
                if self.source_file else "channels.npz"
        return d

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


# ---- memory: estimate before allocating, refuse beyond a limit ------------------------------
MEMORY_ENV = "FGAMCD_MAX_MEMORY"
_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9,
          "GB": 10**9, "T": 10**12, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
          "TIB": 2**40}
# Calibrated with tracemalloc on generated paper-default instances (U = 3,000 and 30,000;
# see benchmarks/bench_scaling.py): Python objects of one user in memory (ids, the JSON dict
# built when saving or parsed when loading) ~1.6 KB, plus per-(node, user) arrays (channel
# model, error radii: 4 float64) and the requester lists (one int64 per requested PB).
_BASE_BYTES = 120 * 10**6  # libraries, the bounded channel and backhaul caches
_PER_USER_BYTES = 1600
_JSON_PARSE_FACTOR = 14  # peak bytes of json.loads + validation per byte of instance file


def parse_bytes(text: str | int | float) -> int:
    """'4G', '500MB', '1.5GiB', '123' -> bytes (decimal K/M/G/T; KiB/MiB/GiB/TiB binary)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        t = str(text).strip().upper().replace(" ", "")
        num = t.rstrip("KMGTIB")
        unit = t[len(num):]
        try:
            value = float(num)
        except ValueError:
            value = float("nan")
    if unit not in _UNITS or not (value > 0 and value < float("inf")):
        raise ValueError(f"memory limit {text!r}: expected a positive size such as 4G, 500M "
                         "or 1.5GiB")
    return int(value * _UNITS[unit])


def memory_limit_bytes(override: str | int | None = None) -> int:
    """The memory limit: ``override`` (the --max-memory flag), else ${FGAMCD_MAX_MEMORY}, else
    80% of this machine's physical memory (8 GB when that is unknown)."""
    from .errors import ParameterError

    for source, value in (("--max-memory", override), (MEMORY_ENV, os.environ.get(MEMORY_ENV))):
        if value not in (None, ""):
            try:
                return parse_bytes(value)
            except ValueError as exc:
                raise ParameterError(f"{source}: {exc}") from None
    try:
        return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 10**9


def estimate_memory_bytes(n_nodes: int, n_users: int, n_blocks: int, antennas: int,
                          requested_pairs: int | None = None, sidecar_channels: bool = False,
                          sidecar_backhaul: bool = False) -> int:
    """Peak bytes to build, load or save an instance of this size (an estimate, within a small
    factor; solvers need more). ``requested_pairs``: sum over users of their model's PB count
    (default 30 per user). Sidecar arrays count twice (read, then converted)."""
    n, u, k, m = (max(int(x), 0) for x in (n_nodes, n_users, n_blocks, antennas))
    pairs = 30 * u if requested_pairs is None else int(requested_pairs)
    total = _BASE_BYTES + u * _PER_USER_BYTES + 32 * n * u + 8 * pairs + 8 * n * n * min(k, 4096)
    if sidecar_channels:
        total += 2 * 16 * k * n * u * m
    if sidecar_backhaul:
        total += 2 * 8 * k * n * n
    return int(total)


def json_parse_estimate_bytes(file_bytes: int) -> int:
    """Peak bytes to parse and validate an instance JSON file of this size."""
    return _BASE_BYTES + _JSON_PARSE_FACTOR * int(file_bytes)


def _fmt(b: float) -> str:
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if b >= div:
            return f"{b / div:.1f} {unit}"
    return f"{b:.0f} B"


def check_memory(estimate: int, what: str, limit: str | int | None = None) -> None:
    """Raise :class:`ResourceLimitError` (one line, with the estimate) when ``estimate`` exceeds
    the limit of :func:`memory_limit_bytes`."""
    cap = memory_limit_bytes(limit)
    if estimate > cap:
        raise ResourceLimitError(
            f"{what} needs about {_fmt(estimate)} of memory, above the limit of {_fmt(cap)}; "
            f"raise it with --max-memory SIZE or {MEMORY_ENV}=SIZE (e.g. 32G) if this machine "
            "has the memory, or use fewer users")

