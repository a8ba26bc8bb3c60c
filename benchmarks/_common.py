"""Shared helpers of the benchmark scripts: a resumable JSON results file and table printing."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from fgamcd_opt.jsonio import jsonable, write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import os

    return {"python": platform.python_version(), "numpy": np.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count()}


class ResultsFile:
    """Rows keyed by a tuple; written atomically after every row, so a crashed or interrupted
    run resumes where it stopped without losing finished rows."""

    def __init__(self, name: str, meta: dict | None = None):
        self.path = RESULTS / name
        self.data = {"meta": meta or {}, "rows": []}
        if self.path.exists():
            # a corrupt or foreign file is refused, never silently restarted (it may hold hours
            # of finished rows)
            try:
                self.data = json.loads(self.path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise SystemExit(f"{self.path}: not a readable results file ({exc}); move it "
                                 "away to start afresh") from None
            if not isinstance(self.data, dict) or not isinstance(self.data.get("rows"), list):
                raise SystemExit(f"{self.path}: not a results file of these benchmarks (no "
                                 "'rows' list); move it away to start afresh")
        self.data["meta"] = {**self.data.get("meta", {}), **(meta or {}), "machine": machine()}

    def has(self, **key) -> bool:
        return any(all(r.get(k) == v for k, v in key.items()) for r in self.data["rows"])

    def add(self, row: dict) -> None:
        # non-finite floats (a region's delay with a user left out) become null: the file
        # stays strict JSON and the row is never lost to a crash at the end of a long run
        self.data["rows"].append(jsonable(row))
        write_json_atomic(self.path, self.data)

    @property
    def rows(self) -> list[dict]:
        return self.data["rows"]


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """cols: (header, key, format)."""
    head = " | ".join(h for h, _, _ in cols)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = []
        for _, key, fmt in cols:
            v = r.get(key)
            cells.append("-" if v is None else format(v, fmt) if fmt else str(v))
        lines.append(" | ".join(cells))
    return "\n".join(lines)
