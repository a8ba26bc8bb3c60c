"""Provenance of results: which code made a row, and whether the row is still what was written.

- :func:`code_identity`: the package version plus a hash of the installed source of
  ``fgamcd_opt`` and of the built-in solvers (``fgamcd_solvers``), data files included (the
  shipped policies and tables change results too). Any edit of that code changes the hash, so a
  row made by other code is never taken for a current one.
- :func:`solver_code`: the identity of a plugin (its file's hash, or the entry point's package
  and version); built-ins are covered by :func:`code_identity`.
- :func:`checksum` / :func:`check_row`: every row of a store carries ``row_sha256``, the hash of
  its canonical JSON without that field; a row edited after it was written no longer matches.

The checksum guards against accidental and naive edits (a number changed by hand), not against
someone who recomputes it; the code identity says which code made a row, not that the code is
correct.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

PACKAGES = ("fgamcd_opt", "fgamcd_solvers")
CHECKSUM_FIELD = "row_sha256"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)
def code_identity() -> dict:
    """{"version": fgamcd_opt.__version__, "source": 16 hex digits}: the hash covers every file
    of the installed packages (Python sources and data), not caches (``__pycache__``)."""
    from .. import __version__

    h = hashlib.sha256()
    for pkg in PACKAGES:
        root = _package_dir(pkg)
        if root is None:
            h.update(f"{pkg}:missing\0".encode())
            continue
        files = sorted(p for p in root.rglob("*") if p.is_file()
                       and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"))
        for p in files:
            h.update(f"{pkg}/{p.relative_to(root).as_posix()}\0".encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return {"version": __version__, "source": h.hexdigest()[:16]}


def code_text(code: dict | None) -> str:
    if not code:
        return "unknown code (no code identity recorded)"
    return f"fgamcd-opt {code.get('version')} source {code.get('source')}"


def file_sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def solver_code(ref: str) -> dict | None:
    """Identity of a plugin solver: its file (name and content hash) or its entry point
    (package and version). None for a built-in (the package hash covers it)."""
    from .. import registry

    if ref in registry.BUILTIN_SOLVERS:
        return None
    if ":" in ref and ref.rsplit(":", 1)[0].endswith(".py"):
        path = Path(ref.rsplit(":", 1)[0])
        return {"file": path.name, "class": ref.rsplit(":", 1)[1],
                "sha256": file_sha256(path) if path.is_file() else None}
    eps = registry.plugin_entry_points()
    if ref in eps:
        ep = eps[ref]
        dist = getattr(ep, "dist", None)
        return {"entry_point": ep.value, "package": getattr(dist, "name", None),
                "package_version": getattr(dist, "version", None)}
    return {"ref": ref}


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def checksum(row: dict) -> str:
    """sha256 (16 hex digits) of the row's canonical JSON without its checksum field."""
    return hashlib.sha256(_canonical({k: v for k, v in row.items()
                                      if k != CHECKSUM_FIELD})).hexdigest()[:16]


def with_checksum(row: dict) -> dict:
    return {**row, CHECKSUM_FIELD: checksum(row)}


def check_row(row: dict) -> bool:
    """True when the row carries a checksum that matches its content."""
    return isinstance(row.get(CHECKSUM_FIELD), str) and row[CHECKSUM_FIELD] == checksum(row)


def same_code(a: dict | None, b: dict | None) -> bool:
    return bool(a) and bool(b) and a.get("version") == b.get("version") and \
        a.get("source") == b.get("source")
