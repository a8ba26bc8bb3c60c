"""coarse: coarse-grained caching (docs/model.md section 11.5; the conventional content-caching
baseline).

Each node caches whole models, most requested first: by the requests of its own users, then by
all requests, then smaller models first; a model copy pays its full size, so a PB shared by two
cached models is stored twice. Delivery is per model: for every requested model j and every PB k
of j, one unit to the users requesting j, transmitted by nodes holding a copy of j (cluster and
migrations between those nodes chosen by the shared planner). A PB shared by several requested
models is therefore sent once per model. Users whose model no node holds are undelivered.
"""

from __future__ import annotations

import numpy as np

from fgamcd_opt.caching import coarse_caching
from fgamcd_opt.params import Param
from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import (
    MESSAGE_USERS,
    BlockData,
    DeliveryResult,
    PlannerOptions,
    plan_transmissions,
    quick_options,
)
from fgamcd_opt.solver import SolveResult
from fgamcd_opt.workers import map_blocks


class CoarseSolver:
    name = "coarse"
    description = "coarse-grained caching: whole models by popularity, delivered per model"
    params = (
        Param("max_cluster", int, 0, "most nodes in one transmission (0: no cap)"),
        Param("migration", bool, True, "allow migrating a model's PBs between copy holders"),
        Param("workers", int, 1, "processes planning the deliveries (the same plan for any "
              "number)"),
    )

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        rep = inst.repository
        copies = coarse_caching(inst)
        opts = PlannerOptions(max_cluster=params["max_cluster"], migration=params["migration"])
        out = DeliveryResult()
        block_data: dict = {}
        models = [int(j) for j in inst.requested_models]
        quick = quick_options(opts)
        users_of = {j: tuple(np.flatnonzero(inst.users.model == j)) for j in models}
        holders_of = {j: tuple(n for n in range(inst.n_nodes) if j in copies[n]) for j in models}
        # one item per (model, PB of the model): their deliveries are independent
        items = [(j, int(k)) for j in models for k in rep.models[j].blocks]

        def plan_one(item):
            j, k = item
            if ctx.must_stop():  # out of time: left undelivered (partial plan)
                return False, None
            hurried = ctx.should_stop()
            if not holders_of[j]:
                return hurried, []
            if k not in block_data:  # bounds and backhaul of a PB, shared by its models
                block_data[k] = BlockData(inst, k)
            return hurried, plan_transmissions(inst, k, users_of[j], holders_of[j], ctx.oracle,
                                               quick if hurried else opts,
                                               block_data=block_data[k])

        results = map_blocks(plan_one, items, ctx.oracle, params["workers"], ctx, "PB")
        for (j, k), (hurried, parts) in zip(items, results, strict=True):
            users, holders = users_of[j], holders_of[j]
            if parts is None:
                out.skip(k, (*out.undeliverable.get(k, ()), *users))
                continue
            if hurried and k not in out.hurried:
                out.hurried.append(k)
            if not parts:
                out.undeliverable[k] = (*out.undeliverable.get(k, ()), *users)
                continue
            out.note_qos(inst, k, parts, holders, opts.migration)
            for g in parts:
                out.add(g, model=j)
        plan = Plan(cache=[set() for _ in range(inst.n_nodes)], migrations=out.migrations,
                    units=out.units, model_copies=copies, solver=self.name)
        missing = sorted({u for k, us in out.undeliverable.items() if k not in out.skipped
                          for u in us})
        msg = (f"{len(missing)} user(s) request a model no node caches: "
               + ", ".join(inst.users.ids[u] for u in missing[:MESSAGE_USERS])
               + (f" and {len(missing) - MESSAGE_USERS} more" if len(missing) > MESSAGE_USERS
                  else "")) \
            if missing else ""
        msg = "; ".join(filter(None, [msg, out.qos_message(inst), out.time_limit_message()]))
        plan.metadata["cached_models"] = [len(c) for c in copies]
        return SolveResult(plan, out.solve_status, msg)


__solvers__ = [CoarseSolver]
