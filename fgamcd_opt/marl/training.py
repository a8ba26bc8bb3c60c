"""Algorithm 1 (paper section III-G): roll out episodes, augment with the ESN, update the
networks; learning curve, checkpoints and resume (docs/maasn.md).

Per episode e (0-based): reset the environment with seed ``SeedSequence([seed, e])``, act with
the Gumbel-Softmax exploration of the current actors, store the real tuples; run the ESN over the
episode (tune eta_out, keep at most tau_e predictions within xi, eq. 17-18) and store the kept
synthetic tuples; then ``updates_per_episode`` mini-batch updates (Algorithm 1 does one update
per episode; that is ``--updates-per-episode 1``).

Checkpoints (``checkpoint.pt``, every ``checkpoint_every`` episodes and at the end, written to a
temporary file and renamed, so a kill never leaves a torn file) hold the networks, optimisers,
replay buffer, ESN, every random generator and the curve rows, and are read with
``torch.load(weights_only=True)``. Every greedy evaluation that beats the previous ones (fewer
penalised PBs, then lower delay, on the training pool's first instances) is also written as
``best_policy.pt``. ``resume`` restarts from the last checkpoint: the episodes run
after it are re-run identically (same seeds, same generator states), so none is lost and the
curve is the one an uninterrupted run gives. Same seed -> same curve on CPU (torch runs with
``threads`` threads, default 1, so reductions keep their order).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ParameterError
from ..oracle import BeamformingOracle
from .augment import make_augmenter
from .env import EnvConfig, FgamcdParallelEnv, agent_name
from .esn import tau_schedule
from .graph import pad_agents
from .learner import LearnerConfig, MaasnLearner, build_learner
from .policy import _atomic_write_bytes, save_policy
from .replay import ReplayBuffer

CURVE_FIELDS = ("episode", "instance", "storage_gb", "steps", "reward", "delay_s", "qos_violations",
                "undelivered_pbs", "cached", "migrations", "explore_noise", "synthetic_kept",
                "esn_error", "esn_reward_error",
                "critic_loss", "actor_loss", "eval_delay_s", "eval_penalised_pbs", "env_s",
                "oracle_s", "act_s", "esn_s", "update_s", "wall_s", "eval_skipped",
                "reward_vs_idle")


@dataclass
class TrainConfig:
    episodes: int = 600  # E (Table II)
    seed: int = 0
    batch: int = 256
    buffer: int = 20000
    updates_per_episode: int = 20
    augmentation: bool = True
    # which predictor makes the synthetic tuples (augment.py): "esn" (the paper's), or the
    # ablations "rnn" (GRU, all weights trained) and "cgan" (conditional GAN)
    augmenter: str = "esn"
    aug_hidden: int = 128  # rnn: GRU width; cgan: width of the generator's and critic's layers
    aug_epochs: int = 8  # rnn/cgan: training passes per episode
    aug_history: int = 4  # rnn/cgan: episodes they train on (this one and the ones before)
    aug_lr: float = 1e-3  # rnn: Adam step (cgan: 2e-4, the usual GAN step)
    tau0: float = 0.8  # Table II
    xi: float = 1.12  # Table II
    attenuation: float = 0.8  # Lambda (Table II)
    attenuation_every: int = 10  # E- (Table II)
    reservoir: int = 1024  # Fig. 19 (c)
    spectral_norm: float = 0.5  # ||eta_re|| < 0.5, Fig. 19 (c)
    esn_input_scale: float = 0.1
    esn_ridge: float = 1e-2
    checkpoint_every: int = 10
    eval_every: int = 20  # greedy episodes on the first pool instances (0: never)
    eval_instances: int = 2
    threads: int = 1
    # processes that plan the deliveries of a training episode after its steps (the steps'
    # observations do not depend on how a PB is delivered, only on the caching, so the
    # rewards can be filled in afterwards; 1: step by step in this process)
    delivery_workers: int = 1
    # start from this policy file's actor (e.g. the shipped, teacher-started one) instead of a
    # fresh one; the critics are fresh, so the actor is held for ``actor_delay`` episodes while
    # they learn its values (critic-only updates)
    init_policy: str = ""
    actor_delay: int = 0
    # demonstrations (demo.py): a teacher solver's plans on the training pool, behaviour
    # cloning of the actors, a critic warm-up on the demonstrated transitions; "" = none
    teacher: str = ""
    teacher_params: dict = field(default_factory=dict)
    teacher_time_limit: float = 300.0
    bc_epochs: int = 100
    bc_lr: float = 1e-3
    critic_warmup: int = 500
    # returns over n steps: the cost of a copy (storage a later PB lacks) reaches the critic n
    # times faster than with one-step targets
    n_step: int = 5
    reward_clip: float = 20.0  # a step's reward is clipped below at -reward_clip (2 r2)
    # potential-based reward shaping with Phi = -r2 * (storage deficit of the later PBs, in
    # PBs) (episode_transitions): the storage a copy takes from later PBs is charged at once
    shaping: bool = True
    # the room price (> 0): potential-based shaping for the undiscounted objective with
    # Phi = -room_price * (the nodes' own later demand their free room lacks, in PBs;
    # env.local_deficit): a copy no local user requests is charged when it takes room the
    # node's users will need, not a median ~70 steps later where gamma = 0.95 hardly sees it
    room_price: float = 0.0
    # "idle": each step's reward is taken relative to the reward the same PB gets when the
    # policy asks for nothing (the guard's own rollout of the same instance: guard-only, or
    # guard-fill rule=local with guard_mode reserve-local; once per instance): a function of
    # the instance and the step alone, so every policy's return moves by the same constant,
    # while most of the rewards' spread (PB sizes, positions) drops out and what is left is
    # what the policy's copies changed (docs/maasn.md section 2.1 item 7)
    reward_reference: str = "none"
    # exploration schedule (explore_noise): scale of the Gumbel noise from explore_noise0 to
    # explore_noise_final over the first explore_decay episodes (a count, not a fraction, so a
    # run extended with --resume keeps its past schedule)
    explore_noise0: float = 1.0
    explore_noise_final: float = 0.1
    explore_decay: int = 300

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    rows: list[dict] = field(default_factory=list)
    learner: MaasnLearner | None = None
    policy_path: Path | None = None
    episodes_done: int = 0
    stopped: bool = False


def _episode_seed(seed: int, e: int) -> int:
    return int(np.random.SeedSequence([seed, e]).generate_state(1)[0])


def _np_tensors(d):
    """numpy arrays -> torch tensors, recursively (checkpoints stay weights_only-loadable)."""
    import torch

    if isinstance(d, dict):
        return {k: _np_tensors(v) for k, v in d.items()}
    if isinstance(d, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(d))
    return d


def _tensors_np(d):
    import torch

    if isinstance(d, dict):
        return {k: _tensors_np(v) for k, v in d.items()}
    if isinstance(d, torch.Tensor):
        return d.numpy()
    return d


def run_episode(env: FgamcdParallelEnv, act_fn, seed: int | None = None, options=None,
                potential: bool = False) -> dict:
    """One episode; ``act_fn(obs, mask) -> actions`` with obs (N, D) and mask (N, N) in the
    flat format, obs (1, dim) and mask (n_max, n_max) in the graph format (graph.py: the actions
    of the padded nodes are ignored). Returns the tuples and stats: ``act`` is what the
    environment executed at each step (``env.executed``: the caching after the mask and the
    guard, the migrations the delivery used), ``proposed`` what ``act_fn`` returned; with
    ``potential`` also ``deficit`` (T + 1,): the env's storage deficit in PBs
    (``storage_deficit``) before each step and at the end (reward shaping)."""
    n = len(env.possible_agents)
    obs_d, _ = env.reset(seed=seed, options=options)
    graph = env.layout is not None
    width = env.layout.n_max if graph else n

    def observe(obs_d):
        if graph:
            return env.graph[None].copy()
        return np.stack([obs_d[agent_name(a)]["observation"] for a in range(n)])

    obs_l, mask_l, act_l, prop_l, rew_l = [], [], [], [], []
    unpl = [env.storage_deficit()] if potential else None
    local = [env.local_deficit()] if potential else None
    t_act = 0.0
    t0 = time.perf_counter()
    while env.agents:
        obs = observe(obs_d)
        mask = np.stack([obs_d[agent_name(a)][env.config.mask_key] for a in range(n)])
        if graph:
            mask = pad_agents(mask, width)
        ta = time.perf_counter()
        d = np.asarray(act_fn(obs, mask))[:n, :n]
        t_act += time.perf_counter() - ta
        actions = {agent_name(a): d[a].astype(np.int8) for a in range(n)}
        obs_l.append(obs)
        mask_l.append(mask)
        prop_l.append(d > 0.5)
        obs_d, rew, _, _, _ = env.step(actions)
        act_l.append(env.executed.copy())
        rew_l.append(rew[agent_name(0)])
        if potential:
            unpl.append(env.storage_deficit())
            local.append(env.local_deficit())
    final = observe(obs_d)
    shape = (-1, n, n)
    act = np.asarray(act_l, bool).reshape(shape)
    prop = np.asarray(prop_l, bool).reshape(shape)
    if graph:
        act, prop = pad_agents(act, width), pad_agents(prop, width)
    return {"obs": np.asarray(obs_l, np.float32),
            "mask": np.asarray(mask_l, bool).reshape(-1, width, width),
            "act": act, "proposed": prop,
            "deficit": None if unpl is None else np.asarray(unpl, np.float64),
            "local_deficit": None if local is None else np.asarray(local, np.float64),
            "reward": np.asarray(rew_l, np.float32),
            "final_obs": final, "act_s": t_act, "env_s": time.perf_counter() - t0 - t_act}


def idle_rewards(env: FgamcdParallelEnv, inst, workers: int = 1) -> np.ndarray:
    """Eq. 12's reward of each step of ``inst`` in ``env`` when the policy asks for nothing
    (with a reserving guard: the guard's own placement), deliveries planned in ``workers``
    forked processes when > 1 (the same rewards as step by step)."""
    env.defer_delivery = workers > 1
    try:
        ep = run_episode(env, lambda obs, mask: np.zeros_like(mask), seed=0,
                         options={"instance": inst})
        if workers > 1:
            for t, r, _executed in env.deliver_pending(workers, per_step=True):
                ep["reward"][t] = r
    finally:
        env.defer_delivery = False
    return ep["reward"].astype(np.float64)


def episode_transitions(ep: dict, gamma: float, n_step: int = 1,
                        reward_clip: float | None = None, shaping: float = 0.0,
                        room_price: float = 0.0) -> tuple:
    """The replay-buffer tuples of an episode (``run_episode``): (obs, mask, executed action,
    n-step return, obs n steps later, its mask, done, discount). The n-step return is
    sum_{i<n} gamma^i r(k+i), truncated at the end of the episode (then done, nothing is
    bootstrapped); ``discount`` = gamma^n multiplies the bootstrap term. Each step's reward is
    first clipped below at ``-reward_clip`` (one migration over a slow backhaul can cost
    > 100 of eq. 12's units; the evaluator, not the reward, scores the plans).

    ``shaping`` (> 0, with ``ep["deficit"]``): potential-based shaping (Ng, Harada and
    Russell 1999) with Phi(s) = -shaping * (the storage deficit of the later PBs, in PBs:
    ``FgamcdParallelEnv.storage_deficit``): each reward gets gamma Phi(s') - Phi(s), so a copy
    that takes room a later PB needs is charged when it is made, not tens of steps later when
    that PB goes undelivered. Phi is 0 at the end of the episode, so every policy's return
    changes by the same constant -Phi(s_0) and the optimal policies are those of eq. 12.

    ``ep["reference"]`` (optional, one reward per step, clipped alike): subtracted from the
    rewards (``TrainConfig.reward_reference``).

    ``room_price`` (> 0, with ``ep["local_deficit"]``): each reward also gets Phi(s') - Phi(s)
    with Phi(s) = -room_price * ``FgamcdParallelEnv.local_deficit`` (undiscounted: the shaping
    of the undiscounted total delay, the evaluator's objective, whose ranking of policies it
    keeps exactly since the terms sum to the constant -Phi(s_0)). Under the learner's gamma the
    charge of a copy that takes room the node's own users will need comes now and its refund
    (when the PB it pushed off the node passes) a median ~60 steps later, so it brings forward
    what discounting would otherwise hide (docs/maasn.md section 2.1, item 7)."""
    r = ep["reward"].astype(np.float64)
    if reward_clip is not None and reward_clip > 0:
        r = np.maximum(r, -float(reward_clip))
    if ep.get("reference") is not None:
        ref = np.asarray(ep["reference"], np.float64)
        if reward_clip is not None and reward_clip > 0:
            ref = np.maximum(ref, -float(reward_clip))
        r = r - ref
    if shaping > 0 and ep.get("deficit") is not None:
        phi = -float(shaping) * ep["deficit"]
        phi[-1] = 0.0  # terminal
        r = r + gamma * phi[1:] - phi[:-1]
    if room_price > 0 and ep.get("local_deficit") is not None:
        phi = -float(room_price) * ep["local_deficit"]
        r = r + phi[1:] - phi[:-1]
    t_steps = len(r)
    n = max(int(n_step), 1)
    obs_all = np.concatenate([ep["obs"], ep["final_obs"][None]])
    mask_all = np.concatenate([ep["mask"], np.zeros((1, *ep["mask"].shape[1:]), bool)])
    ret = np.zeros(t_steps)
    for i in range(n):  # ret[t] += gamma^i r[t + i]
        ret[: t_steps - i] += gamma ** i * r[i:]
    idx = np.minimum(np.arange(t_steps) + n, t_steps)
    done = idx >= t_steps
    return (ep["obs"], ep["mask"], ep["act"], ret.astype(np.float32), obs_all[idx],
            mask_all[idx], done, np.full(t_steps, gamma ** n, np.float32))


_TRAIN_DEFAULTS = TrainConfig().to_dict()


def _finite_or_none(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def explore_noise(cfg, episode: int) -> float:
    """The exploration noise of episode ``episode`` (0-based): linear from ``explore_noise0``
    to ``explore_noise_final`` over the first ``explore_decay`` episodes, then constant. A bit
    with logit l is 1 with probability sigmoid(l / noise): with logits in [-5, 5]
    (``logit_scale``) at least 0.67% of the time at noise 1 (eq. 13), 2e-22 at noise 0.1."""
    span = max(float(cfg.explore_decay), 1.0)
    f = min(episode / span, 1.0)
    return float(cfg.explore_noise0 + f * (cfg.explore_noise_final - cfg.explore_noise0))


class Trainer:
    def __init__(self, env_cfg: EnvConfig, learner_cfg: LearnerConfig, cfg: TrainConfig,
                 out_dir: str | os.PathLike | None = None, oracle: BeamformingOracle | None = None,
                 command: str = ""):
        import torch

        torch.set_num_threads(max(int(cfg.threads), 1))
        self.cfg = cfg
        self.env_cfg = env_cfg
        self.learner_cfg = learner_cfg
        # a scenario mix (scenarios.py) draws instances of different N: one environment per
        # training instance, all sharing one oracle (envs_for)
        self._envs: dict[int, FgamcdParallelEnv] = {}
        if env_cfg.mix:
            if env_cfg.obs_format != "graph":
                raise ParameterError("a scenario mix needs the graph observation (the shared "
                                     "architecture): its instances differ in N")
            from ..oracle import default_oracle

            self._oracle = oracle or default_oracle()
            self.env = self.env_for(env_cfg.pool_seed0)
        else:
            self.env = FgamcdParallelEnv(env_cfg, oracle=oracle)
        layout = self.env.layout
        self.n = layout.n_max if layout is not None else len(self.env.possible_agents)
        self.learner = build_learner(learner_cfg, self.n, self.env.block_dim, cfg.seed, layout)
        obs_dim = layout.dim if layout is not None else self.env.obs_dim
        extras = None
        if getattr(self.learner, "algo", "maasn") == "qmix":
            if cfg.teacher:
                raise ParameterError("--teacher: QMIX-DA trains from scratch (the paper's "
                                     "baseline); demonstrations are for MAASN-DA")
            shape = (self.n, int(learner_cfg.rnn_hidden))
            extras = {"hidden": shape, "next_hidden": shape}
        self.buffer = ReplayBuffer(cfg.buffer, self.n, obs_dim,
                                   obs_rows=1 if layout is not None else self.n, extras=extras)
        self.rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 7]))
        if cfg.augmentation and layout is not None:
            raise ParameterError("ESN augmentation works on the paper's padded observation "
                                 "only; train the shared architecture with --no-augmentation")
        state_dim = self.n * self.env.obs_dim
        # the augmenter (the ESN, or an ablation's trained predictor; augment.py)
        self.esn = make_augmenter(cfg, state_dim + self.n * self.n, 1 + state_dim) \
            if cfg.augmentation else None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.rows: list[dict] = []
        self.episode = 0
        self.command = command
        self.best_key: list | None = None
        self.demos = None  # demo.Demonstrations, when cfg.teacher
        self.pretrain_info: dict | None = None
        self.resume_overrides: list[dict] = []  # settings changed with --resume --override
        self._saved_at: int | None = None  # episode of the last checkpoint written
        if cfg.reward_reference not in ("none", "idle"):
            raise ParameterError(f"reward_reference={cfg.reward_reference!r}: expected none "
                                 "or idle")
        self._reference: dict[str, np.ndarray] = {}  # instance fingerprint -> step rewards

    # ---- instances -----------------------------------------------------------------------
    def env_for(self, seed: int) -> FgamcdParallelEnv:
        """The environment of training instance ``seed`` of a scenario mix (built once)."""
        env = self._envs.get(seed)
        if env is None:
            from dataclasses import replace

            from ..generators import generate
            from .scenarios import draw

            scenario, over = draw(self.env_cfg.mix, seed)
            inst = generate(scenario, seed=int(seed), **over)
            env = FgamcdParallelEnv(replace(self.env_cfg, instance=inst, mix=()),
                                    oracle=self._oracle)
            self._envs[seed] = env
        return env

    def _episode_env(self, seed: int) -> tuple[FgamcdParallelEnv, dict | None]:
        """The environment and reset options of an episode with reset seed ``seed``."""
        if not self.env_cfg.mix:
            return self.env, None
        pick = int(np.random.default_rng(seed).integers(max(self.env_cfg.pool, 1)))
        return self.env_for(self.env_cfg.pool_seed0 + pick), None

    # ---- demonstrations ----------------------------------------------------------------
    def _teacher_instances(self) -> list:
        if self.env_cfg.instance is not None:
            return [self.env_cfg.instance]
        if self.env_cfg.pool <= 0:
            raise ParameterError("a teacher needs a fixed training pool (pool > 0) or an "
                                 "instance")
        if self.env_cfg.mix:
            return [self.env_for(self.env_cfg.pool_seed0 + i).config.instance
                    for i in range(self.env_cfg.pool)]
        return [self.env._scenario_instance(self.env_cfg.pool_seed0 + i)
                for i in range(self.env_cfg.pool)]

    def start_from_policy(self, path: str) -> None:
        """Copy a policy file's actor into the learner (actor and target actor); one clear
        line when the file is unreadable or its networks do not fit this run's."""
        from .policy import Policy

        pol = Policy.load(path)
        try:
            for net in (self.learner.actor, self.learner.actor_t):
                net.load_state_dict(pol.actor.state_dict())
        except RuntimeError as exc:
            why = " ".join(str(exc).strip().splitlines()[:2])
            raise ParameterError(f"{path}: the policy does not fit this run's networks "
                                 f"({why[:240]})") from None
        import hashlib

        self.pretrain_info = {
            "initial_policy": str(path),
            "initial_policy_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16],
            "initial_policy_demonstrations": pol.card.get("demonstrations"),
            "actor_delay": self.cfg.actor_delay}

    def pretrain(self, log=None) -> dict:
        """Demonstrations (demo.py): teacher plans replayed, actors cloned, critics warmed up
        on the demonstrated transitions; the cloned policy is the first best_policy."""
        from .demo import behaviour_clone, collect_demonstrations

        cfg = self.cfg
        t0 = time.perf_counter()
        demos = collect_demonstrations(self.env, cfg.teacher, cfg.teacher_params,
                                       self._teacher_instances(), self.transitions,
                                       cfg.teacher_time_limit, log)
        t1 = time.perf_counter()
        self.buffer.add(demos.obs, demos.mask, demos.act, demos.reward, demos.next_obs,
                        demos.next_mask, demos.done, demos.discount)
        info = behaviour_clone(self.learner, demos, cfg.bc_epochs, cfg.batch, cfg.bc_lr,
                               self.rng)
        t2 = time.perf_counter()
        for _ in range(cfg.critic_warmup):
            self.learner.update(self.buffer.sample(cfg.batch, self.rng), train_actor=False)
        t3 = time.perf_counter()
        self.demos = demos
        info.update(teacher=cfg.teacher, transitions=len(demos), runs=demos.runs,
                    teacher_s=t1 - t0, bc_s=t2 - t1, critic_warmup_s=t3 - t2)
        self.pretrain_info = info  # the cards written from here on carry it
        if cfg.eval_every:
            ev = self.greedy_eval()
            info.update(ev)
            self.best_key = [ev["eval_penalised_pbs"], ev["eval_delay_s"]]
            if self.out_dir is not None:
                self.save_policy(self.out_dir / "best_policy.pt",
                                 extra={"selected_at_episode": 0,
                                        "selection": "behaviour cloning (before episode 1)"})
        if log:
            log(f"demonstrations: {len(demos)} transitions from {cfg.teacher} in "
                f"{t1 - t0:.1f} s; behaviour cloning accuracy {info['bc_accuracy']:.3f} "
                f"(loss {info['bc_loss']:.4f}) in {t2 - t1:.1f} s; critic warm-up "
                f"{t3 - t2:.1f} s" + (f"; greedy eval delay {info['eval_delay_s']:.4f} s, "
                                      f"{info['eval_penalised_pbs']} penalised PBs"
                                      if "eval_delay_s" in info else ""))
        return info

    # ---- one episode -------------------------------------------------------------------
    def transitions(self, ep: dict) -> tuple:
        """The replay tuples of an episode (n-step returns, clipped and shaped rewards)."""
        return episode_transitions(ep, self.learner_cfg.gamma, self.cfg.n_step,
                                   self.cfg.reward_clip,
                                   self.env_cfg.r2 if self.cfg.shaping else 0.0,
                                   self.cfg.room_price)

    def noise(self) -> float:
        return explore_noise(self.cfg, self.episode)

    def train_episode(self) -> dict:
        cfg, e = self.cfg, self.episode
        oracle = self.env.oracle
        ot0 = oracle.solve_time_s
        w0 = time.perf_counter()
        noise = self.noise()
        seed = _episode_seed(cfg.seed, e)
        self.env, _ = self._episode_env(seed)
        ep = self._explore_episode(seed, noise)
        transitions = self.transitions(ep)
        t_steps = len(ep["reward"])
        hidden = self._hidden()  # recurrent learners: the state before each step, and after
        self.buffer.add(*transitions, extras=None if hidden is None else {
            "hidden": hidden[:t_steps],
            "next_hidden": hidden[np.minimum(np.arange(t_steps) + cfg.n_step, t_steps)]})

        t1 = time.perf_counter()
        esn_stats = {"synthetic_kept": 0, "esn_error_mean": float("nan")}
        if self.esn is not None and t_steps:
            # one-step tuples (s, d, r, s'): the ESN predicts the reward and the next state
            # the one-step tuples (n_step=1), with the same clipping and shaping
            _, _, acts, r1, nobs, nmask, done, _ = episode_transitions(
                ep, self.learner_cfg.gamma, 1, cfg.reward_clip,
                self.env_cfg.r2 if cfg.shaping else 0.0, cfg.room_price)
            v = np.concatenate([ep["obs"].reshape(t_steps, -1),
                                acts.reshape(t_steps, -1).astype(np.float64)], axis=1)
            y = np.concatenate([r1[:, None], nobs.reshape(t_steps, -1)], axis=1)
            tau = tau_schedule(e, t_steps, cfg.tau0, cfg.attenuation, cfg.attenuation_every)
            keep, pred, esn_stats = self.esn.augment(v, y, tau, cfg.xi, self.rng)
            if len(keep):
                syn_next = np.clip(pred[:, 1:], 0.0, None).reshape(len(keep), self.n, -1)
                self.buffer.add(ep["obs"][keep], ep["mask"][keep], acts[keep], pred[:, 0],
                                syn_next, nmask[keep], done[keep],
                                np.full(len(keep), self.learner_cfg.gamma, np.float32),
                                synthetic=True, extras=None if hidden is None else {
                                    "hidden": hidden[keep], "next_hidden": hidden[keep + 1]})
        t2 = time.perf_counter()
        losses = {"critic_loss": float("nan"), "actor_loss": float("nan")}
        if len(self.buffer) >= min(cfg.batch, 64):
            use_demos = self.demos is not None and self.learner_cfg.bc_weight > 0
            hold = {} if e >= cfg.actor_delay else {"train_actor": False}
            for _ in range(cfg.updates_per_episode):
                demo = self.demos.sample(cfg.batch, self.rng) if use_demos else None
                losses = self.learner.update(self.buffer.sample(cfg.batch, self.rng), demo,
                                             noise=noise, **hold)
        t3 = time.perf_counter()
        env = self.env
        row_env = {"instance": env.inst.name,
                   "storage_gb": float(env.inst.nodes.storage_bytes.mean()) / 1e9,
                   "steps": t_steps,
                   "reward": float(ep["reward"].sum()), "delay_s": env.total_delay_s,
                   "qos_violations": env.qos_violations, "undelivered_pbs": len(env.undelivered),
                   "cached": int(env.holds.sum()), "migrations": len(env.migrations)}
        if "reference" in ep:  # the reward beyond the idle policy's on the same instance
            row_env["reward_vs_idle"] = float(ep["reward"].sum() - ep["reference"].sum())
        ev = {"eval_delay_s": None, "eval_penalised_pbs": None, "eval_skipped": None}
        if cfg.eval_every and (e + 1) % cfg.eval_every == 0:
            ev = self.greedy_eval()
            key = [ev["eval_penalised_pbs"], ev["eval_delay_s"]]
            if self.best_key is None or key < self.best_key:
                # the best greedy policy on the training pool (never on held-out seeds)
                self.best_key = key
                if self.out_dir is not None:
                    self.save_policy(self.out_dir / "best_policy.pt",
                                     extra={"selected_at_episode": e + 1,
                                            "selection": "lowest (penalised PBs, delay) of "
                                                         "the greedy evaluations"})
        row = {"episode": e + 1, **row_env, **ev, "explore_noise": noise,
               "synthetic_kept": int(esn_stats["synthetic_kept"]),
               "esn_error": _finite_or_none(esn_stats["esn_error_mean"]),
               "esn_reward_error": _finite_or_none(esn_stats.get("esn_reward_error_mean")),
               **losses, "env_s": ep["env_s"], "oracle_s": oracle.solve_time_s - ot0,
               "act_s": ep["act_s"], "esn_s": t2 - t1, "update_s": t3 - t2,
               "wall_s": time.perf_counter() - w0}
        self.rows.append(row)
        self.episode += 1
        return row

    def _explore_episode(self, seed: int, noise: float) -> dict:
        """One exploring episode; with ``delivery_workers`` > 1 the deliveries are planned
        after the steps, in parallel, and their rewards and executed migrations filled into
        the episode (the same tuples as step-by-step delivery)."""
        cfg, env = self.cfg, self.env
        parallel = int(cfg.delivery_workers) > 1
        env.defer_delivery = parallel
        try:
            ep = run_episode(env, self._act_fn(True, noise), seed=seed,
                             potential=cfg.shaping or cfg.room_price > 0)
            if parallel:
                t0 = time.perf_counter()
                n = env._n
                for t, r, executed in env.deliver_pending(cfg.delivery_workers, per_step=True):
                    ep["reward"][t] = r
                    ep["act"][t] = False
                    ep["act"][t, :n, :n] = executed
                ep["env_s"] += time.perf_counter() - t0
        finally:
            env.defer_delivery = False
        if cfg.reward_reference == "idle":
            ep["reference"] = self.reference_rewards(env.inst)
            if len(ep["reference"]) != len(ep["reward"]):
                raise RuntimeError("the reference rollout took a different number of steps")
        return ep

    def reference_rewards(self, inst) -> np.ndarray:
        """Eq. 12's reward of each step of ``inst`` when the policy caches nothing (with the
        reserve guard: the guard-only placement), delivered as training delivers; computed
        once per instance (deterministic) and kept."""
        key = inst.fingerprint
        if key not in self._reference:
            self._reference[key] = idle_rewards(self.env, inst, int(self.cfg.delivery_workers))
        return self._reference[key]

    def _act_fn(self, explore: bool, noise: float = 1.0):
        """The learner's acting function for one episode (a recurrent learner starts its state
        afresh)."""
        begin = getattr(self.learner, "begin_episode", None)
        if begin is not None:
            begin()
        return lambda o, m: self.learner.act(o, m, explore=explore, noise=noise).numpy()

    def _hidden(self) -> np.ndarray | None:
        get = getattr(self.learner, "episode_hidden", None)
        return None if get is None else get().numpy()

    def greedy_eval(self) -> dict:
        """Deterministic episodes on the first ``eval_instances`` instances (the learning curve
        without exploration noise): mean delay and PBs penalised (QoS or undelivered).

        With the coverage guard, an instance whose guard cannot place one copy of every
        requested PB (``env.guard_covers``) is left out of the means: its undelivered PBs,
        which rank first in the best-policy key, rise with any copy a policy adds, so it
        would select the policy that asks for nothing (found on a generalist run whose
        evaluation drew N = 3, U = 37, C_n = 0.28 GB). ``eval_skipped`` counts them; when
        every instance is such, all are used."""
        if self.env_cfg.instance is not None:
            seeds = [None]
        else:
            seeds = [self.env_cfg.pool_seed0 + i for i in range(max(self.cfg.eval_instances, 1))]
        runs = []
        for s in seeds:
            if self.env_cfg.mix:
                env, options = self.env_for(s), None
            else:
                env, options = self.env, None if s is None else {"instance_seed": s}
            run_episode(env, self._act_fn(False), seed=0, options=options)
            runs.append((env.total_delay_s, env.qos_violations + len(env.undelivered),
                         bool(self.env_cfg.guard) and not env.guard_covers))
        used = [r for r in runs if not r[2]] or runs
        return {"eval_delay_s": float(np.mean([r[0] for r in used])),
                "eval_penalised_pbs": float(np.mean([r[1] for r in used])),
                "eval_skipped": len(runs) - len(used)}

    # ---- the loop ----------------------------------------------------------------------
    def train(self, progress: bool = True, should_stop=None, on_episode=None) -> TrainResult:
        from tqdm import tqdm

        cfg = self.cfg
        bar = tqdm(total=cfg.episodes, initial=self.episode, disable=not progress,
                   unit="ep", file=sys.stderr, dynamic_ncols=True)
        stopped = False
        if cfg.init_policy and self.episode == 0 and self.pretrain_info is None:
            self.start_from_policy(cfg.init_policy)
        if cfg.teacher and self.demos is None and self.episode == 0:
            self.pretrain(log=(lambda m: print(m, file=sys.stderr)) if progress else None)
            if self.out_dir is not None:
                self.save_checkpoint()  # a kill from here on never re-runs the teacher
        try:
            while self.episode < cfg.episodes:
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                row = self.train_episode()
                recent = self.rows[-10:]
                bar.set_postfix(reward=f"{np.mean([r['reward'] for r in recent]):.2f}",
                                delay=f"{np.mean([r['delay_s'] for r in recent]):.3f}s",
                                synth=row["synthetic_kept"], refresh=False)
                bar.update(1)
                if on_episode is not None:
                    on_episode(row)
                if self.out_dir is not None and (self.episode % cfg.checkpoint_every == 0
                                                 or self.episode == cfg.episodes):
                    self.save_checkpoint()
        finally:
            bar.close()
        result = TrainResult(self.rows, self.learner, episodes_done=self.episode,
                             stopped=stopped)
        if self.out_dir is not None:
            if self._saved_at != self.episode:  # stopped between checkpoints
                self.save_checkpoint()
            result.policy_path = self.save_policy(self.out_dir / "policy.pt")
        return result

    # ---- files -------------------------------------------------------------------------
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def previous_checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.prev.pt"

    def config_dict(self) -> dict:
        """Everything that defines the run (train, learner and environment settings): stored
        in the checkpoint and compared on resume."""
        return json.loads(json.dumps({"train": self.cfg.to_dict(),
                                      "learner": self.learner_cfg.to_dict(),
                                      "env": self.env_cfg.card()}, default=str))

    def save_checkpoint(self) -> None:
        import torch

        state = {
            "episode": self.episode,
            "learner": self.learner.state_dict(),
            "buffer": _np_tensors(self.buffer.state_dict()),
            "esn": _np_tensors(self.esn.state_dict()) if self.esn is not None else None,
            "rng": json.dumps(self.rng.bit_generator.state),
            "rows": json.dumps(self.rows),
            "best_key": json.dumps(self.best_key),
            "demos": _np_tensors(self.demos.state_dict()) if self.demos is not None else None,
            "pretrain": json.dumps(self.pretrain_info),
            "config": json.dumps(self.config_dict()),
            "overrides": json.dumps(self.resume_overrides),
        }
        path, prev = self.checkpoint_path(), self.previous_checkpoint_path()

        def write(tmp):
            torch.save(state, tmp)
            if path.exists():  # the last good checkpoint stays as the fallback
                os.replace(path, prev)

        _atomic_write_bytes(path, write)
        self._saved_at = self.episode
        self.write_curve()

    def _read_checkpoint(self, path: Path) -> dict:
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or "learner" not in state:
                raise ValueError("not a fgamcd-train checkpoint")
            return state
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported in one line
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ParameterError(f"{path}: cannot read the checkpoint ({msg[:200]})") from None

    def config_differences(self, stored: dict) -> list[str]:
        """Settings of this trainer that differ from the checkpoint's (``episodes`` may grow:
        that is how a run is extended), as 'section.key: old -> new'."""
        now = self.config_dict()
        out = []
        for sec in sorted(set(now) | set(stored)):
            a, b = stored.get(sec) or {}, now.get(sec) or {}
            for key in sorted(set(a) | set(b)):
                if (sec, key) in (("train", "episodes"),):
                    continue
                if key not in a and sec == "train" and b.get(key) == _TRAIN_DEFAULTS.get(key):
                    continue  # a setting added since the checkpoint, at its default
                if a.get(key, "<absent>") != b.get(key, "<absent>"):
                    out.append(f"{sec}.{key}: {a.get(key, '<absent>')!r} -> "
                               f"{b.get(key, '<absent>')!r}")
        return out

    def load_checkpoint(self, override: bool = False, log=None) -> bool:
        """Restore the last checkpoint (False when there is none). A checkpoint written with
        other settings is refused with one line naming the differences, unless ``override``
        (then the changes are recorded in the card); an unreadable or mismatched latest
        checkpoint falls back to the previous one, else one line (ParameterError)."""
        path, prev = self.checkpoint_path(), self.previous_checkpoint_path()
        if not path.is_file() and not prev.is_file():
            return False
        errors = []
        for cand in (path, prev):
            if not cand.is_file():
                continue
            try:
                state = self._read_checkpoint(cand)
            except ParameterError as exc:
                errors.append(str(exc))
                continue
            stored = json.loads(state.get("config") or "{}")
            diff = self.config_differences(stored) if stored else []
            if diff and not override:
                raise ParameterError(
                    f"{cand}: written with other settings ({'; '.join(diff)}); resume with "
                    "the same arguments, or add --override to record the change in the card")
            try:
                self._restore(state, cand)
            except ParameterError as exc:
                errors.append(str(exc))
                continue
            if errors and log:
                log(f"{errors[0]}; resumed from the previous checkpoint {cand} instead")
            if diff:
                self.resume_overrides = [*self.resume_overrides,
                                         {"at_episode": self.episode, "changes": diff}]
            return True
        raise ParameterError("; ".join(errors))

    def _restore(self, state: dict, where: Path) -> None:
        try:
            self.learner.load_state_dict(state["learner"])
            self.buffer.load_state_dict(_tensors_np(state["buffer"]))
            if self.esn is not None and state["esn"] is not None:
                self.esn.load_state_dict(_tensors_np(state["esn"]))
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [repr(exc)]
            # torch's first line only names the module; the second names the first mismatch
            why = " ".join(lines[:2])
            raise ParameterError(f"{where}: the checkpoint does not fit these networks "
                                 f"({why[:240]})") from None
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.rows = json.loads(state["rows"])
        self.best_key = json.loads(state.get("best_key", "null"))
        self.episode = int(state["episode"])
        self.pretrain_info = json.loads(state.get("pretrain", "null"))
        self.resume_overrides = json.loads(state.get("overrides", "[]") or "[]")
        if state.get("demos") is not None:
            from .demo import Demonstrations

            self.demos = Demonstrations.from_state(
                _tensors_np(state["demos"]), (self.pretrain_info or {}).get("runs", []))

    def write_curve(self) -> None:
        path = self.out_dir / "curve.csv"

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
                w.writeheader()
                for r in self.rows:
                    w.writerow({k: r.get(k) for k in CURVE_FIELDS})

        _atomic_write_bytes(path, write)

    def card(self) -> dict:
        import gymnasium
        import pettingzoo
        import torch

        last = self.rows[-50:]
        env = self.env
        return {
            "kind": "maasn-policy",
            "scenario": self.env_cfg.scenario if self.env_cfg.instance is None else None,
            "instance": self.env_cfg.instance.name if self.env_cfg.instance else None,
            "overrides": self.env_cfg.overrides,
            "n_nodes": self.n,
            "max_users_per_node": env._pad,
            "observation": {
                "dim": env.obs_dim, "block_dim": env.block_dim,
                "layout": "N blocks of [S(k)/S_max or R^bac_{n,m}(k)/1e10, request indicators "
                          "of the node's users padded to max_users_per_node, C~(k)/C"
                          + (", D(k)/C (bytes its users still request)"
                             if self.env_cfg.observe_demand else "")
                          + "]; own block first, then other nodes ascending, zeroed beyond "
                          "varpi",
            },
            "action": "[a_n, b_{n,m} for m != n ascending]",
            "environment": self.env_cfg.card(),
            "learner": self.learner_cfg.to_dict(),
            "training": {**self.cfg.to_dict(), "episodes_done": self.episode,
                         "command": self.command},
            "demonstrations": self.pretrain_info,
            "resume_overrides": self.resume_overrides,
            "versions": {"fgamcd_opt": __version__, "torch": torch.__version__,
                         "pettingzoo": pettingzoo.__version__,
                         "gymnasium": gymnasium.__version__, "numpy": np.__version__},
            "final_curve": {
                "episodes_averaged": len(last),
                "reward_mean": float(np.mean([r["reward"] for r in last])) if last else None,
                "delay_s_mean": float(np.mean([r["delay_s"] for r in last])) if last else None,
                "qos_violations_mean": float(np.mean([r["qos_violations"] for r in last]))
                if last else None,
                "undelivered_pbs_mean": float(np.mean([r["undelivered_pbs"] for r in last]))
                if last else None,
                "wall_s_total": float(sum(r["wall_s"] for r in self.rows)),
            },
        }

    def save_policy(self, path: Path, extra: dict | None = None) -> Path:
        return save_policy(path, self.learner.actor.state_dict(), {**self.card(),
                                                                    **(extra or {})})


MAX_CURVE_GROUPS = 4  # more distinct C_n than this in one run: a mix, drawn as one curve


def curve_groups(rows: list[dict]) -> tuple[list, bool]:
    """(the storages C_n in GB that get a curve each, whether the run is a mix): a run over a
    few storages (``--storage-gb-choices``) gets one curve per storage; a scenario mix draws a
    new C_n (and N, U, ...) nearly every episode, where one curve per value would be one
    legend entry per episode, so it gets one running mean over all episodes ([None])."""
    storage = [float(r.get("storage_gb") or "nan") for r in rows]
    groups = sorted({round(x, 4) for x in storage if np.isfinite(x)}) or [None]
    if len({r.get("instance") for r in rows}) > 1 and len(groups) > MAX_CURVE_GROUPS:
        return [None], True
    return groups, False


def plot_curve(csv_path: str | os.PathLike, png_path: str | os.PathLike, title: str = ""
               ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    ep = np.array([int(r["episode"]) for r in rows])
    rew = np.array([float(r["reward"]) for r in rows])
    dly = np.array([float(r["delay_s"]) for r in rows])
    qos = np.array([float(r["qos_violations"]) + float(r["undelivered_pbs"]) for r in rows])

    groups, mixed = curve_groups(rows)

    def smooth(x, w=20):
        # a mix's episodes differ by orders of magnitude (an LLM instance's delay and reward
        # are 5-10x a small network's): the running median, else the running mean
        w = max(1, min(w, len(x)))
        if mixed:
            return np.array([np.median(x[max(0, i - w + 1):i + 1]) for i in range(len(x))])
        c = np.cumsum(np.insert(x, 0, 0.0))
        out = np.empty_like(x)
        for i in range(len(x)):
            lo = max(0, i - w + 1)
            out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
        return out

    storage = np.array([float(r.get("storage_gb") or "nan") for r in rows])
    stat = "median" if mixed else "mean"
    rew_label = "episode reward (eq. 12)"
    if all(r.get("reward_vs_idle") not in (None, "") for r in rows):
        # the raw reward moves mostly with the instance drawn; beyond the idle policy's
        # reward on the same instance it shows what the policy's copies changed
        rew = np.array([float(r["reward_vs_idle"]) for r in rows])
        rew_label = "episode reward minus the idle policy's (eq. 12)"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, y, label in ((axes[0], rew, rew_label),
                         (axes[1], dly, "total delay (s)"),
                         (axes[2], qos, "PBs with QoS violation or undelivered")):
        ax.plot(ep, y, color="0.8", lw=0.6, label="episode")
        for i, g in enumerate(groups):
            sel = np.ones(len(ep), bool) if g is None else np.isclose(storage, g)
            tag = ", all drawn instances" if mixed else "" if g is None else f", C_n {g:g} GB"
            ax.plot(ep[sel], smooth(y[sel]), color=f"C{i}", lw=1.6,
                    label=f"{stat} of last 20{tag}")
        ax.set_xlabel("episode")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    ev = [(int(r["episode"]), float(r["eval_delay_s"]), float(r["eval_penalised_pbs"]))
          for r in rows if r.get("eval_delay_s")]
    if ev:
        e_ep, e_delay, e_bad = (np.array(x) for x in zip(*ev, strict=True))
        axes[1].plot(e_ep, e_delay, "o-", color="C3", ms=3, lw=1.2,
                     label="greedy policy (eval, mean of its instances)")
        axes[2].plot(e_ep, e_bad, "o-", color="C3", ms=3, lw=1.2,
                     label="greedy policy (eval, mean of its instances)")
        axes[1].legend(fontsize=7)
        axes[2].legend(fontsize=7)
    # a few exploratory episodes with huge migrations would flatten the delay panel
    axes[1].set_ylim(0, float(np.nanpercentile(dly, 98)) * 1.2 or 1.0)
    if mixed:  # likewise a few hard instances' rewards (the curve CSV has every value)
        lo, hi = np.nanpercentile(rew, [2, 100])
        axes[0].set_ylim(lo - 0.1 * (hi - lo + 1e-9), hi + 0.1 * (hi - lo + 1e-9))
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
