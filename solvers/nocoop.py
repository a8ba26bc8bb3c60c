"""nocoop: without edge cooperation (Wu, Zeng, Huang, TWC 2024; docs/model.md section 11).

Caching: each node places whole models for its *own* users only, with the sharing-aware greedy of
TrimCaching restricted to one node (a shared PB is stored once). Delivery: for every requested PB,
each node that caches it serves its own users that request it, alone (one node, no CoMP, no
migration). With ``grouping=true`` (default) those users are split into groups sent one after
another, each with its own beam: the shared planner's partition search
(``planner.plan_transmissions``) with the candidate nodes fixed to the own node (holders = (n,),
no migration, clusters of one node), so exact over partitions for small groups and the planner's
documented heuristic above, QoS first, then delay. ``grouping=false`` restores the old rule: one
broadcast per cell with one beam (the numbers before grouping).

By default the cells take turns (every transmission sequential). With ``concurrent=true`` the
cells of one PB transmit at the same time: the r-th group of every cell shares slot r of the PB
(one slot per PB without grouping); every user of a slot also hears the other cells' nodes,
whose channel-error margins count against its worst case (the evaluator is exact about this;
the partitions and beams are chosen per cell as if it were alone, as before grouping), which
with Table II's absolute error radius usually costs more than the turns save. Users whose model
is not completely at their own node are reported undelivered, never dropped silently.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fgamcd_opt.caching import trimcaching_placement
from fgamcd_opt.params import Param
from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import (
    MESSAGE_USERS,
    BlockData,
    DeliveryResult,
    PlannerOptions,
    plan_transmissions,
)
from fgamcd_opt.solver import SolveResult, SolveStatus
from fgamcd_opt.workers import map_blocks


class NoCoopSolver:
    name = "nocoop"
    description = "without edge cooperation: own-cell caching and broadcasting, no migration/CoMP"
    params = (Param("beamforming", str, "fast", "oracle method for the per-cell beams",
                    choices=("fast", "sdr", "mrt", "nonrobust")),
              Param("concurrent", bool, False, "cells transmit a PB at the same time (the r-th "
                    "group of every cell in one slot)"),
              Param("grouping", bool, True, "split a cell's requesters into sequential groups "
                    "(false: one broadcast per cell, the rule before grouping)"),
              Param("workers", int, 1, "processes planning the PBs' delivery (the same plan "
                    "for any number)"))

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        holds = trimcaching_placement(inst, users_of_node_only=True, progress=ctx.progress)
        # own node only: no migration, one-node clusters; grouping off = one common beam as before
        opts = PlannerOptions(max_cluster=1, migration=False, method=params["beamforming"],
                              partition=params["grouping"],
                              split_zero_rate=params["grouping"])
        # past the time limit: closed form and no partition search
        quick = replace(opts, method="mrt", partition=False, split_zero_rate=False)
        out = DeliveryResult()
        missing: dict[int, list[int]] = {}
        qos: list[str] = []
        blocks = [int(k) for k in inst.requested_blocks]

        def plan_one(k: int):
            if ctx.must_stop():  # out of time: left undelivered (partial plan)
                return False, None, None, [], []
            hurried = opts.method != "mrt" and ctx.should_stop()
            use = quick if hurried else opts
            req = inst.requesters(k)
            bd = BlockData(inst, k)
            rounds: list[list] = []
            lacking, notes = [], []
            for n in np.unique(inst.users.node[req]):
                n = int(n)
                users = tuple(int(u) for u in req[inst.users.node[req] == n])
                if not holds[n, k]:
                    lacking.extend(users)
                    continue
                parts = plan_transmissions(inst, k, users, (n,), ctx.oracle, use, block_data=bd)
                cell = DeliveryResult()
                cell.note_qos(inst, k, parts, (n,), migration=False)
                for us, why in cell.qos_unmet.values():
                    notes.append(f"PB {inst.repository.blocks[k].id} at {inst.nodes.ids[n]}: "
                                 + ", ".join(inst.users.ids[u] for u in us) + f" ({why})")
                for r, g in enumerate(parts):
                    while len(rounds) <= r:
                        rounds.append([])
                    rounds[r].append((g, len(parts)))
            return hurried, use.method, rounds, lacking, notes

        hurried = skipped = 0
        slot = 0
        results = map_blocks(plan_one, blocks, ctx.oracle, params["workers"], ctx)
        for k, (late, method, rounds, lacking, notes) in zip(blocks, results, strict=True):
            hurried += late
            if rounds is None:
                skipped += 1
                continue
            for u in lacking:
                missing.setdefault(u, []).append(k)
            qos.extend(notes)
            for r, groups in enumerate(rounds):
                for g, n_parts in groups:
                    mode = "unicast" if n_parts > 1 and len(g.users) == 1 else "broadcast"
                    out.add(g, mode=mode, slot=slot + r if params["concurrent"] else None,
                            beamforming=method)
            slot += max(len(rounds), 1)
        plan = Plan.from_holds(holds, units=out.units, solver=self.name)
        msg = ""
        if missing:
            named = sorted(missing)
            msg = (f"{len(missing)} user(s) lack PBs at their own node and are not served: "
                   + ", ".join(inst.users.ids[u] for u in named[:MESSAGE_USERS])
                   + (f" and {len(named) - MESSAGE_USERS} more" if len(named) > MESSAGE_USERS
                      else ""))
        if qos:
            msg = "; ".join(filter(None, [msg, "QoS not met: " + "; ".join(qos)]))
        if hurried or skipped:
            msg = "; ".join(filter(None, [msg, f"time limit reached: {hurried} PB(s) "
                                          "beamformed with MRT (closed form), one group per "
                                          "cell" + (f", {skipped} PB(s) not planned (left "
                                                    "undelivered)" if skipped else "")]))
        return SolveResult(plan, SolveStatus.TIME_LIMIT if hurried or skipped
                           else SolveStatus.FEASIBLE, msg)


__solvers__ = [NoCoopSolver]
