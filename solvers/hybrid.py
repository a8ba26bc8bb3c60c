"""hybrid: hybrid multicasting (the paper's Fig. 17).

PBs requested by more than ``eps_hot`` users are CoMP-broadcast (shared planner, clusters up to
``max_cluster``); the others are unicast to each requester in its own slot from its best nearby
node(s) (planner run per user, clusters up to ``unicast_cluster``, default no cap; robust beams
from the oracle, which for one user is the optimal robust MRT). Caching: the planner's default.
"""

from __future__ import annotations

import numpy as np

from fgamcd_opt.caching import default_caching
from fgamcd_opt.params import Param
from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import (
    DeliveryResult,
    PlannerOptions,
    plan_broadcast,
    plan_unicast,
)
from fgamcd_opt.solver import SolveResult


class HybridSolver:
    name = "hybrid"
    description = "hybrid multicasting: CoMP broadcast for PBs with > eps_hot requesters, unicast"
    params = (
        Param("eps_hot", int, 2, "popularity threshold: broadcast when requesters > eps_hot"),
        Param("max_cluster", int, 0, "most nodes in one broadcast (0: no cap)"),
        Param("unicast_cluster", int, 0, "most nodes in one unicast slot (0: no cap)"),
        Param("workers", int, 1, "processes planning the PBs' delivery (the same plan for "
              "any number)"),
    )

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        holds = default_caching(inst, progress=ctx.progress)
        counts = np.array([len(inst.requesters(k)) for k in range(inst.n_blocks)])
        hot = counts > params["eps_hot"]
        cold_blocks = [int(k) for k in inst.requested_blocks if not hot[k]]
        hot_holds = holds & hot[None, :]
        bc = plan_broadcast(inst, hot_holds, ctx.oracle,
                            PlannerOptions(max_cluster=params["max_cluster"]), ctx=ctx,
                            workers=params["workers"])
        # plan_broadcast visits every requested PB; the cold ones have no holder in hot_holds
        for k in cold_blocks:
            bc.undeliverable.pop(k, None)
        uc = plan_unicast(inst, holds, ctx.oracle,
                          PlannerOptions(max_cluster=params["unicast_cluster"], method=None),
                          blocks=cold_blocks, ctx=ctx, workers=params["workers"])
        out = DeliveryResult(units=bc.units + uc.units, migrations=bc.migrations + uc.migrations,
                             undeliverable={**bc.undeliverable, **uc.undeliverable},
                             qos_unmet={**bc.qos_unmet, **uc.qos_unmet},
                             hurried=bc.hurried + uc.hurried, skipped=bc.skipped + uc.skipped)
        plan = Plan.from_holds(holds, migrations=out.migrations, units=out.units, solver=self.name)
        plan.metadata["hot_blocks"] = int(hot[inst.requested_blocks].sum())
        return SolveResult(plan, out.solve_status, out.message(inst))


__solvers__ = [HybridSolver]
