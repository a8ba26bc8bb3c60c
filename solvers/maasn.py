"""maasn: MAASN-DA, the paper's learned solver (section III; docs/maasn.md).

Rolls a trained policy out on the instance: one step per requested PB, every node's actor
decides from its local observation (eq. 10) whether to cache the PB (a_n) and to which nodes to
migrate it (b_{n,m}), under the storage and migration masks. The decisions are delivered by the
shared planner (cached + migrated nodes are the candidates, the planner picks the participating
cluster and the oracle the beams), so the comparison with the baselines is on equal delivery;
``delivery=group`` is the paper's literal one-group broadcast by every participant. Migrations
the planner does not use are dropped.

``guard`` (default on): a coverage guard around the policy's caching decisions: a copy is kept
only while the storage left still holds one copy of every later requested PB, and a PB the
policy caches nowhere is cached at the fitting node with the strongest links to its requesters.
Without it a policy that fills storage early leaves later PBs uncached when storage binds.
``guard_mode`` (default ``auto``: ``reserve``, or ``reserve-local`` for a policy trained with
it): the guard's own placement of every PB is worked out first and its storage reserved, so the
policy's copies only use the room it leaves and never push a guard copy to a worse node;
``reserve-local`` reserves guard-fill rule=local's copies too (``card``: the rule the policy was
trained with).

``polish`` (default on, planner delivery): after the rollout the storage the policy left free is
filled and the shared planner plans every PB on that caching; each PB keeps the better of the
two deliveries by the evaluator's per-PB scorer (docs/maasn.md section 5), so the plan is never
worse than the rollout's on any PB, and no worse than ``replicate``'s when storage does not bind.
``guard-only`` gets the same polish. ``fallback`` (default on, planner delivery): ``guard-only``'s
plan (the guard's placement of every PB once, then the same polish: the free storage filled by
value per byte) is built too and the better whole plan is kept by the evaluator (fewer requested
pairs unserved, then fewer users below QoS, then lower delay); ``plan_source`` in the metadata
says which one, so a report counts how often the policy's own plan wins (docs/maasn.md 2.2).

The greedy rollout's decisions depend only on the caching decisions before them (never on how
an earlier PB was delivered), so the solver records them first and then plans every PB's
delivery, in ``workers`` processes (default 2; the same plan as in one process, tested).

``policy``: a policy file (``.pt`` with its ``.json`` card) written by ``fgamcd-train``, or a
shipped policy's name; default: the shipped ``generalist`` (any N up to 12 and U up to 64;
docs/maasn.md section 8) where it fits the instance, else the N = 6 ``paper-default`` policy.
``episodes=E`` first fine-tunes that policy on this instance
(the paper trains per scenario) within the time limit, with progress, and keeps the fine-tuned
actor only if its greedy rollout is better (fewer penalised PBs, then lower delay). A policy that
does not fit the instance (another N, more users at a node than its padding) is an error naming
both. torch is imported inside ``solve`` only.
"""

from __future__ import annotations

import time

from fgamcd_opt.params import Param
from fgamcd_opt.solver import SolveResult, SolveStatus


def _env_config(policy, inst, params: dict):
    mode = params["guard_mode"]
    if mode == "auto":
        trained = policy.card.get("environment", {}).get("guard_mode")
        mode = "card" if trained == "reserve-local" else "reserve"
    kw = {} if mode == "card" else {"guard_mode": mode}
    return policy.env_config(inst, delivery=params["delivery"],
                             max_cluster=params["max_cluster"], guard=params["guard"], **kw)


def _rollout(policy, inst, ctx, params: dict):
    from fgamcd_opt.marl.rollout import rollout

    return rollout(inst, _env_config(policy, inst, params), policy.act, ctx.oracle,
                   seed=ctx.seed, workers=params["workers"])


# the card's training settings that describe how the policy was made, not how to go on
# training it on one instance (a fresh start, a teacher, a schedule of the whole run)
_NOT_FINE_TUNING = ("episodes", "seed", "init_policy", "actor_delay", "teacher",
                    "teacher_params", "teacher_time_limit", "eval_every", "eval_instances",
                    "checkpoint_every", "threads", "delivery_workers", "explore_noise0",
                    "explore_noise_final", "explore_decay")


