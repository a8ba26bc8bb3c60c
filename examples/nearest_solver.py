"""A user plugin in 30 lines: cache each requested PB at its requesters' own nodes (most
requested first, while storage lasts), deliver with the shared planner.

    fgamcd-solve instances/tiny.json --solver examples/nearest_solver.py:NearestSolver
"""

import numpy as np

from fgamcd_opt.params import Param
from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import PlannerOptions, plan_broadcast
from fgamcd_opt.solver import SolveResult, SolveStatus


class NearestSolver:
    name = "nearest"
    description = "cache requested PBs at the requesters' own nodes; shared-planner delivery"
    params = (Param("max_cluster", int, 2, "most nodes in one broadcast"),)

    def solve(self, instance, ctx, params):
        holds = np.zeros((instance.n_nodes, instance.n_blocks), dtype=bool)
        free = instance.nodes.storage_bytes.astype(np.int64).copy()
        order = sorted(instance.requested_blocks, key=lambda k: -len(instance.requesters(k)))
        for k in order:
            for n in np.unique(instance.users.node[instance.requesters(k)]):
                if instance.repository.sizes[k] <= free[n]:
                    holds[n, k] = True
                    free[n] -= instance.repository.sizes[k]
        out = plan_broadcast(instance, holds, ctx.oracle,
                             PlannerOptions(max_cluster=params["max_cluster"]))
        plan = Plan.from_holds(holds, out.migrations, out.units, solver=self.name)
        return SolveResult(plan, SolveStatus.FEASIBLE, out.undelivered_message(instance))
