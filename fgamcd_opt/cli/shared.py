"""Helpers shared by the command-line modules."""

from __future__ import annotations


def _fmt_bytes(b: float) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(b) >= div:
            return f"{b / div:.2f} {unit}"
    return f"{b:.0f} B"


# ---------------------------------------------------------------------------------------


def _common(p):
    p.add_argument("--debug", action="store_true", help="show tracebacks")
