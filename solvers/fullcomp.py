"""full-comp: every node participates in every requested PB (the paper's Table III reference).

Caching: the planner's default. Each requested PB is broadcast by all N nodes; nodes that do not
cache it receive it from the holder with the fastest backhaul link to them. This is the upper end
of beamforming cost (N-node robust CoMP per PB) and of migration delay.
"""

from __future__ import annotations

import numpy as np

from fgamcd_opt.caching import default_caching
from fgamcd_opt.params import Param
from fgamcd_opt.plan import DeliveryUnit, Migration, Plan
from fgamcd_opt.solver import SolveResult, SolveStatus


class FullCompSolver:
    name = "full-comp"
    description = "full CoMP: all nodes broadcast every requested PB (migrating as needed)"
    params = (Param("beamforming", str, "fast", "oracle method",
                    choices=("fast", "sdr", "mrt", "nonrobust")),)

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        holds = default_caching(inst)
        everyone = tuple(range(inst.n_nodes))
        units, migrations, missing = [], [], []
        blocks = [int(k) for k in inst.requested_blocks]
        method = params["beamforming"]
        hurried = 0
        for i, k in enumerate(blocks):
            if method != "mrt" and ctx.step(i, len(blocks), "PB"):
                method, hurried = "mrt", len(blocks) - i  # closed form from here on
            holders = np.flatnonzero(holds[:, k])
            users = tuple(int(u) for u in inst.requesters(k))
            if holders.size == 0:
                missing.append(k)
                continue
            rates = inst.backhaul_rates(k)
            for m in everyone:
                if not holds[m, k]:
                    src = int(holders[np.argmax(rates[holders, m])])
                    migrations.append(Migration(src, m, k))
            res = ctx.oracle.solve(inst, k, everyone, users, method=method)
            units.append(DeliveryUnit(k, users, everyone, beams=res.beams, beamforming=method))
        plan = Plan.from_holds(holds, migrations=migrations, units=units, solver=self.name)
        msg = f"{len(missing)} requested PB(s) cached nowhere" if missing else ""
        if hurried:
            msg = "; ".join(filter(None, [msg, f"time limit reached: {hurried} PB(s) beamformed "
                                          "with MRT"]))
        return SolveResult(plan, SolveStatus.TIME_LIMIT if hurried else SolveStatus.FEASIBLE,
                           msg)


__solvers__ = [FullCompSolver]
