"""nocoop: without edge cooperation (Wu, Zeng, Huang, TWC 2024; docs/model.md section 11.3).

Caching: each node places whole models for its *own* users only, with the sharing-aware greedy of
TrimCaching restricted to one node (a shared PB is stored once). Delivery: for every requested PB,
each node that caches it broadcasts it to its own users that request it, with its own beam
(oracle, one node, no CoMP); no migration. By default the cells take turns (one transmission per
cell). With ``concurrent=true`` the cells of one PB transmit at the same time (one slot); then
every user also hears the other cells' nodes, whose channel-error margins count against its
worst case (the evaluator is exact about this), which with Table II's absolute error radius
usually costs more than the turns save. Users whose model is not completely at their own node
are reported undelivered, never dropped silently.
"""

from __future__ import annotations

import numpy as np

from fgamcd_opt.caching import trimcaching_placement
from fgamcd_opt.params import Param
from fgamcd_opt.plan import DeliveryUnit, Plan
from fgamcd_opt.solver import SolveResult, SolveStatus


class NoCoopSolver:
    name = "nocoop"
    description = "without edge cooperation: own-cell caching and broadcasting, no migration/CoMP"
    params = (Param("beamforming", str, "fast", "oracle method for the per-cell beams",
                    choices=("fast", "sdr", "mrt", "nonrobust")),
              Param("concurrent", bool, False, "cells transmit a PB at the same time"))

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        holds = trimcaching_placement(inst, users_of_node_only=True)
        units = []
        missing: dict[int, list[int]] = {}
        blocks = inst.requested_blocks
        method = params["beamforming"]
        hurried = 0
        for slot, k in enumerate(blocks):
            k = int(k)
            if method != "mrt" and ctx.step(slot, len(blocks), "PB"):
                method, hurried = "mrt", len(blocks) - slot  # closed form from here on
            req = inst.requesters(k)
            for n in np.unique(inst.users.node[req]):
                users = tuple(int(u) for u in req[inst.users.node[req] == n])
                if not holds[n, k]:
                    for u in users:
                        missing.setdefault(u, []).append(k)
                    continue
                res = ctx.oracle.solve(inst, k, (int(n),), users, method=method)
                units.append(DeliveryUnit(k, users, (int(n),),
                                          slot=slot if params["concurrent"] else None,
                                          beams=res.beams, beamforming=method))
        plan = Plan.from_holds(holds, units=units, solver=self.name)
        msg = ""
        if missing:
            msg = (f"{len(missing)} user(s) lack PBs at their own node and are not served: "
                   + ", ".join(inst.users.ids[u] for u in sorted(missing)))
        if hurried:
            msg = "; ".join(filter(None, [msg, f"time limit reached: {hurried} PB(s) beamformed "
                                          "with MRT (closed form)"]))
        return SolveResult(plan, SolveStatus.TIME_LIMIT if hurried else SolveStatus.FEASIBLE,
                           msg)


__solvers__ = [NoCoopSolver]
