"""replicate: the first caching policy a user tries (docs/maasn.md section 7).

Every node caches requested PBs by popularity until its storage is full (``popularity=local``:
its own users' requests first, then all requests; ``global``: all requests, every node the
same), and the shared planner delivers them (partial groups, clusters and migrations as for the
baselines). When storage does not bind this caches every requested PB everywhere. Nothing keeps
room for unpopular PBs: when storage binds some may be cached nowhere, and their requesters are
reported undelivered. A learned solver earns its place only by beating this and ``guard-only``.
"""

from __future__ import annotations

from fgamcd_opt.caching import replicate_caching
from fgamcd_opt.params import Param
from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import PlannerOptions, plan_broadcast
from fgamcd_opt.solver import SolveResult


class ReplicateSolver:
    name = "replicate"
    description = ("every node caches requested PBs by popularity until full; shared planner "
                   "delivery")
    params = (
        Param("popularity", str, "local", "local: own users' requests first, then all; "
              "global: all requests", choices=("local", "global")),
        Param("max_cluster", int, 0, "most nodes in one transmission (0: no cap)"),
    )

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        holds = replicate_caching(inst, params["popularity"])
        out = plan_broadcast(inst, holds, ctx.oracle,
                             PlannerOptions(max_cluster=params["max_cluster"]), ctx=ctx)
        plan = Plan.from_holds(holds, migrations=out.migrations, units=out.units,
                               solver=self.name)
        plan.metadata["copies"] = int(holds.sum())
        return SolveResult(plan, out.solve_status, out.message(inst))


__solvers__ = [ReplicateSolver]
