"""Where cells run: local worker processes (default), this process (``--inline``), or a Dask
distributed cluster. Every executor runs cells through the isolation pool (:mod:`.pool`):
built-in solvers in a trusted host process per slot, each plugin cell in a fresh sandbox process,
with hard time limits, so a cell that hangs, crashes or tampers costs only itself.

An executor has ``run(tasks, emit)``: ``tasks`` are lists of cells (the built-in cells of one
instance, which share its generated instance and oracle memo, or a single plugin cell), and
``emit`` receives each row as its cell finishes. Ctrl-C or SIGTERM raises
:class:`.pool.Interrupted` naming the cells that were stopped. Each process caps the
BLAS/OpenMP thread pools of numpy, scipy and the convex solvers at ``threads_per_worker``
(default 1) through the usual environment variables, so N workers use N cores, not N x cores.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator

from ..errors import FgamcdError

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS",
               "RAYON_NUM_THREADS")
NO_WORKER_TIMEOUT_S = 60.0  # a Dask run with no live worker for this long stops


def check_in_own_process(ref: str, time_limit_s: float | None, budget_s: float | None,
                         threads: int) -> dict:
    """A plugin's conformance check in a sandbox process of its own, on this machine (every
    executor checks plugins locally: the check decides whether the plugin runs at all)."""
    from .pool import CellPool

    pool = CellPool(1, threads)
    try:
        return pool.check(ref, time_limit_s, budget_s)
    finally:
        pool.close()


class NoWorkers(FgamcdError):
    """A Dask cluster had no live worker for too long (the run stops; exit status 1)."""

    exit_code = 1


def thread_env(threads: int) -> dict[str, str]:
    return {v: str(threads) for v in THREAD_VARS}


def init_worker(env: dict[str, str]) -> None:
    """Worker initialiser: cap thread pools (this module imports no numpy)."""
    os.environ.update(env)


class _PoolExecutor:
    workers = 1
    threads = 1
    inline = False
    grace: float | None = None  # seconds past the time limit before a kill (None: default)

    def run(self, tasks: list[list[dict]], emit: Callable[[dict], None]) -> None:
        from .pool import CellPool

        pool = CellPool(self.workers, self.threads, inline=self.inline, grace=self.grace)
        try:
            pool.run(tasks, emit)
        finally:
            pool.close()

    def check(self, ref: str, time_limit_s: float | None, budget_s: float | None) -> dict:
        """The conformance check of a plugin, in a process of its own (on this machine)."""
        return check_in_own_process(ref, time_limit_s, budget_s, self.threads)

    def map_unordered(self, fn: Callable, items: list, on_crash: Callable) -> Iterator:
        """``fn`` over ``items`` in this process (trusted built-in work such as the regions of
        ``fgamcd-solve --regions``; cells go through :meth:`run`)."""
        for item in items:
            try:
                yield fn(item)
            except Exception as exc:  # fn catches its own failures; this is a last resort
                yield on_crash(item, exc)

    def close(self) -> None:
        pass


class InlineExecutor(_PoolExecutor):
    """Built-in cells in this process, one after another (debugging and tests: no hard time
    limit for them); plugin cells still run in sandbox processes."""

    description = "inline (this process; plugins sandboxed)"
    inline = True


class LocalExecutor(_PoolExecutor):
    """``workers`` slots on this machine, each a host process plus a sandbox per plugin cell."""

    def __init__(self, workers: int = 1, threads_per_worker: int = 1,
                 grace: float | None = None):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.threads = threads_per_worker
        self.grace = grace
        self.description = f"local processes x{workers} ({threads_per_worker} thread(s) each)"

    def map_unordered(self, fn: Callable, items: list, on_crash: Callable) -> Iterator:
        """``fn`` over ``items`` in ``workers`` spawned processes that die with this one
        (trusted built-in work: the learning study's training runs and held-out rollouts;
        solver cells go through :meth:`run` and its isolation)."""
        from concurrent.futures import as_completed

        from ..workers import process_pool

        # spawn, not fork: the parent may hold threads (tqdm, BLAS) that fork would copy
        pool = process_pool(self.workers, "spawn", initializer=init_worker,
                            initargs=(thread_env(self.threads),))
        futs = {pool.submit(fn, item): item for item in items}
        try:
            for fut in as_completed(futs):
                try:
                    yield fut.result()
                except Exception as exc:  # e.g. BrokenProcessPool: the worker died
                    yield on_crash(futs[fut], exc)
        finally:
            for f in futs:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def run_task_remote(cells: list[dict], queue_name: str, stop_name: str, threads: int,
                    grace: float | None = None) -> list:
    """One task on a Dask worker: a one-slot isolation pool; each row is also put on a Dask
    queue as it finishes, so the client keeps it even if it stops the run before the task
    ends. A set stop event kills the task's processes."""
    from distributed import Event, Queue

    from .pool import CellPool, Interrupted

    queue = Queue(queue_name)
    stop = Event(stop_name)
    rows: list = []

    def emit(row):
        rows.append(row)
        queue.put(row)

    pool = CellPool(1, threads, grace=grace)
    try:
        pool.run([cells], emit, stop=stop.is_set)
    except Interrupted:
        pass
    finally:
        pool.close()
    return rows


