"""A persistent memo of oracle results shared between processes: the solvers of one run and the
cells of a sweep (docs/model.md section 12).

The in-process memo (``BeamformingOracle``'s LRU) dies with its process; sweeps run cells in
several worker processes and benchmarks run every solver in its own. ``OracleStore`` keeps the
results in one SQLite file that every process of a run opens: on a miss of its own memo an
oracle looks there before solving, and what it solves is added.

**Key.** A result depends only on the *beam data* of the instance (node positions, antennas and
powers; user positions, noise and QoS; channels, error shapes, bandwidth; N for the SDR's
aggregate budget) and on (PB, nodes, users, method, options), never on storage, backhaul, the
repository or who requests what, so :func:`beam_fingerprint` hashes only those fields: the
cells of a storage or popularity sweep share their subproblems. The key also carries
``STORE_VERSION`` (changed whenever a method's results change). The fingerprint is taken once,
when the oracle first meets the instance object, i.e. from the pristine instance before any
solver ran on it.

**Trust.** The store is a cache, not a source of truth: a record holds the beams and the
oracle's search outcome (status, QoS verdict of its feasibility search, iterations); the rates
are recomputed from the beams with the reader's instance by the exact closed form
(docs/model.md section 3), beams that are malformed, not finite or above a node's power are
ignored (solved afresh), and plans are scored by the evaluator in any case. A corrupted or
hostile store can therefore cost time or beam quality, never a wrong score. No pickle: beams
are raw complex128 bytes, the rest JSON. Writes are buffered and written in one transaction by
:meth:`OracleStore.flush` (the sweep flushes after a cell, and drops the buffer instead when the
instance was altered during the run).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import numpy as np

STORE_VERSION = 1
_SCHEMA = ("CREATE TABLE IF NOT EXISTS memo (key TEXT PRIMARY KEY, rows INTEGER, "
           "cols INTEGER, beams BLOB, meta TEXT)")


def beam_fingerprint(inst) -> str:
    """sha256 (16 hex digits) of the fields of ``inst`` the oracle reads (module docstring);
    memoised on the instance object."""
    cached = inst.__dict__.get("_beam_fingerprint")
    if cached is not None:
        return cached
    d = inst.to_dict(with_fingerprints=False)
    keep = {
        "n_nodes": inst.n_nodes, "bandwidth_hz": d["bandwidth_hz"],
        "nodes": [{k: n[k] for k in ("position_m", "antennas", "power_max_w")}
                  for n in d["nodes"]],
        "users": [{k: u[k] for k in ("position_m", "qos_bps", "noise_w")} for u in d["users"]],
        "channels": d["channels"], "error_shape": d["error_shape"],
    }
    blob = json.dumps(keep, sort_keys=True, separators=(",", ":"), default=str).encode()
    if getattr(inst.channels, "kind", "") == "sidecar":
        blob += hashlib.sha256(np.ascontiguousarray(inst.channels.array).tobytes()).digest()
    fp = hashlib.sha256(blob).hexdigest()[:16]
    inst.__dict__["_beam_fingerprint"] = fp
    return fp


def store_key(fingerprint: str, k: int, nodes, users, method: str, options: dict) -> str:
    raw = json.dumps([STORE_VERSION, fingerprint, int(k), list(nodes), list(users), method,
                      sorted((str(a), repr(b)) for a, b in options.items())],
                     separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


class OracleStore:
    """One SQLite file of oracle results (module docstring). Safe to open from several
    processes at once (WAL journal, waits up to 60 s for a writer)."""

    def __init__(self, path: str | Path, flush_every: int = 512):
        """``flush_every``: buffered results that trigger a write (0: only :meth:`flush`)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False)
        # switching to WAL needs a moment of exclusive access, which the busy timeout does not
        # cover: several processes opening the file at once retry
        for attempt in range(50):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(_SCHEMA)
                self._db.commit()
                break
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.05 * (1 + attempt % 10))
        self._pending: dict[str, tuple] = {}
        self.flush_every = int(flush_every)
        self.reads = 0
        self.hits = 0
        self.rejected = 0

    def get(self, key: str, n_rows: int, n_cols: int) -> tuple[np.ndarray, dict] | None:
        """(beams (n_rows, n_cols) complex, meta) or None when absent or malformed."""
        self.reads += 1
        row = self._pending.get(key)
        if row is None:
            try:
                row = self._db.execute("SELECT rows, cols, beams, meta FROM memo WHERE key = ?",
                                       (key,)).fetchone()
            except sqlite3.OperationalError:  # locked past the timeout: a miss, solved afresh
                return None
        if row is None:
            return None
        rows, cols, blob, meta = row
        try:
            if (rows, cols) != (n_rows, n_cols) or len(blob) != 16 * rows * cols:
                raise ValueError("shape")
            beams = np.frombuffer(blob, dtype=np.complex128).reshape(rows, cols).copy()
            meta = json.loads(meta)
            if not isinstance(meta, dict) or not np.all(np.isfinite(beams)):
                raise ValueError("content")
        except (ValueError, TypeError, json.JSONDecodeError):
            self.rejected += 1
            return None
        self.hits += 1
        return beams, meta

    def put(self, key: str, beams: np.ndarray, meta: dict) -> None:
        b = np.ascontiguousarray(beams, dtype=np.complex128)
        self._pending[key] = (b.shape[0], b.shape[1], b.tobytes(), json.dumps(meta))
        if self.flush_every and len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the buffered results (one transaction)."""
        if not self._pending:
            return
        rows = [(k, *v) for k, v in self._pending.items()]
        try:
            with self._db:
                self._db.executemany("INSERT OR IGNORE INTO memo VALUES (?, ?, ?, ?, ?)", rows)
        except sqlite3.OperationalError:  # locked past the timeout: these stay unshared
            pass
        self._pending.clear()

    def discard(self) -> None:
        """Drop the buffered results (their run altered its instance: not to be shared)."""
        self._pending.clear()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM memo").fetchone()[0]) + len(
            self._pending)

    def close(self) -> None:
        self.flush()
        self._db.close()
