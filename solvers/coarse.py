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


class CoarseSolver:
    name = "coarse"
    description = "coarse-grained caching: whole models by popularity, delivered per model"
    params = (
        Param("max_cluster", int, 0, "most nodes in one transmission (0: no cap)"),
        Param("migration", bool, True, "allow migrating a model's PBs between copy holders"),
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
        for i, j in enumerate(models):
            ctx.step(i, len(models), "model")
            users = tuple(np.flatnonzero(inst.users.model == j))
            holders = tuple(n for n in range(inst.n_nodes) if j in copies[n])
            for k in rep.models[j].blocks:
                use = opts
                if ctx.should_stop():  # past the limit: quick fallback, then nothing
                    if ctx.must_stop():
                        out.skip(k, (*out.undeliverable.get(k, ()), *users))
                        continue
                    use = quick
                    if k not in out.hurried:
                        out.hurried.append(int(k))
                if k not in block_data:  # bounds and backhaul of a PB, shared by its models
                    block_data[k] = BlockData(inst, k)
                parts = plan_transmissions(inst, k, users, holders, ctx.oracle, use,
                                           block_data=block_data[k]) if holders else []
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
