"""tdma: TDMA-based unicasting (docs/model.md section 11.4).

Caching: the planner's default caching (or TrimCaching's, ``caching=trimcaching``). Delivery:
every (requested PB, requesting user) gets its own time slot, so the slots of a PB add up; each
slot's participating nodes and migrations come from the shared planner run for that single user,
and its beams are maximum ratio transmission (the paper's choice for orthogonal unicast). A PB
migrated to a node for one user is reused for the next users of the same PB.
"""

from __future__ import annotations

from fgamcd_opt.caching import default_caching, trimcaching_placement
from fgamcd_opt.params import Param
from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import PlannerOptions, plan_unicast
from fgamcd_opt.solver import SolveResult


class TdmaSolver:
    name = "tdma"
    description = "TDMA unicasting: one slot per (PB, user) with MRT beams; default caching"
    params = (
        Param("caching", str, "default", "caching rule", choices=("default", "trimcaching")),
        Param("max_cluster", int, 0, "most nodes in one unicast slot (0: no cap)"),
        Param("beamforming", str, "mrt", "unicast beams", choices=("mrt", "fast")),
        Param("workers", int, 1, "processes planning the PBs' delivery (the same plan for "
              "any number)"),
    )

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        holds = default_caching(inst, progress=ctx.progress) if params["caching"] == "default" \
            else trimcaching_placement(inst, progress=ctx.progress)
        out = plan_unicast(inst, holds, ctx.oracle, PlannerOptions(
            max_cluster=params["max_cluster"], method=params["beamforming"]), ctx=ctx,
            workers=params["workers"])
        plan = Plan.from_holds(holds, migrations=out.migrations, units=out.units, solver=self.name)
        return SolveResult(plan, out.solve_status, out.message(inst))


__solvers__ = [TdmaSolver]
