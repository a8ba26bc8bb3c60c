r"""Channels h~_{n,u}(k): generated per PB from (seed, k), or read from an ``.npz`` sidecar.

A full channel tensor is K x N x U x M complex (450 x 6 x 30 x 20 x 16 B = 26 MB for the paper's
defaults, gigabytes for large sweeps), too large for JSON and unnecessary in memory: an instance
stores the channel *model* and its seed, and :meth:`RicianChannels.user_channel` regenerates the
(N, M) channels of one (PB k, user u) pair on demand from ``SeedSequence([seed, k, u])``, so any
PB and any user can be produced alone and in any order, and only the pairs that matter (users
requesting PB k) are ever generated: ~40 us each instead of the whole (N, U, M) slice.

Model (docs/model.md section 2): h_{n,u}(k) = sqrt(upsilon d_{n,u}^{-alpha}) hbar_{n,u}(k),
upsilon the path loss at 1 m (-30 dB), alpha = 3; hbar Rician with K-factor kappa = 3:
hbar = sqrt(kappa/(kappa+1)) e^{j psi} a(theta) + sqrt(1/(kappa+1)) CN(0, I_M), where a(theta) is
the response of a half-wavelength uniform linear array toward the user's direction theta and psi
a carrier phase drawn per PB (PBs are sent at different times). Distances are clipped below at
``min_distance_m``.

Fingerprint: numpy's Generator streams may change between numpy releases, and libm functions may
differ in the last bit between machines. A bit-exact hash would flag the second harmlessly, so the
recorded fingerprint is four fixed projections of the generated arrays, compared with a relative
tolerance of 1e-9: a changed random stream moves them by O(1) relative, an ulp difference by
~1e-16.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .lru import LRU

FINGERPRINT_ALGORITHM = "proj4-v1"
FINGERPRINT_RTOL = 1e-9
PROBE_BLOCKS = 8
STEERING_CACHE_BYTES = 64_000_000  # precompute the (N, U, M) steering tensor up to this size
FINGERPRINT_MAX_USERS = 64  # users per PB in a recorded fingerprint (all of them when U <= 64)
FINGERPRINT_CHUNK_USERS = 2048  # users per chunk while projecting: bounded memory
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
_R = np.arange(1, 5, dtype=float)[:, None]


class RicianChannels:
    """Rician channels regenerated per PB (see module docstring).

    Parameters
    ----------
    seed : int
        Channel seed; the (PB k, user u) slice uses ``SeedSequence([seed, k, u])``.
    node_positions_m, user_positions_m : (N, 2), (U, 2) float, metres.
    antennas : int
        M, antennas per node.
    """

    kind = "rician"

    def __init__(self, seed: int, node_positions_m, user_positions_m, antennas: int,
                 k_factor: float = 3.0, path_loss_db_at_1m: float = -30.0,
                 path_loss_exponent: float = 3.0, min_distance_m: float = 1.0,
                 cache_bytes: int = 64_000_000):
        self.seed = int(seed)
        self.k_factor = float(k_factor)
        self.path_loss_db_at_1m = float(path_loss_db_at_1m)
        self.path_loss_exponent = float(path_loss_exponent)
        self.min_distance_m = float(min_distance_m)
        self.antennas = int(antennas)
        nodes = np.asarray(node_positions_m, dtype=float)
        users = np.asarray(user_positions_m, dtype=float)
        diff = users[None, :, :] - nodes[:, None, :]  # (N, U, 2)
        dist = np.maximum(np.hypot(diff[..., 0], diff[..., 1]), self.min_distance_m)
        gain = 10.0 ** (self.path_loss_db_at_1m / 10.0) * dist ** (-self.path_loss_exponent)
        self.amplitude = np.sqrt(gain)  # (N, U) large-scale amplitude
        theta = np.arctan2(diff[..., 1], diff[..., 0])
        # sin(theta) only, (N, U): the (N, U, M) steering tensor would cost 16 N U M bytes
        # (1.9 GB at U = 10^6, M = 20); each user's (N, M) slice is built when drawn
        self.sin_theta = np.sin(theta)
        self._m = np.arange(self.antennas)
        # ... unless it is small: then precomputed once (6 us saved per drawn pair; the same
        # elementwise exp, so the same bits)
        full_bytes = 16 * self.sin_theta.size * self.antennas
        self._steering = (np.exp(-1j * np.pi * self.sin_theta[..., None] * self._m)
                          if full_bytes <= STEERING_CACHE_BYTES else None)
        self.shape = (nodes.shape[0], users.shape[0], self.antennas)
        # recently used (PB, user) slices, bounded in bytes (64 MB: all of paper-default)
        per_pair = 16 * self.shape[0] * self.antennas
        self._cache = LRU(max(16, cache_bytes // max(per_pair, 1)))

    def steering(self, u: int) -> np.ndarray:
        """(N, M) half-wavelength ULA response of every node toward user u."""
        if self._steering is not None:
            return self._steering[:, int(u), :]
        return np.exp(-1j * np.pi * self.sin_theta[:, int(u), None] * self._m)

    def user_channel(self, k: int, u: int) -> np.ndarray:
        """(N, M) channels from every node to user u while PB k is broadcast (read-only).

        Drawn from ``SeedSequence([seed, k, u])``: only the (PB, requester) pairs that the
        evaluator, oracle or planner touch are ever generated.
        """
        key = (int(k), int(u))
        h = self._cache.get(key)
        if h is None:
            h = rician_draw(self.seed, key[0], key[1], self.amplitude[:, key[1]],
                            self.steering(key[1]), self.k_factor)
            self._cache.put(key, h)
        return h

    def channel(self, k: int, users=None) -> np.ndarray:
        """(N, V, M) complex estimated channels to ``users`` (default: all U) for PB k."""
        users = range(self.shape[1]) if users is None else users
        n, _, m = self.shape
        out = np.empty((n, len(users), m), dtype=complex)
        for i, u in enumerate(users):
            out[:, i, :] = self.user_channel(k, u)
        return out

    def spec(self) -> dict:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "k_factor": self.k_factor,
            "path_loss_db_at_1m": self.path_loss_db_at_1m,
            "path_loss_exponent": self.path_loss_exponent,
            "min_distance_m": self.min_distance_m,
            "array": "ula-half-wavelength",
        }


def rician_draw(seed: int, k: int, u: int, amplitude: np.ndarray, steering: np.ndarray,
                k_factor: float) -> np.ndarray:
    """(N, M) channels of (PB k, user u) from ``SeedSequence([seed, k, u])``: the one
    implementation of the model of the module docstring (read-only result).

    amplitude : (N,) large-scale amplitudes of user u; steering : (N, M) ULA responses."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, k, u]))
    n, m = steering.shape
    psi = rng.uniform(0.0, 2.0 * np.pi, size=n)
    # (re, im) pairs viewed as complex: CN(0, 1) after scaling by 1/sqrt(2)
    h = rng.standard_normal((n, m, 2)).view(np.complex128)[..., 0]
    h *= (amplitude * np.sqrt(0.5 / (k_factor + 1.0)))[:, None]
    los = amplitude * np.sqrt(k_factor / (k_factor + 1.0)) * np.exp(1j * psi)
    h += los[:, None] * steering
    h.setflags(write=False)
    return h


