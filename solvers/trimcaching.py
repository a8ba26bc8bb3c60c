"""trimcaching: parameter-sharing-aware greedy caching for cache hit ratio (Qu et al., ICDCS 2024).

Hit model. User u is *hit* when every PB of its model r_u is cached at some node of its
cooperating set: its own node and the nodes within the information-exchange radius of it
(varpi, docs/model.md section 1). TrimCaching places whole models, sharing-aware: placing
model j at node n only costs the bytes of the PBs of j that n does not cache yet.

Greedy rule (gain per added byte). Start empty. At each step, among all (node n, model j) with
added bytes b(n, j) = S(K_j minus cache[n]) that fit n's free storage, take the one maximising
g(n, j) / b(n, j), where g(n, j) = number of not-yet-hit users requesting j whose cooperating set
contains n (placements with b = 0 and g > 0 go first). Stop when no placement has g > 0. Ties:
larger g, then lower (n, j). Complexity: each step scans N J candidates at O(|K_j|) each, and there
are at most J N steps, so O(N^2 J^2 max_j |K_j|) (paper-default: ~6 x 60 x 18 per step, tens of
steps, a few ms). Users left unhit (storage exhausted) keep whatever is cached; their missing PBs
are reported as undelivered by the evaluator.

Migration and beamforming: TrimCaching does not decide them; as in the paper, they come from the
shared delivery planner (one CoMP broadcast per requested PB, clusters grown with migrations).
"""

from __future__ import annotations

from fgamcd_opt.caching import trimcaching_placement
from fgamcd_opt.params import Param
from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import PlannerOptions, plan_broadcast
from fgamcd_opt.solver import SolveResult


class TrimCachingSolver:
    name = "trimcaching"
    description = ("TrimCaching (Qu et al. 2024): sharing-aware greedy hit-ratio caching; "
                   "delivery by the shared planner")
    params = (
        Param("max_cluster", int, 0, "most nodes in one broadcast (0: no cap)"),
        Param("migration", bool, True, "allow the planner to migrate PBs"),
        Param("workers", int, 1, "processes planning the PBs' delivery (the same plan for "
              "any number)"),
    )

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        holds = trimcaching_placement(inst, progress=ctx.progress)
        out = plan_broadcast(inst, holds, ctx.oracle, PlannerOptions(
            max_cluster=params["max_cluster"], migration=params["migration"]), ctx=ctx,
            workers=params["workers"])
        plan = Plan.from_holds(holds, out.migrations, out.units, solver=self.name)
        return SolveResult(plan, out.solve_status, out.message(inst))


__solvers__ = [TrimCachingSolver]
