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


class FullCompSolver:
    name = "full-comp"
    description = "full CoMP: all nodes broadcast every requested PB (migrating as needed)"
    params = (Param("beamforming", str, "fast", "oracle method",
                    choices=("fast", "sdr", "mrt", "nonrobust")),
              Param("grouping", bool, True, "split a PB's requesters into sequential groups, "
                    "each sent by all nodes (false: one broadcast per PB, the rule before "
                    "grouping)"))

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        holds = default_caching(inst, progress=ctx.progress)
        everyone = tuple(range(inst.n_nodes))
        opts = PlannerOptions(use_all_free=True, method=params["beamforming"],
                              partition=params["grouping"],
                              split_zero_rate=params["grouping"])
        out = DeliveryResult()
        migrations, missing = [], []
        blocks = [int(k) for k in inst.requested_blocks]
        hurried = skipped = 0
        for i, k in enumerate(blocks):
            if ctx.step(i, len(blocks), "PB"):
                if ctx.must_stop():  # out of time: the rest stays undelivered (partial plan)
                    skipped = len(blocks) - i
                    break
                if opts.method != "mrt":
                    # closed form and no partition search from here on
                    opts = replace(opts, method="mrt", partition=False, split_zero_rate=False)
                    hurried = len(blocks) - i
            holders = np.flatnonzero(holds[:, k])
            users = tuple(int(u) for u in inst.requesters(k))
            if holders.size == 0:
                missing.append(k)
                continue
            bd = BlockData(inst, k)
            got = []
            for m in everyone:
                if not holds[m, k]:
                    src = int(holders[np.argmax(bd.backhaul[holders, m])])
                    migrations.append(Migration(src, m, k))
                    got.append(m)
            # the copies are in place before the first group: every group uses all N nodes
            parts = plan_transmissions(inst, k, users, holders, ctx.oracle, opts,
                                       received=got, block_data=bd)
            out.note_qos(inst, k, parts, holders)
            for g in parts:
                mode = "unicast" if len(parts) > 1 and len(g.users) == 1 else "broadcast"
                out.add(g, mode=mode, beamforming=opts.method)
        plan = Plan.from_holds(holds, migrations=migrations, units=out.units, solver=self.name)
        msg = "; ".join(filter(None, [
            f"{len(missing)} requested PB(s) cached nowhere" if missing else "",
            out.qos_message(inst)]))
        if hurried or skipped:
            mrt = max(hurried - skipped, 0)  # PBs planned between the limit and the stop
            msg = "; ".join(filter(None, [msg, f"time limit reached: {mrt} PB(s) "
                                          "beamformed with MRT, one group per PB"
                                          + (f", {skipped} PB(s) not planned (left "
                                             "undelivered)" if skipped else "")]))
        return SolveResult(plan, SolveStatus.TIME_LIMIT if hurried or skipped
                           else SolveStatus.FEASIBLE, msg)


__solvers__ = [FullCompSolver]
