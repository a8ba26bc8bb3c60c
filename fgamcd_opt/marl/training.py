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
from ..oracle import BeamformingOracle
from .env import EnvConfig, FgamcdParallelEnv, agent_name
from .esn import EchoStateNetwork, tau_schedule
from .learner import LearnerConfig, MaasnLearner
from .policy import _atomic_write_bytes, save_policy
from .replay import ReplayBuffer

CURVE_FIELDS = ("episode", "instance", "storage_gb", "steps", "reward", "delay_s", "qos_violations",
                "undelivered_pbs", "cached", "migrations", "synthetic_kept", "esn_error",
                "critic_loss", "actor_loss", "eval_delay_s", "eval_penalised_pbs", "env_s",
                "oracle_s", "act_s", "esn_s", "update_s", "wall_s")


@dataclass
class TrainConfig:
    episodes: int = 600  # E (Table II)
    seed: int = 0
    batch: int = 256
    buffer: int = 20000
    updates_per_episode: int = 20
    augmentation: bool = True
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
    # demonstrations (demo.py): a teacher solver's plans on the training pool, behaviour
    # cloning of the actors, a critic warm-up on the demonstrated transitions; "" = none
    teacher: str = ""
    teacher_params: dict = field(default_factory=dict)
    teacher_time_limit: float = 300.0
    bc_epochs: int = 100
    bc_lr: float = 1e-3
    critic_warmup: int = 500

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


def run_episode(env: FgamcdParallelEnv, act_fn, seed: int | None = None, options=None
                ) -> dict:
    """One episode; ``act_fn(obs (N, D), mask (N, N)) -> (N, N)``. Returns the tuples and stats."""
    n = len(env.possible_agents)
    obs_d, _ = env.reset(seed=seed, options=options)
    obs_l, mask_l, act_l, rew_l = [], [], [], []
    t_act = 0.0
    t0 = time.perf_counter()
    while env.agents:
        obs = np.stack([obs_d[agent_name(a)]["observation"] for a in range(n)])
        mask = np.stack([obs_d[agent_name(a)][env.config.mask_key] for a in range(n)])
        ta = time.perf_counter()
        d = np.asarray(act_fn(obs, mask))
        t_act += time.perf_counter() - ta
        actions = {agent_name(a): np.concatenate([d[a, :1], d[a, 1:]]).astype(np.int8)
                   for a in range(n)}
        obs_l.append(obs)
        mask_l.append(mask)
        act_l.append(d > 0.5)
        obs_d, rew, _, _, _ = env.step(actions)
        rew_l.append(rew[agent_name(0)])
    final = np.stack([obs_d[agent_name(a)]["observation"] for a in range(n)])
    return {"obs": np.asarray(obs_l), "mask": np.asarray(mask_l, bool),
            "act": np.asarray(act_l, bool), "reward": np.asarray(rew_l, np.float32),
            "final_obs": final, "act_s": t_act, "env_s": time.perf_counter() - t0 - t_act}


def executed_actions(env: FgamcdParallelEnv, ep: dict) -> np.ndarray:
    """The env's enforcement (eq. 2 / storage) is already in the masks; b needs a_n."""
    a = ep["act"].copy()
    a[..., 1:] &= a[..., :1]
    return a & ep["mask"]


def episode_transitions(env: FgamcdParallelEnv, ep: dict) -> tuple:
    """The replay-buffer tuples of an episode (``run_episode``): (obs, mask, executed
    actions, reward, next obs, next mask, done); the last step is terminal."""
    t_steps = len(ep["reward"])
    nobs = np.concatenate([ep["obs"][1:], ep["final_obs"][None]])
    nmask = np.concatenate([ep["mask"][1:], np.zeros((1, *ep["mask"].shape[1:]), bool)])
    done = np.zeros(t_steps, bool)
    done[-1:] = True
    return (ep["obs"], ep["mask"], executed_actions(env, ep), ep["reward"], nobs, nmask, done)


