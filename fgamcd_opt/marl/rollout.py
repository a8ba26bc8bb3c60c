"""One deterministic rollout of a caching policy in the MAASN-DA environment, with the
delivery planned afterwards (docs/maasn.md section 5): the solvers ``maasn`` and ``guard-only``.

The decisions of a deterministic rollout depend only on the caching decisions before them
(remaining storage, requests, backhaul), never on how an earlier PB was delivered, so every
step's holders and offered copies are recorded first and each PB's delivery (planner + oracle +
per-PB scorer) is planned after the rollout, in ``workers`` forked processes; the plan is the one
step-by-step delivery gives (tested), except that PBs sharing a requester set above 10 users then
get the shared planner's second pass (``deliver_pending(second_pass=True)``: never worse per PB).
"""

from __future__ import annotations

import time

import numpy as np

from .env import EnvConfig, FgamcdParallelEnv


def max_users_per_node(inst) -> int:
    """The most users attached to one node (the observation padding an instance needs)."""
    return int(np.bincount(inst.users.node, minlength=inst.n_nodes).max(initial=0))


def rollout(inst, env_cfg: EnvConfig, act_fn, oracle, seed: int = 0, workers: int = 1
            ) -> tuple[FgamcdParallelEnv, dict]:
    """Roll ``act_fn(obs (N, D), mask (N, N)) -> (N, N)`` out on ``inst`` (``env_cfg``'s
    instance), then deliver every PB. Returns the environment (its ``plan()``) and statistics:
    steps, reward (eq. 12, summed), decision time per step, rollout and delivery time, PBs
    penalised (QoS or undelivered) and the total delay."""
    from .training import run_episode

    env = FgamcdParallelEnv(env_cfg, oracle=oracle)
    env.defer_delivery = True
    begin = getattr(getattr(act_fn, "__self__", None), "begin_episode", None)
    if begin is not None:  # a recurrent policy starts from a fresh state
        begin()
    ep = run_episode(env, act_fn, seed=seed)
    t0 = time.perf_counter()
    delivered_reward = env.deliver_pending(workers=max(int(workers), 1), second_pass=True)
    deliver_s = time.perf_counter() - t0
    steps = max(len(ep["reward"]), 1)
    stats = {"steps": len(ep["reward"]),
             "reward": float(ep["reward"].sum()) + delivered_reward,
             "decision_s_per_step": ep["act_s"] / steps,
             "rollout_s": ep["act_s"] + ep["env_s"] + deliver_s, "delivery_s": deliver_s,
             "workers": int(workers),
             "penalised_pbs": env.qos_violations + len(env.undelivered),
             "delay_s": env.total_delay_s}
    return env, stats


def polished_plan(inst, env: FgamcdParallelEnv, solver: str, oracle, max_cluster: int = 0,
                  ctx=None, workers: int = 1):
    """(plan, message, info): the rollout's plan polished (:func:`fgamcd_opt.polish.polish_plan`:
    the storage it leaves free filled, each PB keeping the better of its own delivery and the
    shared planner's), the undelivered-users message of the PBs the polish did not take over,
    and what the polish did (copies added, PBs replaced, delay gained)."""
    from ..planner import PlannerOptions
    from ..polish import polish_plan

    res = polish_plan(inst, env.plan(solver), oracle, PlannerOptions(max_cluster=max_cluster),
                      ctx=ctx, workers=workers)
    return res.plan, env.undelivered_message(served=res.replaced), res.info()
