"""guard-only: the coverage guard and the shared planner with no caching preference at all
(docs/maasn.md section 7).

The MAASN-DA environment is rolled out with a policy that never asks to cache or migrate
anything; the coverage guard of the ``maasn`` solver then places every requested PB once, at the
fitting node with the strongest links to its requesters among those that keep one copy of every
later PB placeable, and the shared planner delivers it (migrating copies to form CoMP clusters
where that pays). It is what MAASN-DA's rollout gives when the policy adds nothing, so a learned
policy earns its place only by beating it (and ``replicate``). No torch.
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
    )

    guard_mode = "additive"

    @staticmethod
    def policy(obs, mask):
        return np.zeros_like(mask)

    def solve(self, instance, ctx, params) -> SolveResult:
        from fgamcd_opt.marl.env import EnvConfig
        from fgamcd_opt.marl.rollout import max_users_per_node, rollout

        inst = instance
        cfg = EnvConfig(instance=inst, max_users_per_node=max(max_users_per_node(inst), 1),
                        max_cluster=params["max_cluster"], guard=True,
                        guard_mode=self.guard_mode)
        env, stats = rollout(inst, cfg, self.policy, ctx.oracle, seed=ctx.seed,
                             workers=params["workers"])
        plan = env.plan(self.name)
        return SolveResult(plan, SolveStatus.FEASIBLE, env.undelivered_message(),
                           metadata={"rollout": stats})


class GuardFillSolver(GuardOnlySolver):
    """The guard's placement reserved first (``guard_mode="reserve"``), then a policy that asks
    every node to cache every PB: each PB, in MAASN-DA's step order, gets a copy at every node
    whose room beyond the reservation still holds it. The no-learning policy of the reserve
    guard, and so what a policy trained with that guard must beat (docs/maasn.md section 7)."""

    name = "guard-fill"
    description = ("the coverage guard's placement reserved, then every PB cached wherever the "
                   "room left holds it; the shared planner delivers")
    guard_mode = "reserve"

    @staticmethod
    def policy(obs, mask):
        d = np.zeros_like(mask)
        d[:, 0] = 1  # row n of the action layout: [a_n, b_{n,m} ...]: cache, migrate nothing
        return d


__solvers__ = [GuardOnlySolver, GuardFillSolver]
