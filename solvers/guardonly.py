"""guard-only: the coverage guard and the shared planner with no caching preference at all
(docs/maasn.md section 7).

The MAASN-DA environment is rolled out with a policy that never asks to cache or migrate
anything; the coverage guard of the ``maasn`` solver then places every requested PB once, at the
fitting node with the strongest links to its requesters among those that keep one copy of every
later PB placeable, and the shared planner delivers it (migrating copies to form CoMP clusters
where that pays). It is what MAASN-DA's rollout gives when the policy adds nothing, so a learned
policy earns its place only by beating it (and ``replicate``). ``polish`` (default on) is
``maasn``'s: the storage left free is filled and each PB keeps the better of the rollout's
delivery and the shared planner's (docs/maasn.md section 5). No torch.
"""

from __future__ import annotations

import numpy as np

from fgamcd_opt.params import Param
from fgamcd_opt.solver import SolveResult, SolveStatus


class GuardOnlySolver:
    name = "guard-only"
    description = ("no caching preference: MAASN-DA's coverage guard places each requested PB "
                   "once, the shared planner delivers")
    params = (
        Param("max_cluster", int, 0, "most nodes in one transmission (0: no cap)"),
        Param("workers", int, 2, "processes that plan the PBs' delivery after the rollout "
              "(1: in this process)"),
        Param("polish", bool, True, "fill the storage the rollout leaves free and keep, per "
              "PB, the better of its delivery and the shared planner's (as maasn does)"),
    )

    guard_mode = "additive"

    def policy(self, params: dict, pad: int):
        return lambda obs, mask: np.zeros_like(mask)

    def solve(self, instance, ctx, params) -> SolveResult:
        from fgamcd_opt.marl.env import EnvConfig
        from fgamcd_opt.marl.rollout import max_users_per_node, rollout

        inst = instance
        pad = max(max_users_per_node(inst), 1)
        cfg = EnvConfig(instance=inst, max_users_per_node=pad,
                        max_cluster=params["max_cluster"], guard=True,
                        guard_mode=self.guard_mode)
        env, stats = rollout(inst, cfg, self.policy(params, pad), ctx.oracle, seed=ctx.seed,
                             workers=params["workers"])
        meta = {"rollout": stats}
        if params["polish"]:
            from fgamcd_opt.marl.rollout import polished_plan

            plan, message, meta["polish"] = polished_plan(
                inst, env, self.name, ctx.oracle, params["max_cluster"], ctx=ctx,
                workers=params["workers"])
        else:
            plan, message = env.plan(self.name), env.undelivered_message()
        return SolveResult(plan, SolveStatus.FEASIBLE, message, metadata=meta)


class GuardFillSolver(GuardOnlySolver):
    """The guard's placement reserved first (``guard_mode="reserve"``), then a fixed rule fills
    the room left, each PB in MAASN-DA's step order: ``rule=all`` asks every node to cache every
    PB, ``rule=local`` only the nodes one of whose own users requests it (an LFU cache per cell
    that never pushes out the guard's copies). No learning: what a policy trained with the
    reserve guard must beat (docs/maasn.md section 7)."""

    name = "guard-fill"
    description = ("the coverage guard's placement reserved, then PBs cached (every PB, or "
                   "those a node's own users request) wherever the room left holds them")
    guard_mode = "reserve"
    params = GuardOnlySolver.params + (
        Param("rule", str, "local", "which copies fill the room the guard leaves: local (a "
              "node caches the PBs its own users request) or all (every PB everywhere)",
              choices=("local", "all")),
    )

    def policy(self, params: dict, pad: int):
        from fgamcd_opt.marl.env import own_requests

        local = params["rule"] == "local"

        def act(obs, mask):
            d = np.zeros_like(mask)
            # row n of the action layout: [a_n, b_{n,m} ...]: cache, migrate nothing
            d[:, 0] = own_requests(obs, pad) > 0 if local else 1
            return d

        return act


__solvers__ = [GuardOnlySolver, GuardFillSolver]