class DaskExecutor:
    """Dask distributed: an existing scheduler (``tcp://HOST:PORT``) or a local cluster of
    ``workers`` processes listening on 127.0.0.1 only."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 threads_per_worker: int = 1, no_worker_timeout_s: float = NO_WORKER_TIMEOUT_S,
                 grace: float | None = None):
        import dask
        from distributed import Client, LocalCluster

        self.threads = threads_per_worker
        self.grace = grace
        self.no_worker_timeout_s = no_worker_timeout_s
        env = thread_env(threads_per_worker)
        self._cluster = None
        if scheduler:
            self.client = Client(scheduler, timeout="30s")
            self.description = f"dask scheduler {scheduler}"
        else:
            n = workers or 1
            with dask.config.set({"distributed.nanny.pre-spawn-environ": env,
                                  "distributed.worker.daemon": False}):
                self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                             host="127.0.0.1", dashboard_address=None,
                                             silence_logs=logging.ERROR)
            self.client = Client(self._cluster)
            self.description = f"dask local cluster x{n} (127.0.0.1)"
        # workers that were started elsewhere get the caps too (effective for libraries not
        # yet loaded in them)
        self.client.run(init_worker, env)
        self.workers = len(self.client.scheduler_info().get("workers", {}))

    def map_unordered(self, fn: Callable, items: list, on_crash: Callable) -> Iterator:
        """``fn`` over ``items`` on the Dask workers, results as they finish (trusted built-in
        work such as the regions of ``fgamcd-solve --regions``; cells go through :meth:`run`)."""
        from distributed import as_completed

        futs = self.client.map(fn, items, pure=False)
        by_key = {f.key: item for f, item in zip(futs, items, strict=True)}
        try:
            for fut in as_completed(futs):
                try:
                    yield fut.result()
                except Exception as exc:  # KilledWorker and the like
                    yield on_crash(by_key[fut.key], exc)
        finally:
            self.client.cancel(futs)

    def _live_workers(self) -> int:
        try:
            return len(self.client.scheduler_info().get("workers", {}))
        except Exception:  # the scheduler itself is gone
            return 0

    def run(self, tasks: list[list[dict]], emit: Callable[[dict], None]) -> None:
        from distributed import Event, Queue

        from .pool import Interrupted
        from .sweep import crash_row

        tag = uuid.uuid4().hex[:12]
        queue = Queue(f"fgamcd-rows-{tag}", client=self.client)
        stop = Event(f"fgamcd-stop-{tag}", client=self.client)
        futs = self.client.map(run_task_remote, tasks, queue_name=f"fgamcd-rows-{tag}",
                               stop_name=f"fgamcd-stop-{tag}", threads=self.threads,
                               grace=self.grace, pure=False)
        task_of = {f.key: t for f, t in zip(futs, tasks, strict=True)}
        seen: set[str] = set()
        pending = set(futs)
        alone_since = None

        def take(row):
            if row.get("cell") not in seen:
                seen.add(row.get("cell"))
                emit(row)

        try:
            while pending:
                for row in queue.get(batch=True):
                    take(row)
                for fut in [f for f in pending if f.done()]:
                    pending.discard(fut)
                    try:
                        rows = fut.result()
                    except Exception as exc:  # KilledWorker and the like: those cells only
                        rows = [crash_row(c, exc) for c in task_of[fut.key]
                                if c["cell"] not in seen]
                    for row in rows:
                        take(row)
                if not pending:
                    break
                if self._live_workers() == 0:
                    alone_since = alone_since or time.monotonic()
                    if time.monotonic() - alone_since > self.no_worker_timeout_s:
                        raise NoWorkers(
                            f"no live Dask worker for {self.no_worker_timeout_s:g} s: stopping "
                            f"({len(seen)} finished row(s) kept; rerun to resume)")
                else:
                    alone_since = None
                time.sleep(0.2)
        except KeyboardInterrupt:
            running = [c for f in pending for c in task_of[f.key] if c["cell"] not in seen]
            self._stop(stop, pending)
            raise Interrupted(running) from None
        except NoWorkers:
            self._stop(stop, pending)
            raise

    def _stop(self, stop, pending) -> None:
        try:
            stop.set()
            self.client.cancel(list(pending))
        except Exception:
            pass

    def check(self, ref: str, time_limit_s: float | None, budget_s: float | None) -> dict:
        """The conformance check of a plugin, in a process of its own (on this machine)."""
        return check_in_own_process(ref, time_limit_s, budget_s, self.threads)

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(workers: int = 1, scheduler: str | None = None, dask_workers: int | None = None,
                  threads_per_worker: int = 1, inline: bool = False,
                  no_worker_timeout_s: float = NO_WORKER_TIMEOUT_S, grace: float | None = None):
    if inline:
        ex = InlineExecutor()
        ex.grace = grace
        return ex
    if scheduler or dask_workers:
        return DaskExecutor(scheduler, dask_workers, threads_per_worker, no_worker_timeout_s,
                            grace)
    return LocalExecutor(workers, threads_per_worker, grace)
