"""Where cells run: local worker processes (default) or a Dask distributed cluster.

Both take a picklable function and a list of cells and yield one result per cell as it finishes
(unordered). A cell whose worker dies yields a failure row built by ``on_crash`` instead of
taking the sweep down. Each worker caps the BLAS/OpenMP thread pools of numpy, scipy and the
convex solvers at ``threads_per_worker`` (default 1) through the usual environment variables,
set before numpy is imported in the worker, so N workers use N cores, not N x cores.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "BLIS_NUM_THREADS",
               "RAYON_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    return {v: str(threads) for v in THREAD_VARS}


def init_worker(env: dict[str, str]) -> None:
    """Worker initialiser: cap thread pools (this module imports no numpy)."""
    os.environ.update(env)


class InlineExecutor:
    """Runs cells in this process, one after another (debugging and tests)."""

    description = "inline (this process)"
    workers = 1

    def map_unordered(self, fn: Callable, items: list, on_crash: Callable) -> Iterator:
        for item in items:
            try:
                yield fn(item)
            except Exception as exc:  # the cell function catches; this is a last resort
                yield on_crash(item, exc)

    def close(self) -> None:
        pass


class LocalExecutor:
    """A pool of ``workers`` spawned processes on this machine."""

    def __init__(self, workers: int = 1, threads_per_worker: int = 1):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.threads = threads_per_worker
        self.description = f"local processes x{workers} ({threads_per_worker} thread(s) each)"
        self._pool = None

    def map_unordered(self, fn: Callable, items: list, on_crash: Callable) -> Iterator:
        from concurrent.futures import as_completed

        from ..workers import process_pool

        # spawn, not fork: the parent may hold threads (tqdm, BLAS) that fork would copy; the
        # workers die with this process (fgamcd_opt/workers.py)
        self._pool = process_pool(self.workers, "spawn", initializer=init_worker,
                                  initargs=(thread_env(self.threads),))
        futs = {self._pool.submit(fn, item): item for item in items}
        try:
            for fut in as_completed(futs):
                try:
                    yield fut.result()
                except Exception as exc:  # e.g. BrokenProcessPool: the worker died
                    yield on_crash(futs[fut], exc)
        finally:
            for f in futs:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """Dask distributed: an existing scheduler (``tcp://HOST:PORT``) or a local cluster of
    ``workers`` processes listening on 127.0.0.1 only."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 threads_per_worker: int = 1):
        import dask
        from distributed import Client, LocalCluster

        self.threads = threads_per_worker
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

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(workers: int = 1, scheduler: str | None = None, dask_workers: int | None = None,
                  threads_per_worker: int = 1, inline: bool = False):
    if inline:
        return InlineExecutor()
    if scheduler or dask_workers:
        return DaskExecutor(scheduler, dask_workers, threads_per_worker)
    return LocalExecutor(workers, threads_per_worker)