class ArrayChannels:
    """Explicit channels (measured or external), (K, N, U, M) complex, from an ``.npz`` sidecar."""

    kind = "sidecar"

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array)
        self.array.setflags(write=False)
        self.shape = self.array.shape[1:]

    def user_channel(self, k: int, u: int) -> np.ndarray:
        return self.array[int(k)][:, int(u), :]

    def channel(self, k: int, users=None) -> np.ndarray:
        a = self.array[int(k)]
        return a if users is None else a[:, list(users), :]

    def spec(self) -> dict:
        return {"kind": self.kind}


def fingerprint_users(n_users: int, max_users: int | None) -> np.ndarray:
    """The users a fingerprint covers: all of them, or ``max_users`` evenly spaced ones.

    A changed random stream moves every (PB, user) draw, so a fixed sample detects it as well
    as all U users do, at a cost independent of U (fingerprinting all K x U pairs took ~26 s at
    U = 3,000 and would take hours at 10^6)."""
    if max_users is None or n_users <= max_users:
        return np.arange(n_users)
    return np.unique(np.arange(max_users, dtype=np.int64) * n_users // max_users)


def fingerprint(source, blocks: Iterable[int], max_users: int | None = None,
                chunk_users: int = FINGERPRINT_CHUNK_USERS) -> dict:
    """Projections of the channels of the given PBs, in bounded memory.

    The value is that of the flat vector [Re h.ravel(), Im h.ravel()] of each PB's (N, V, M)
    array, normalised by its RMS, projected on four fixed weight vectors (V = the users of
    :func:`fingerprint_users`). It is accumulated over chunks of ``chunk_users`` users (the
    projection is linear, the RMS and the max are accumulated alongside), so memory is
    O(N chunk_users M) whatever U is; values agree with the unchunked form to rounding.
    """
    blocks = list(blocks)
    n, n_users, m = source.shape
    users = fingerprint_users(n_users, max_users)
    v = len(users)
    half = n * v * m  # offset of the imaginary parts in the flat vector
    acc = np.zeros(4)
    scale = 0.0
    # the weights depend only on flat positions, so they are the same for every PB: kept
    # across PBs while they fit in 64 MB (always, with the 64-user sample)
    node_base = np.arange(n)[:, None, None] * (v * m)
    keep = 2 * 4 * 8 * half <= 64_000_000
    weights: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def chunk_weights(c0: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        w = weights.get(c0)
        if w is None:
            pos = (node_base + (c0 + np.arange(width))[None, :, None] * m
                   + np.arange(m)[None, None, :]).ravel()
            w = tuple(np.cos(2 * np.pi * (((pos + offset)[None, :].astype(float)
                                           * _GOLDEN * _R) % 1.0)) for offset in (0, half))
            if keep:
                weights[c0] = w
        return w

    for k in blocks:
        if v == 0 or n == 0 or m == 0:  # no users: nothing to fingerprint
            continue
        proj = np.zeros(4)
        sumsq = 0.0
        absmax = 0.0
        wabs = np.zeros(4)
        for c0 in range(0, v, chunk_users):
            cu = users[c0:c0 + chunk_users]
            h = source.channel(k, cu)  # (N, c, M)
            for part, w in zip((h.real.ravel(), h.imag.ravel()), chunk_weights(c0, len(cu)),
                               strict=True):
                proj += w @ part
                wabs += np.abs(w).sum(axis=1)
                # einsum, not BLAS ddot: a threaded ddot stalls for ~30 ms on a loaded machine
                sumsq += float(np.einsum("i,i->", part, part))
                absmax = max(absmax, float(np.abs(part).max()))
        rms = np.sqrt(sumsq / (2 * half)) or 1.0
        acc += proj / rms
        scale += float(wabs.max() * absmax / rms)
    out = {"algorithm": FINGERPRINT_ALGORITHM, "n_blocks": len(blocks),
           "values": [float(x) for x in acc], "scale": scale}
    if max_users is not None and n_users > max_users:  # else: all users, as without a cap
        out["max_users"] = int(max_users)
    return out


def fingerprint_matches(recorded: dict, computed: dict) -> bool:
    if recorded.get("algorithm") != computed["algorithm"]:
        return False
    if int(recorded.get("n_blocks", -1)) != computed["n_blocks"]:
        return False
    if recorded.get("max_users") != computed.get("max_users"):
        return False
    a = np.asarray(recorded.get("values", []), dtype=float)
    b = np.asarray(computed["values"], dtype=float)
    if a.shape != b.shape:
        return False
    tol = FINGERPRINT_RTOL * max(computed["scale"], 1.0)
    return bool(np.all(np.abs(a - b) <= tol))


def channel_fingerprints(source, n_blocks: int,
                         max_users: int | None = FINGERPRINT_MAX_USERS) -> dict:
    """The ``probe`` (first few PBs, checked at every load) and ``full`` (all PBs) fingerprints,
    each over at most ``max_users`` users per PB (:func:`fingerprint_users`)."""
    return {
        "probe": fingerprint(source, range(min(PROBE_BLOCKS, n_blocks)), max_users),
        "full": fingerprint(source, range(n_blocks), max_users),
    }


class ErrorShape:
    """Isotropic channel-error ellipsoids C_{n,u} = c_{n,u} I_M: ||e_{n,u}||^2 <= 1/c_{n,u}.

    ``c`` is a scalar or an (N, U) array (1/m^... in channel-amplitude^-2 units; 1e10 in Table II).
    """

    def __init__(self, c, n_nodes: int, n_users: int):
        c_arr = np.asarray(c, dtype=float)
        self.scalar = c_arr.ndim == 0
        self.c_scalar = float(c_arr) if self.scalar else None
        self.c = np.broadcast_to(c_arr, (n_nodes, n_users)).copy()
        with np.errstate(divide="ignore"):
            self.radius = np.where(np.isinf(self.c), 0.0, 1.0 / np.sqrt(self.c))  # (N, U)

    def spec(self) -> dict:
        # the scalar is kept apart: with U = 0 the (N, U) array has no element to read it from
        c = self.c_scalar if self.scalar else self.c.tolist()
        return {"kind": "isotropic", "c": c}
