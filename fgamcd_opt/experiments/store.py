"""The results store: one JSONL file, a header line, then one row per finished cell.

Crash safety: every row is written with a single ``write`` on an append-mode descriptor followed
by ``fsync``, so a killed sweep leaves at most one torn final line. On reopening, a torn final
line (no newline, not valid JSON) is moved aside to ``<store>.torn-<n>`` and cut off; any other
unreadable line, a missing or foreign header (another spec, or not a store at all) is refused
with a clear error and the file is left untouched. An exclusive ``flock`` stops two sweeps
writing one store. The last row of a cell wins, so a resumed sweep appends the redone cells.

Provenance (format 2, :mod:`.provenance`): the header carries the code identity of the run that
created the store, the list of the spec's cell ids and its own checksum; every row carries the
code identity of the process that made it and ``row_sha256``. A row whose checksum does not
match (edited after it was written) is not used: :attr:`Store.rejected` and
:func:`load_store` count it. Format-1 stores (older fgamcd-opt: no code identity, no
checksums) can be read for reports, flagged as such, but a sweep does not append to them.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import time
from pathlib import Path

from ..errors import FgamcdError
from .provenance import CHECKSUM_FIELD, check_row, code_identity, with_checksum

STORE_KIND = "fgamcd-sweep-store"
STORE_FORMAT = 2
READABLE_FORMATS = (1, 2)


class StoreError(FgamcdError):
    """The store file is corrupt, foreign, or in use."""


def _dumps(obj) -> str:
    from ..jsonio import jsonable

    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


class Store:
    """Append-only JSONL results of one spec (identified by its hash)."""

    def __init__(self, path, spec_name: str, spec_hash: str, meta: dict | None = None):
        self.path = Path(path)
        self.spec_name = spec_name
        self.spec_hash = spec_hash
        self.rows: list[dict] = []
        self.rejected: list[tuple[int, str]] = []  # (line number, why) of rows not used
        self.header: dict = {}
        self.torn_line_moved_to: Path | None = None
        self._fd: int | None = None
        self._open(meta or {})

    # ---- opening ------------------------------------------------------------------------
    def _open(self, meta: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self.path}: the store is in use by another sweep") from None
        self._fd = fd
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                self.header = with_checksum(json.loads(_dumps({
                    "kind": STORE_KIND, "format": STORE_FORMAT, "spec": self.spec_name,
                    "spec_hash": self.spec_hash, "code": code_identity(),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **meta})))
                self._append_line(_dumps(self.header))
                return
            self._read_existing()
        except BaseException:
            self.close()
            raise

    def _read_existing(self) -> None:
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" if the file ends with a newline
        if tail:
            try:
                json.loads(tail)
                lines.append(tail)
                torn = False
            except ValueError:
                torn = True
            if torn:
                if not lines:
                    raise StoreError(f"{self.path}: not a results store (no header line); "
                                     "refusing to touch it")
                n = 1
                while self.path.with_name(f"{self.path.name}.torn-{n}").exists():
                    n += 1
                aside = self.path.with_name(f"{self.path.name}.torn-{n}")
                aside.write_bytes(tail)
                os.ftruncate(self._fd, len(data) - len(tail))
                os.fsync(self._fd)
                self.torn_line_moved_to = aside
            else:
                # a complete last row that lacks only its newline: finish the line
                os.write(self._fd, b"\n")
        if not lines:
            raise StoreError(f"{self.path}: not a results store (empty first line)")
        try:
            header = json.loads(lines[0])
        except ValueError:
            raise StoreError(f"{self.path}: line 1: not a results store header (not JSON); "
                             "refusing to touch it") from None
        if not isinstance(header, dict) or header.get("kind") != STORE_KIND:
            raise StoreError(f"{self.path}: line 1: not a {STORE_KIND} header; refusing to "
                             "touch it")
        if header.get("format") == 1:
            raise StoreError(
                f"{self.path}: store format 1, written by an older fgamcd-opt without code "
                "identity or row checksums: its rows cannot be checked or reused; move it "
                "away or use another output directory to run the spec again")
        if header.get("format") != STORE_FORMAT:
            raise StoreError(f"{self.path}: store format {header.get('format')!r}, this "
                             f"version writes {STORE_FORMAT}")
        if not check_row(header):
            raise StoreError(f"{self.path}: line 1: the header's checksum does not match "
                             "(edited after it was written); refusing to touch it")
        if header.get("spec_hash") != self.spec_hash:
            raise StoreError(
                f"{self.path}: the store holds results of spec {header.get('spec')!r} "
                f"(hash {header.get('spec_hash')}), not of this spec {self.spec_name!r} (hash "
                f"{self.spec_hash}); use another output directory")
        self.header = header
        for i, line in enumerate(lines[1:], start=2):
            if not line.strip():
                raise StoreError(f"{self.path}: line {i}: empty line inside the store "
                                 "(corrupt); refusing to touch it")
            try:
                row = json.loads(line)
            except ValueError:
                raise StoreError(f"{self.path}: line {i}: not valid JSON (corrupt); refusing "
                                 "to touch it") from None
            if not isinstance(row, dict) or "cell" not in row or "state" not in row:
                raise StoreError(f"{self.path}: line {i}: a row without 'cell' and 'state' "
                                 "(corrupt); refusing to touch it")
            why = row_problem(row, header)
            if why:
                self.rejected.append((i, why))
                continue
            self.rows.append(row)

    # ---- writing ------------------------------------------------------------------------
    def _append_line(self, text: str) -> None:
        blob = (text + "\n").encode()
        n = os.write(self._fd, blob)
        if n != len(blob):  # a regular file short-writes only when the disk is full
            raise StoreError(f"{self.path}: short write ({n} of {len(blob)} bytes)")
        os.fsync(self._fd)

    def append(self, row: dict) -> None:
        """Append one row; it gets this process's code identity if it has none (rows made by
        a worker carry the worker's) and its checksum."""
        if self._fd is None:
            raise StoreError(f"{self.path}: store is closed")
        row = json.loads(_dumps({k: v for k, v in row.items() if k != CHECKSUM_FIELD}))
        row.setdefault("code", code_identity())
        row = with_checksum(row)
        self._append_line(_dumps(row))
        self.rows.append(row)

    def close(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- reading ------------------------------------------------------------------------
    def latest(self) -> dict[str, dict]:
        """cell id -> its last row."""
        out: dict[str, dict] = {}
        for r in self.rows:
            out[r["cell"]] = r
        return out

    def done_cells(self) -> set[str]:
        return {c for c, r in self.latest().items() if r.get("state") == "done"}


def row_problem(row: dict, header: dict) -> str:
    """Why a row of a readable store is not used ('' if it is): its checksum does not match
    (edited after it was written), or it is not a cell of the store's spec."""
    if header.get("format", 1) >= 2 and not check_row(row):
        return "checksum mismatch (edited after it was written)"
    cells = header.get("cells")
    if isinstance(cells, list) and cells and row.get("cell") not in set(cells):
        return "not a cell of the spec"
    return ""


class StoreView:
    """A store read for reporting: the header, the last valid row per cell, and what was left
    out (reason -> count)."""

    def __init__(self, header: dict, rows: list[dict], ignored: dict[str, int], path: Path):
        self.header = header
        self.rows = rows
        self.ignored = ignored
        self.path = path

    @property
    def verified(self) -> bool:
        """Format 2: rows carry code identity and checksums."""
        return self.header.get("format", 1) >= 2


def load_store(path) -> StoreView:
    """Header and the last usable row per cell, read-only (for reports). A torn final line is
    ignored (the next sweep run moves it aside); rows that fail their checksum or are not cells
    of the spec are left out and counted; any other corruption is an error."""
    p = Path(path)
    if p.is_dir():
        p = p / "store.jsonl"
    if not p.is_file():
        raise StoreError(f"{path}: no results store here")
    lines = p.read_bytes().split(b"\n")
    tail = lines.pop()
    if tail:
        try:
            json.loads(tail)
            lines.append(tail)
        except ValueError:
            pass
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("kind") != STORE_KIND:
        raise StoreError(f"{p}: line 1: not a {STORE_KIND} header")
    if header.get("format", 1) not in READABLE_FORMATS:
        raise StoreError(f"{p}: store format {header.get('format')!r}, this version reads "
                         f"{', '.join(map(str, READABLE_FORMATS))}")
    if header.get("format", 1) >= 2 and not check_row(header):
        raise StoreError(f"{p}: line 1: the header's checksum does not match (edited after "
                         "it was written)")
    latest: dict[str, dict] = {}
    ignored: dict[str, int] = {}
    for i, line in enumerate(lines[1:], start=2):
        try:
            row = json.loads(line)
        except ValueError:
            raise StoreError(f"{p}: line {i}: not valid JSON (corrupt)") from None
        if not isinstance(row, dict) or "cell" not in row:
            raise StoreError(f"{p}: line {i}: a row without 'cell' (corrupt)")
        why = row_problem(row, header)
        if why:
            ignored[why] = ignored.get(why, 0) + 1
            continue
        latest[row["cell"]] = row
    return StoreView(header, list(latest.values()), ignored, p)


def read_store(path) -> tuple[dict, list[dict]]:
    """(header, last usable row per cell): :func:`load_store` without the counts."""
    view = load_store(path)
    return view.header, view.rows


CSV_FIRST = ["spec", "cell", "state", "solver_label", "solver", "replicate", "instance_seed"]


def flat_row(row: dict) -> dict:
    """One CSV-ready dict: axis values as ``axis.NAME`` columns, dicts as JSON strings."""
    out = {}
    for k, v in (row.get("point") or {}).items():
        out[f"axis.{k}"] = json.dumps(v) if isinstance(v, list | tuple) else v
    for k, v in (row.get("solver_point") or {}).items():
        out[f"axis.solver.{k}"] = v
    for k, v in row.items():
        if k in ("point", "solver_point"):
            continue
        if isinstance(v, dict | list):
            out[k] = json.dumps(v, sort_keys=True)
        else:
            out[k] = v
    return out


def export_csv(rows: list[dict], path) -> Path:
    """Write every row (flattened) to CSV; columns: identity first, then alphabetical."""
    flat = [flat_row(r) for r in rows]
    keys: set[str] = set()
    for f in flat:
        keys.update(f)
    cols = [c for c in CSV_FIRST if c in keys] + sorted(keys - set(CSV_FIRST))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for f in flat:
            w.writerow({c: ("" if f.get(c) is None else f.get(c)) for c in cols})
    os.replace(tmp, path)
    return path
