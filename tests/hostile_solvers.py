"""Plugins written to misbehave (tests/test_isolation.py runs them through fgamcd-bench): each
does one thing the benchmark suite must survive and report. Not collected by pytest.

Every honest part delivers like examples/nearest_solver.py: requested PBs cached at their
requesters' own nodes while storage lasts, the shared planner for delivery.
"""

import os
import signal
import threading
import time

import numpy as np

from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import PlannerOptions, plan_broadcast
from fgamcd_opt.solver import SolveResult, SolveStatus


def _nearest(instance, ctx, ignore_storage: bool = False):
    holds = np.zeros((instance.n_nodes, instance.n_blocks), dtype=bool)
    free = instance.nodes.storage_bytes.astype(np.int64).copy()
    for k in sorted(instance.requested_blocks, key=lambda k: -len(instance.requesters(k))):
        for n in np.unique(instance.users.node[instance.requesters(k)]):
            if ignore_storage or instance.repository.sizes[k] <= free[n]:
                holds[n, k] = True
                free[n] -= instance.repository.sizes[k]
    out = plan_broadcast(instance, holds, ctx.oracle, PlannerOptions(max_cluster=2))
    return Plan.from_holds(holds, out.migrations, out.units, solver="hostile"), out


class Mutator:
    """Edits the instance it is handed (lower noise, more storage, QoS 0), then plans on it."""

    name = "mutator"
    description = "rewrites its instance to make the problem easier"
    params = ()

    def solve(self, instance, ctx, params):
        users, nodes = instance.users, instance.nodes
        # read-only arrays are replaced, not written: rebinding is what a determined plugin does
        object.__setattr__(users, "noise_w", users.noise_w / 100.0)
        object.__setattr__(users, "qos_bps", np.zeros_like(users.qos_bps))
        object.__setattr__(nodes, "storage_bytes", nodes.storage_bytes * 100)
        plan, _ = _nearest(instance, ctx)
        return SolveResult(plan, SolveStatus.FEASIBLE)


class Writer:
    """Writes into the instance's arrays in place (they are read-only in a sweep)."""

    name = "writer"
    description = "sets every QoS floor to 0 in place"
    params = ()

    def solve(self, instance, ctx, params):
        instance.users.qos_bps[:] = 0.0
        plan, _ = _nearest(instance, ctx)
        return SolveResult(plan, SolveStatus.FEASIBLE)


class Liar:
    """An ordinary plan, claimed optimal with a certified bound of 100 s."""

    name = "liar"
    description = "claims optimality and a bound far above any delay"
    params = ()

    def solve(self, instance, ctx, params):
        plan, out = _nearest(instance, ctx)
        return SolveResult(plan, SolveStatus.OPTIMAL, out.undelivered_message(instance),
                           bound=100.0)


class StorageBreaker:
    """Caches every requested PB at every requester's node whatever the storage, claims
    feasible."""

    name = "storage-breaker"
    description = "ignores the storage capacity and says nothing"
    params = ()

    def solve(self, instance, ctx, params):
        plan, _ = _nearest(instance, ctx, ignore_storage=True)
        plan.cache = [set(range(instance.n_blocks)) for _ in range(instance.n_nodes)]
        return SolveResult(plan, SolveStatus.FEASIBLE)


class Crasher:
    """Ends its process without a word (no exception to catch)."""

    name = "crasher"
    description = "os._exit(3) in solve"
    params = ()

    def solve(self, instance, ctx, params):
        os._exit(3)


class Sleeper:
    """Sleeps a little past the time limit, then returns an ordinary plan (within the grace)."""

    name = "sleeper"
    description = "returns 0.5 s after its time limit"
    params = ()

    def solve(self, instance, ctx, params):
        time.sleep((ctx.time_limit_s or 0.0) + 0.5)
        plan, out = _nearest(instance, ctx)
        return SolveResult(plan, SolveStatus.FEASIBLE, out.undelivered_message(instance))


class Hanger:
    """Never returns, and ignores SIGTERM and SIGINT."""

    name = "hanger"
    description = "blocks forever"
    params = ()

    def solve(self, instance, ctx, params):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Event().wait()
