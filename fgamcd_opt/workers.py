"""Worker processes that never outlive their parent, and pools that can be torn down at once.

Every process pool of the toolkit (the multicast bound's group workers, MAASN-DA's delivery
workers, the local sweep executor) is made here or runs :func:`die_with_parent` in its workers:

* on Linux the kernel kills a worker with SIGKILL the moment its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, set through ctypes), even while the worker is inside C code
  (an SDP, a HiGHS or Clarabel solve) and whatever killed the parent (``kill -9`` included);
* everywhere, a daemon thread in the worker polls ``os.getppid()`` every ``POLL_S`` seconds and
  exits when the parent is gone (the fallback where prctl does not exist);
* :func:`terminate_pool` kills a pool's workers at once (a deadline passed: running tasks are
  abandoned instead of awaited), used by the time-limited stages.

PR_SET_PDEATHSIG fires when the *thread* that forked the worker ends; ``ProcessPoolExecutor``
forks its workers from the thread that first submits, and every pool here lives inside one
``with`` block of that thread, so the workers end with the pool or with the process.

:func:`map_blocks` runs independent per-PB planning tasks in such workers (``workers``
parameter of the planner baselines; docs/model.md section 12). Given what the nodes cache, the
delivery of one PB does not depend on the delivery of another (their transmissions are
sequential and each PB's migrations are its own), so the planner's per-PB work can run in
separate processes and be assembled in PB order afterwards: the plan is the same as in one
process, because the oracle is deterministic (a memo hit returns exactly what a fresh solve
would) and every worker starts from a copy of this process's memo. Workers are forked (they
inherit the instance, the oracle and the task without pickling them) and return each task's
result and their oracle counters (added to the parent's oracle).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_S = 0.5  # the fallback watchdog's polling interval (s)


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process exit when ``parent_pid`` is no longer its parent: kernel
    SIGKILL on Linux, plus a polling watchdog thread everywhere. Call it first in a worker."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="fgamcd-parent-watch",
                     daemon=True).start()


def _watch(parent_pid: int) -> None:
    while True:
        time.sleep(POLL_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def _init(parent_pid: int, initializer, initargs) -> None:
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, context: str = "fork", initializer=None,
                 initargs=()) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes (multiprocessing ``context``) whose
    workers die with this process (:func:`die_with_parent`), then run ``initializer``."""
    import multiprocessing

    return ProcessPoolExecutor(max_workers=max(1, int(workers)),
                               mp_context=multiprocessing.get_context(context),
                               initializer=_init, initargs=(os.getpid(), initializer, initargs))


def terminate_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued, kill the running workers (SIGKILL) and shut the pool down without
    waiting for their tasks: the caller's deadline has passed."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.kill()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=5)


_TASK: tuple | None = None  # (fn, oracle) of the map being run, inherited by forked workers


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
    global _TASK
    _TASK = (fn, oracle)
    out = []
    try:
        with process_pool(min(workers, total)) as ex:
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
