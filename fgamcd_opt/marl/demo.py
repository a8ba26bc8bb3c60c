"""Demonstrations for MAASN-DA: a teacher solver's plans replayed as the agents' joint actions,
behaviour cloning of the actors on them, and the behaviour-cloning term of the actor loss
(docs/maasn.md section "Demonstrations").

Why: with storage binding, the paper's reward (eq. 12) punishes a wasteful copy only when a
later PB no longer fits, tens of steps later, and Gumbel-Softmax exploration over N^2 binary
actions per step rarely finds a packing that serves everything; 600 episodes from a random
actor left ~140 of 242 PBs undelivered per episode at C_n = 0.25 GB. Starting the actors from
a teacher's decisions (any registered solver, by default the MILP's primal plan) and keeping a
behaviour-cloning term in the actor loss (as in TD3+BC / DQfD) gives the reinforcement learning
a policy that already serves every PB to improve on. The teacher runs only on the training pool
(generator seeds from ``pool_seed0`` on), never on held-out seeds.

A plan maps to actions step by step: at the step of PB k, a_n = 1 where the plan caches k at n
and b_{n,m} = 1 where it migrates k from n to m. Replaying them in the environment gives the
observations, masks and rewards of real transitions (they go to the replay buffer too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .env import FgamcdParallelEnv


def plan_actions(inst, plan) -> np.ndarray:
    """(T, N, N) bool joint actions that replay ``plan``'s caching and migrations, one step
    per requested PB in the environment's order (``inst.requested_blocks``)."""
    k_list = np.asarray(inst.requested_blocks, dtype=int)
    n = inst.n_nodes
    pos = {int(k): t for t, k in enumerate(k_list)}
    holds = plan.holds(inst.repository)
    act = np.zeros((len(k_list), n, n), dtype=bool)
    act[:, :, 0] = holds[:, k_list].T
    for mg in plan.migrations:
        t = pos.get(int(mg.block))
        if t is not None and mg.src != mg.dst:
            # agent src's action column of node dst: other nodes in ascending order (env.py)
            act[t, mg.src, 1 + (mg.dst if mg.dst < mg.src else mg.dst - 1)] = True
    return act


def _replay(acts: np.ndarray):
    """An act_fn (training.run_episode) that returns the recorded joint actions in turn."""
    steps = iter(acts)
    return lambda obs, mask: next(steps)


@dataclass
class Demonstrations:
    """Transitions replayed from teacher plans, plus one row per teacher run."""

    obs: np.ndarray
    mask: np.ndarray
    act: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    next_mask: np.ndarray
    done: np.ndarray
    discount: np.ndarray
    runs: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.obs)

    def sample(self, batch: int, rng: np.random.Generator) -> dict:
        idx = rng.integers(0, len(self), size=batch)
        return {"obs": self.obs[idx], "mask": self.mask[idx], "act": self.act[idx]}

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("obs", "mask", "act", "reward", "next_obs",
                                               "next_mask", "done", "discount")}

    @classmethod
    def from_state(cls, d: dict, runs: list[dict]) -> Demonstrations:
        return cls(**{k: np.asarray(v) for k, v in d.items()}, runs=runs)


def collect_demonstrations(env: FgamcdParallelEnv, teacher: str, params: dict | None,
                           instances: list, transitions, time_limit_s: float | None = None,
                           log=None) -> Demonstrations:
    """Run ``teacher`` (a registered solver name or file spec) on each instance and replay its
    plan in ``env``; ``transitions(ep)`` turns a replayed episode into replay tuples (the
    trainer's n-step returns). The demonstrated action of a step is what the environment
    executed (the teacher's caching, and the migrations the delivery used). Plans the teacher
    cannot produce are skipped (noted in ``runs``)."""
    from ..registry import get_solver
    from ..runner import run_solver
    from .training import run_episode

    cls = get_solver(teacher)
    parts, runs = [], []
    for inst in instances:
        t0 = time.perf_counter()
        run = run_solver(inst, cls, params or {}, seed=0, time_limit_s=time_limit_s,
                         oracle=env.oracle)
        row = {"instance": inst.name, "teacher": teacher,
               "solver_status": run.record.solver_status,
               "teacher_delay_s": run.record.total_delay_s,
               "teacher_s": time.perf_counter() - t0}
        if run.plan is None:
            row["replayed"] = False
            runs.append(row)
            if log:
                log(f"teacher {teacher} on {inst.name}: no plan ({run.record.message})")
            continue
        acts = plan_actions(inst, run.plan)
        ep = run_episode(env, _replay(acts), seed=0, options={"instance": inst},
                         potential=True)
        parts.append(transitions(ep))
        row.update(replayed=True, replay_delay_s=env.total_delay_s,
                   replay_penalised_pbs=env.qos_violations + len(env.undelivered),
                   steps=len(ep["reward"]))
        runs.append(row)
        if log:
            log(f"teacher {teacher} on {inst.name}: {row['teacher_delay_s']} s in "
                f"{row['teacher_s']:.1f} s; replayed in the environment: "
                f"{row['replay_delay_s']:.4f} s, {row['replay_penalised_pbs']} penalised PBs")
    if not parts:
        raise RuntimeError(f"teacher {teacher} produced no plan on the training instances")
    cols = list(zip(*parts, strict=True))
    return Demonstrations(*(np.concatenate(c) for c in cols), runs=runs)


def bc_loss(actor, batch: dict, temperature: float):
    """Binary cross-entropy of the actor's decision probabilities (sigmoid(logit / s_temp),
    eq. 13 without noise) against the demonstrated actions, on the entries the teacher decided:
    a_n where PB k fits at n, b_{n,m} where the teacher cached k at n (b is void otherwise,
    eq. 2). Returns (loss, accuracy of the greedy decisions on those entries)."""
    import torch

    obs = torch.as_tensor(np.asarray(batch["obs"], dtype=np.float32))
    mask = torch.as_tensor(np.asarray(batch["mask"], dtype=np.float32))
    target = torch.as_tensor(np.asarray(batch["act"], dtype=np.float32))
    logits = actor(obs) / temperature
    valid = mask.clone()
    valid[..., 1:] *= target[..., :1]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target,
                                                                reduction="none")
    denom = valid.sum().clamp(min=1.0)
    with torch.no_grad():
        acc = (((logits > 0).float() == target).float() * valid).sum() / denom
    return (loss * valid).sum() / denom, float(acc)


def behaviour_clone(learner, demos: Demonstrations, epochs: int, batch: int, lr: float,
                    rng: np.random.Generator) -> dict:
    """Fit the actors to the demonstrations (Adam, ``epochs`` passes of mini-batches), then
    copy them to the target actors. Returns the first and last loss and accuracy."""
    import torch

    actor = learner.actor
    opt = torch.optim.Adam(actor.parameters(), lr=lr)
    steps = max(1, int(np.ceil(len(demos) / batch))) * max(int(epochs), 0)
    first = last = None
    for _ in range(steps):
        loss, acc = bc_loss(actor, demos.sample(batch, rng), learner.cfg.temperature)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(actor.parameters(), learner.cfg.grad_clip)
        opt.step()
        last = (float(loss.item()), acc)
        first = first or last
    learner.actor_t.load_state_dict(actor.state_dict())
    full, acc = bc_loss(actor, {"obs": demos.obs, "mask": demos.mask, "act": demos.act},
                        learner.cfg.temperature)
    return {"bc_steps": steps, "bc_first_loss": first[0] if first else None,
            "bc_last_batch_loss": last[0] if last else None,
            "bc_loss": float(full.item()), "bc_accuracy": acc}