def fine_tune_config(training: dict, episodes: int, seed: int, workers: int):
    """The TrainConfig of ``--param episodes=E``: the policy card's recipe (learner updates,
    replay, augmentation, reward reference, shaping, n-step returns; a key this version does
    not know is ignored), with a schedule for an actor that is already trained (docs/maasn.md
    section 5): the critics start fresh, so the actor is held for the first third of the
    episodes while they learn its values on this instance (critic-only updates), and the
    exploration noise falls from 3x the recipe's final value (at most 1) to that value over
    the episodes instead of restarting at the recipe's initial noise."""
    import dataclasses

    from fgamcd_opt.marl.training import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    kept = {k: tuple(v) if isinstance(v, list) else v for k, v in training.items()
            if k in known and k not in _NOT_FINE_TUNING}
    final = float(training.get("explore_noise_final", TrainConfig.explore_noise_final))
    return TrainConfig(**kept, episodes=int(episodes), seed=int(seed), eval_every=0,
                       delivery_workers=max(int(workers), 1), actor_delay=int(episodes) // 3,
                       explore_noise0=min(1.0, 3.0 * final), explore_noise_final=final,
                       explore_decay=max(int(episodes), 1))


class MaasnSolver:
    name = "maasn"
    description = ("MAASN-DA (the paper's method): a trained multi-agent policy decides caching "
                   "and migration per PB; delivery by the shared planner and oracle")
    params = (
        Param("policy", str, "", "policy file (.pt with its .json card) or a shipped policy's "
              "name (generalist, paper-default); default: the shipped generalist where it "
              "fits the instance (N <= 12, U <= 64), else the N = 6 paper-default policy"),
        Param("episodes", int, 0, "fine-tune the policy on this instance for this many "
              "episodes first (within the time limit)"),
        Param("delivery", str, "planner", "planner: the shared planner picks clusters; group: "
              "every participant broadcasts to all requesters (the paper)",
              choices=("planner", "group")),
        Param("max_cluster", int, 0, "planner delivery: most nodes in one transmission (0: no "
              "cap, as for the baselines)"),
        Param("workers", int, 2, "processes that plan the PBs' delivery after the rollout "
              "(1: in this process)"),
        Param("guard", bool, True, "coverage guard: keep storage for one copy of every later "
              "PB and cache a PB the policy placed nowhere at its best fitting node "
              "(false: the policy's decisions only, as in training)"),
        Param("guard_mode", str, "auto", "the guard's rule (docs/maasn.md section 2.1): "
              "reserve (the guard-only placement kept, the policy's copies in the room it "
              "leaves), reserve-local (reserve plus guard-fill rule=local's copies), "
              "additive, fallback, card (the rule the policy was trained with) or auto (card "
              "for a policy trained with reserve-local, else reserve)",
              choices=("auto", "reserve", "reserve-local", "additive", "fallback", "card")),
        Param("polish", bool, True, "planner delivery: fill the storage the rollout leaves "
              "free and keep, per PB, the better of the rollout's delivery and the shared "
              "planner's on that caching (docs/maasn.md section 5)"),
        Param("fallback", bool, True, "planner delivery: also build guard-only's polished "
              "plan and keep the better whole plan by the evaluator (metadata plan_source)"),
    )

    # the shipped policies (fgamcd_opt/data/policies) tried in order when no policy is given:
    # the generalist (any N up to 12, U up to 64; level with the N = 6 specialist on its own
    # seeds, docs/maasn.md section 8), else the N = 6 specialist
    default_policies: tuple[str, ...] = ("generalist", "paper-default")
    algo = "maasn"  # the learner that wrote the policies this solver runs

    def __init__(self):
        self._policies: dict = {}

    def _load(self, path: str):
        from fgamcd_opt.marl.policy import Policy

        pol = self._policies.get(path)
        if pol is None:
            pol = self._policies[path] = Policy.load(path)
        return pol

    def _policy(self, path: str, inst=None):
        """The policy of parameter ``policy``: a file, a shipped policy's name, or (empty) the
        first shipped default that serves ``inst`` (the first one, whose check then refuses
        the instance, when none does)."""
        from fgamcd_opt.errors import FgamcdError, SolverRefusal
        from fgamcd_opt.marl.policy import shipped_policy_path

        if path:
            shipped = shipped_policy_path(path) if "/" not in path and "." not in path \
                else None
            return self._load(str(shipped) if shipped is not None and shipped.is_file()
                              else path)
        paths = [shipped_policy_path(n) for n in self.default_policies]
        paths = [str(p) for p in paths if p.is_file()]
        if not paths:
            raise SolverRefusal(f"no shipped {self.algo} policy found")
        if inst is not None:
            for p in paths:  # loaded only as far as needed (each load reads a .pt)
                pol = self._load(p)
                try:
                    pol.check_fits(inst)
                    return pol
                except FgamcdError:  # the next shipped policy may serve it
                    continue
        return self._load(paths[0])

    def solve(self, instance, ctx, params) -> SolveResult:
        from fgamcd_opt.errors import SolverRefusal

        inst = instance
        if params["episodes"] < 0:
            raise SolverRefusal("parameter episodes: must be >= 0")
        # a policy that does not fit the instance raises a FgamcdError: a refusal (runner.py)
        policy = self._policy(params["policy"], inst)
        policy.check_fits(inst)
        if policy.algo != self.algo:
            raise SolverRefusal(f"policy {policy.path} was trained by {policy.algo}, not "
                                f"{self.algo} (use --solver {policy.algo})")
        import torch

        threads = torch.get_num_threads()
        # the networks are small: one thread is faster than two, and much faster when the
        # cores are shared (measured 25x on a loaded 2-core machine)
        torch.set_num_threads(1)
        try:
            t0 = time.perf_counter()
            env, stats = _rollout(policy, inst, ctx, params)
            meta = {"policy": str(policy.path), "rollout": stats, "fine_tuned": False}
            status = SolveStatus.FEASIBLE
            if params["episodes"] > 0:
                env, status, meta = self._fine_tune(inst, ctx, params, policy, env, stats,
                                                    meta)
            meta["solve_s"] = time.perf_counter() - t0
        finally:
            torch.set_num_threads(threads)
        if params["polish"] and params["delivery"] == "planner":
            from fgamcd_opt.marl.rollout import polished_plan

            t1 = time.perf_counter()
            plan, message, meta["polish"] = polished_plan(
                inst, env, self.name, ctx.oracle, params["max_cluster"], ctx=ctx,
                workers=params["workers"])
            meta["polish"]["time_s"] = time.perf_counter() - t1
            if meta["polish"]["cut_by_time_limit"]:
                status = SolveStatus.TIME_LIMIT
            meta["solve_s"] = time.perf_counter() - t0
        else:
            plan, message = env.plan(self.name), env.undelivered_message()
        meta["plan_source"] = "policy"
        if params["fallback"] and params["delivery"] == "planner" and not ctx.should_stop():
            plan, message, status = self._fallback(inst, ctx, params, plan, message, status,
                                                   meta)
            meta["solve_s"] = time.perf_counter() - t0
        plan.metadata.update({"policy": meta["policy"], "fine_tuned": meta["fine_tuned"],
                              "plan_source": meta["plan_source"]})
        return SolveResult(plan, status, message, metadata=meta)

    def _fallback(self, inst, ctx, params, plan, message, status, meta):
        """The better whole plan of the policy's and guard-only's (polished as set), by the
        evaluator: fewer unserved pairs, then fewer users below QoS, then lower delay."""
        import math

        from fgamcd_opt.evaluator import evaluate

        from .guardonly import GuardOnlySolver

        other = GuardOnlySolver().solve(inst, ctx, {
            "max_cluster": params["max_cluster"], "workers": params["workers"],
            "polish": params["polish"]})

        def rank(p):
            ev = evaluate(inst, p, ctx.oracle)
            return (ev.unserved_pairs, len(ev.qos_violating_users()),
                    ev.total_delay_s if math.isfinite(ev.total_delay_s) else math.inf)

        mine, theirs = rank(plan), rank(other.plan)
        meta["fallback"] = {"policy_delay_s": mine[2], "guard_only_delay_s": theirs[2]}
        if theirs < mine:
            meta["plan_source"] = "guard-only"
            other.plan.solver = self.name
            return other.plan, other.message, status
        return plan, message, status

    def _fine_tune(self, inst, ctx, params, policy, env, stats, meta):
        import copy

        from fgamcd_opt.marl.learner import LearnerConfig
        from fgamcd_opt.marl.training import Trainer

        card = policy.card
        lc = LearnerConfig(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in card["learner"].items()})
        tc = fine_tune_config(card.get("training", {}), params["episodes"], ctx.seed,
                              params["workers"])
        trainer = Trainer(_env_config(policy, inst, params), lc, tc, oracle=ctx.oracle)
        trainer.learner.actor.load_state_dict(policy.actor.state_dict())
        trainer.learner.actor_t.load_state_dict(policy.actor.state_dict())
        total = params["episodes"]

        def report(row):
            ctx.progress(row["episode"] / total, f"fine-tuning episode {row['episode']}/{total}"
                         f", delay {row['delay_s']:.3f} s")

        result = trainer.train(progress=False, should_stop=ctx.should_stop, on_episode=report)
        tuned = copy.deepcopy(policy)
        tuned.actor = trainer.learner.actor.eval()
        env2, stats2 = _rollout(tuned, inst, ctx, params)
        better = (stats2["penalised_pbs"], stats2["delay_s"]) < (stats["penalised_pbs"],
                                                               stats["delay_s"])
        meta.update(fine_tune_episodes=result.episodes_done, fine_tuned_rollout=stats2,
                    fine_tuned=bool(better))
        status = SolveStatus.TIME_LIMIT if result.stopped else SolveStatus.FEASIBLE
        return (env2 if better else env), status, meta


__solvers__ = [MaasnSolver]
