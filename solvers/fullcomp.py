"""full-comp: every node participates in every requested PB (the paper's Table III reference;
docs/model.md section 11).

Caching: the planner's default. Each requested PB is sent by all N nodes; nodes that do not
cache it receive it first from the holder with the fastest backhaul link to them (once per PB).
This is the upper end of beamforming cost (N-node robust CoMP per PB) and of migration delay.

Delivery groups: with ``grouping=true`` (default) the PB's requesters are split into groups sent
one after another, every group by all N nodes with its own beams: the shared planner's partition
search (``planner.plan_transmissions`` with ``PlannerOptions.use_all_free``, every node counted
as already holding the PB after the migrations above), so exact over partitions for small groups
and the planner's documented heuristic above, QoS first, then delay. The migrations are the same
for every partition, so the partition only trades broadcast time. ``grouping=false`` restores
the old rule: one common N-node broadcast per PB (the numbers before grouping).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fgamcd_opt.caching import default_caching
from fgamcd_opt.params import Param
from fgamcd_opt.plan import Migration, Plan
from fgamcd_opt.planner import BlockData, DeliveryResult, PlannerOptions, plan_transmissions
from fgamcd_opt.solver import SolveResult, SolveStatus
from fgamcd_opt.workers import map_blocks


class FullCompSolver:
    name = "full-comp"
    description = "full CoMP: all nodes broadcast every requested PB (migrating as needed)"
    params = (Param("beamforming", str, "fast", "oracle method",
                    choices=("fast", "sdr", "mrt", "nonrobust")),
              Param("grouping", bool, True, "split a PB's requesters into sequential groups, "
                    "each sent by all nodes (false: one broadcast per PB, the rule before "
                    "grouping)"),
              Param("workers", int, 1, "processes planning the PBs' delivery (the same plan "
                    "for any number)"))

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        holds = default_caching(inst, progress=ctx.progress)
        everyone = tuple(range(inst.n_nodes))
        opts = PlannerOptions(use_all_free=True, method=params["beamforming"],
                              partition=params["grouping"],
                              split_zero_rate=params["grouping"])
        # past the time limit: closed form and no partition search
        quick = replace(opts, method="mrt", partition=False, split_zero_rate=False)
        out = DeliveryResult()
        migrations, missing = [], []
        blocks = [int(k) for k in inst.requested_blocks]

        def plan_one(k: int):
            if ctx.must_stop():  # out of time: left undelivered (partial plan)
                return False, None, "skipped", []
            hurried = opts.method != "mrt" and ctx.should_stop()
            use = quick if hurried else opts
            holders = np.flatnonzero(holds[:, k])
            if holders.size == 0:
                return hurried, use.method, None, []
            users = tuple(int(u) for u in inst.requesters(k))
            bd = BlockData(inst, k)
            migs, got = [], []
            for m in everyone:
                if not holds[m, k]:
                    src = int(holders[np.argmax(bd.backhaul[holders, m])])
                    migs.append(Migration(src, m, k))
                    got.append(m)
            # the copies are in place before the first group: every group uses all N nodes
            parts = plan_transmissions(inst, k, users, holders, ctx.oracle, use, received=got,
                                       block_data=bd)
            return hurried, use.method, migs, parts

        hurried = skipped = 0
        results = map_blocks(plan_one, blocks, ctx.oracle, params["workers"], ctx)
        for k, (late, method, migs, parts) in zip(blocks, results, strict=True):
            hurried += late
            if migs == "skipped":
                skipped += 1
                continue
            if migs is None:
                missing.append(k)
                continue
            migrations.extend(migs)
            out.note_qos(inst, k, parts, np.flatnonzero(holds[:, k]))
            for g in parts:
                mode = "unicast" if len(parts) > 1 and len(g.users) == 1 else "broadcast"
                out.add(g, mode=mode, beamforming=method)
        plan = Plan.from_holds(holds, migrations=migrations, units=out.units, solver=self.name)
        msg = "; ".join(filter(None, [
            f"{len(missing)} requested PB(s) cached nowhere" if missing else "",
            out.qos_message(inst)]))
        if hurried or skipped:
            msg = "; ".join(filter(None, [msg, f"time limit reached: {hurried} PB(s) "
                                          "beamformed with MRT, one group per PB"
                                          + (f", {skipped} PB(s) not planned (left "
                                             "undelivered)" if skipped else "")]))
        return SolveResult(plan, SolveStatus.TIME_LIMIT if hurried or skipped
                           else SolveStatus.FEASIBLE, msg)


__solvers__ = [FullCompSolver]