class Trainer:
    def __init__(self, env_cfg: EnvConfig, learner_cfg: LearnerConfig, cfg: TrainConfig,
                 out_dir: str | os.PathLike | None = None, oracle: BeamformingOracle | None = None,
                 command: str = ""):
        import torch

        torch.set_num_threads(max(int(cfg.threads), 1))
        self.cfg = cfg
        self.env_cfg = env_cfg
        self.learner_cfg = learner_cfg
        self.env = FgamcdParallelEnv(env_cfg, oracle=oracle)
        self.n = len(self.env.possible_agents)
        self.learner = MaasnLearner(learner_cfg, self.n, self.env.block_dim, seed=cfg.seed)
        self.buffer = ReplayBuffer(cfg.buffer, self.n, self.env.obs_dim)
        self.rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 7]))
        state_dim = self.n * self.env.obs_dim
        self.esn = EchoStateNetwork(state_dim + self.n * self.n, 1 + state_dim, cfg.reservoir,
                                    cfg.spectral_norm, cfg.esn_input_scale, cfg.esn_ridge,
                                    seed=cfg.seed) if cfg.augmentation else None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.rows: list[dict] = []
        self.episode = 0
        self.command = command
        self.best_key: list | None = None
        self.demos = None  # demo.Demonstrations, when cfg.teacher
        self.pretrain_info: dict | None = None

    # ---- demonstrations ----------------------------------------------------------------
    def _teacher_instances(self) -> list:
        if self.env_cfg.instance is not None:
            return [self.env_cfg.instance]
        if self.env_cfg.pool <= 0:
            from ..errors import ParameterError

            raise ParameterError("a teacher needs a fixed training pool (pool > 0) or an "
                                 "instance")
        return [self.env._scenario_instance(self.env_cfg.pool_seed0 + i)
                for i in range(self.env_cfg.pool)]

    def pretrain(self, log=None) -> dict:
        """Demonstrations (demo.py): teacher plans replayed, actors cloned, critics warmed up
        on the demonstrated transitions; the cloned policy is the first best_policy."""
        from .demo import behaviour_clone, collect_demonstrations

        cfg = self.cfg
        t0 = time.perf_counter()
        demos = collect_demonstrations(self.env, cfg.teacher, cfg.teacher_params,
                                       self._teacher_instances(), cfg.teacher_time_limit, log)
        t1 = time.perf_counter()
        self.buffer.add(demos.obs, demos.mask, demos.act, demos.reward, demos.next_obs,
                        demos.next_mask, demos.done)
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
    def train_episode(self) -> dict:
        cfg, e = self.cfg, self.episode
        oracle = self.env.oracle
        ot0 = oracle.solve_time_s
        w0 = time.perf_counter()
        ep = run_episode(self.env, lambda o, m: self.learner.act(o, m, explore=True).numpy(),
                         seed=_episode_seed(cfg.seed, e))
        _, _, acts, _, nobs, nmask, done = transitions = episode_transitions(self.env, ep)
        t_steps = len(ep["reward"])
        self.buffer.add(*transitions)

        t1 = time.perf_counter()
        esn_stats = {"synthetic_kept": 0, "esn_error_mean": float("nan")}
        if self.esn is not None and t_steps:
            v = np.concatenate([ep["obs"].reshape(t_steps, -1),
                                acts.reshape(t_steps, -1).astype(np.float64)], axis=1)
            y = np.concatenate([ep["reward"][:, None], nobs.reshape(t_steps, -1)], axis=1)
            tau = tau_schedule(e, t_steps, cfg.tau0, cfg.attenuation, cfg.attenuation_every)
            keep, pred, esn_stats = self.esn.augment(v, y, tau, cfg.xi, self.rng)
            if len(keep):
                syn_next = np.clip(pred[:, 1:], 0.0, None).reshape(len(keep), self.n, -1)
                self.buffer.add(ep["obs"][keep], ep["mask"][keep], acts[keep], pred[:, 0],
                                syn_next, nmask[keep], done[keep], synthetic=True)
        t2 = time.perf_counter()
        losses = {"critic_loss": float("nan"), "actor_loss": float("nan")}
        if len(self.buffer) >= min(cfg.batch, 64):
            use_demos = self.demos is not None and self.learner_cfg.bc_weight > 0
            for _ in range(cfg.updates_per_episode):
                demo = self.demos.sample(cfg.batch, self.rng) if use_demos else None
                losses = self.learner.update(self.buffer.sample(cfg.batch, self.rng), demo)
        t3 = time.perf_counter()
        env = self.env
        row_env = {"instance": env.inst.name,
                   "storage_gb": float(env.inst.nodes.storage_bytes.mean()) / 1e9,
                   "steps": t_steps,
                   "reward": float(ep["reward"].sum()), "delay_s": env.total_delay_s,
                   "qos_violations": env.qos_violations, "undelivered_pbs": len(env.undelivered),
                   "cached": int(env.holds.sum()), "migrations": len(env.migrations)}
        ev = {"eval_delay_s": None, "eval_penalised_pbs": None}
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
        row = {"episode": e + 1, **row_env, **ev,
               "synthetic_kept": int(esn_stats["synthetic_kept"]),
               "esn_error": float(esn_stats["esn_error_mean"]),
               **losses, "env_s": ep["env_s"], "oracle_s": oracle.solve_time_s - ot0,
               "act_s": ep["act_s"], "esn_s": t2 - t1, "update_s": t3 - t2,
               "wall_s": time.perf_counter() - w0}
        self.rows.append(row)
        self.episode += 1
        return row

    def greedy_eval(self) -> dict:
        """Deterministic episodes on the first ``eval_instances`` instances (the learning curve
        without exploration noise): mean delay and PBs penalised (QoS or undelivered)."""
        env = self.env
        if self.env_cfg.instance is not None:
            seeds = [None]
        else:
            seeds = [self.env_cfg.pool_seed0 + i for i in range(max(self.cfg.eval_instances, 1))]
        delays, bad = [], []
        for s in seeds:
            run_episode(env, lambda o, m: self.learner.act(o, m, explore=False).numpy(),
                        seed=0, options=None if s is None else {"instance_seed": s})
            delays.append(env.total_delay_s)
            bad.append(env.qos_violations + len(env.undelivered))
        return {"eval_delay_s": float(np.mean(delays)), "eval_penalised_pbs": float(np.mean(bad))}

    # ---- the loop ----------------------------------------------------------------------
    def train(self, progress: bool = True, should_stop=None, on_episode=None) -> TrainResult:
        from tqdm import tqdm

        cfg = self.cfg
        bar = tqdm(total=cfg.episodes, initial=self.episode, disable=not progress,
                   unit="ep", file=sys.stderr, dynamic_ncols=True)
        stopped = False
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
            self.save_checkpoint()
            result.policy_path = self.save_policy(self.out_dir / "policy.pt")
        return result

    # ---- files -------------------------------------------------------------------------
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

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
            "config": json.dumps({"train": self.cfg.to_dict(),
                                  "learner": self.learner_cfg.to_dict(),
                                  "env": self.env_cfg.card()}, default=str),
        }
        _atomic_write_bytes(self.checkpoint_path(), lambda tmp: torch.save(state, tmp))
        self.write_curve()

    def load_checkpoint(self) -> bool:
        import torch

        path = self.checkpoint_path()
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.learner.load_state_dict(state["learner"])
        self.buffer.load_state_dict(_tensors_np(state["buffer"]))
        if self.esn is not None and state["esn"] is not None:
            self.esn.load_state_dict(_tensors_np(state["esn"]))
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.rows = json.loads(state["rows"])
        self.best_key = json.loads(state.get("best_key", "null"))
        self.episode = int(state["episode"])
        self.pretrain_info = json.loads(state.get("pretrain", "null"))
        if state.get("demos") is not None:
            from .demo import Demonstrations

            self.demos = Demonstrations.from_state(
                _tensors_np(state["demos"]), (self.pretrain_info or {}).get("runs", []))
        return True

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

    def smooth(x, w=20):
        w = max(1, min(w, len(x)))
        c = np.cumsum(np.insert(x, 0, 0.0))
        out = np.empty_like(x)
        for i in range(len(x)):
            lo = max(0, i - w + 1)
            out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
        return out

    storage = np.array([float(r.get("storage_gb") or "nan") for r in rows])
    groups = sorted({round(x, 4) for x in storage if np.isfinite(x)}) or [None]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, y, label in ((axes[0], rew, "episode reward (eq. 12)"),
                         (axes[1], dly, "total delay (s)"),
                         (axes[2], qos, "PBs with QoS violation or undelivered")):
        ax.plot(ep, y, color="0.8", lw=0.6, label="episode")
        for i, g in enumerate(groups):
            sel = np.ones(len(ep), bool) if g is None else np.isclose(storage, g)
            tag = "" if g is None else f", C_n {g:g} GB"
            ax.plot(ep[sel], smooth(y[sel]), color=f"C{i}", lw=1.6,
                    label=f"mean of last 20{tag}")
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
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
