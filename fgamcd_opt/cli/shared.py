"""Helpers shared by the command-line modules."""

from __future__ import annotations

import sys

from ..errors import FgamcdError


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
    _memory_arg(p)


def _memory_arg(p):
    p.add_argument("--max-memory", metavar="SIZE", default=None,
                   help="refuse instances whose estimated memory exceeds SIZE (e.g. 4G; "
                        "default: $FGAMCD_MAX_MEMORY or 80%% of RAM)")


def run_guarded(func, args, prefix: str = "error",
                interrupted: str = "interrupted") -> int:
    """Run a command: a user error prints one line and returns its exit code (2), Ctrl-C
    returns 130, a closed output pipe stops quietly; tracebacks only with --debug."""
    try:
        return func(args)
    except FgamcdError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"{prefix}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
