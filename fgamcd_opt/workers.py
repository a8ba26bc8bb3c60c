"""Independent per-PB planning tasks in worker processes (``workers`` parameter of the planner
baselines; docs/model.md section 12).

Given what the nodes cache, the delivery of one PB does not depend on the delivery of another
(their transmissions are sequential and each PB's migrations are its own), so the planner's
per-PB work can run in separate processes and be assembled in PB order afterwards: the plan is
the same as in one process, because the oracle is deterministic (a memo hit returns exactly what
a fresh solve would) and every worker starts from a copy of this process's memo. Workers are
forked (they inherit the instance, the oracle and the task without pickling them), return each
task's result and their oracle counters (added to the parent's oracle), and are asked by the
kernel to terminate when their parent dies (``PR_SET_PDEATHSIG`` on Linux), so a killed solve
leaves no orphans.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence

_TASK: tuple | None = None  # (fn, oracle) of the map being run, inherited by forked workers


def _die_with_parent() -> None:
    """Worker initialiser: SIGTERM when the parent process dies (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
        if os.getppid() == 1:  # the parent died before the flag was set
            os._exit(1)


def _run(item):
    fn, oracle = _TASK
    m0, h0, t0 = oracle.misses, oracle.hits, oracle.solve_time_s
    out = fn(item)
    return out, (oracle.misses - m0, oracle.hits - h0, oracle.solve_time_s - t0)


def map_blocks(fn: Callable, items: Sequence, oracle, workers: int = 1, progress=None,
               what: str = "PB") -> list:
    """``[fn(item) for item in items]``, in that order; with ``workers`` > 1 in that many
    forked processes (module docstring). ``fn`` may be a closure: it is inherited, not pickled;
    its results are pickled back. ``progress``: the solver's SolveContext (or None), told after
    every finished item."""
    items = list(items)
    total = len(items)

    def report(done: int) -> None:
        if progress is not None:
            progress.progress(done / total if total else 1.0, f"{what} {done}/{total}")

    if workers <= 1 or total < 2 or not hasattr(os, "fork"):
        out = []
        for i, item in enumerate(items):
            report(i)
            out.append(fn(item))
        report(total)
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    global _TASK
    _TASK = (fn, oracle)
    out = []
    try:
        with ProcessPoolExecutor(min(workers, total), mp_context=mp.get_context("fork"),
                                 initializer=_die_with_parent) as ex:
            # one item per task: PBs differ by orders of magnitude in work, and an item's
            # round trip (~0.1 ms) is small next to planning it
            for i, (result, stats) in enumerate(ex.map(_run, items)):
                oracle.misses += stats[0]
                oracle.hits += stats[1]
                oracle.solve_time_s += stats[2]
                out.append(result)
                report(i + 1)
    finally:
        _TASK = None
    return out
