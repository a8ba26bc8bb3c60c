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


def _instance_input_args(p):
    """Flags of every command that reads an instance file."""
    p.add_argument("--allow-external-sidecar", action="store_true",
                   help="accept a sidecar path that is absolute or outside the instance's folder")
    p.add_argument("--max-memory", metavar="SIZE", default=None,
                   help="refuse instances whose estimated memory exceeds SIZE (e.g. 4G; "
                        "default: $FGAMCD_MAX_MEMORY or 80%% of RAM)")
