"""fgamcd-train: train a MAASN-DA policy (docs/maasn.md).

    fgamcd-train paper-default -o runs/pd --episodes 600 --seed 0
    fgamcd-train --instance instances/tiny.json -o runs/tiny --episodes 20
    fgamcd-train paper-default -o runs/pd --resume          # continue after a kill

Writes ``OUT/checkpoint.pt`` (every ``--checkpoint-every`` episodes), ``OUT/curve.csv`` and
``OUT/curve.png`` (learning curve), ``OUT/policy.pt`` + ``OUT/policy.json`` (the policy and its
card). Bad input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..errors import ParameterError
from .shared import run_guarded


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fgamcd-train", description="train a MAASN-DA policy")
    p.add_argument("scenario", nargs="?", default="paper-default",
                   help="generator scenario of the training instances (default paper-default)")
    p.add_argument("--instance", help="train on this fixed instance file instead")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="scenario parameter override (as fgamcd-gen --set)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--override", action="store_true",
                   help="with --resume: accept settings that differ from the checkpoint's "
                        "(the changes are recorded in the policy card)")
    p.add_argument("--pool", type=int, default=8,
                   help="training instances drawn from this many generator seeds "
                        "(0: a fresh instance every episode)")
    p.add_argument("--pool-seed0", type=int, default=1000,
                   help="first generator seed of the pool (held-out seeds stay below it)")
    p.add_argument("--storage-gb-choices", default="",
                   help="comma-separated C_n values (GB) spread over the pool, e.g. 1.25,0.25")
    p.add_argument("--eval-every", type=int, default=20,
                   help="greedy evaluation episodes every this many episodes (0: never)")
    p.add_argument("--eval-instances", type=int, default=2,
                   help="greedy evaluations run on the first this many pool instances")
    p.add_argument("--guard", action="store_true",
                   help="train with the coverage guard on, as the maasn solver acts "
                        "(docs/maasn.md)")
    p.add_argument("--guard-mode", choices=("additive", "fallback", "reserve", "reserve-local"),
                   default="additive",
                   help="with --guard: additive (the guard's copy first, the policy's on top), "
                        "reserve (the guard-only placement of every PB reserved at the start, "
                        "the policy's copies in the room it leaves), reserve-local (reserve, "
                        "plus the copies of guard-fill rule=local) or fallback (the guard "
                        "places a PB only when the policy placed it nowhere)")
    p.add_argument("--no-policy-migrations", action="store_true",
                   help="mask the agents' migration bits: with --guard the planner alone "
                        "decides migrations from the holders")
    p.add_argument("--max-users-per-node", type=int, default=14, help="observation padding P")
    p.add_argument("--delivery", choices=("planner", "group"), default="planner")
    p.add_argument("--max-cluster", type=int, default=3)
    p.add_argument("--delivery-effort", choices=("full", "quick"), default="quick",
                   help="planner search in training episodes: quick (one group, one candidate "
                        "per round: 5-7x fewer oracle calls) or full (the solver's planner); "
                        "the maasn solver always delivers with the full planner")
    p.add_argument("--reward-scale", type=float, default=10.0)
    p.add_argument("--r1", type=float, default=10.0)
    p.add_argument("--r2", type=float, default=10.0)
    p.add_argument("--updates-per-episode", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--buffer", type=int, default=20000)
    p.add_argument("--gamma", type=float, default=0.95)
    p.add_argument("--lr-actor", type=float, default=1e-4)
    p.add_argument("--lr-critic", type=float, default=1e-3)
    p.add_argument("--soft-tau", type=float, default=0.01)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--tau0", type=float, default=0.8)
    p.add_argument("--xi", type=float, default=1.12)
    p.add_argument("--attenuation", type=float, default=0.8)
    p.add_argument("--attenuation-every", type=int, default=10)
    p.add_argument("--reservoir", type=int, default=1024)
    p.add_argument("--algo", choices=("maasn", "qmix"), default="maasn",
                   help="maasn: MAASN-DA; qmix: QMIX-DA, the paper's baseline (per-agent DRQN, "
                        "epsilon-greedy with epsilon on the --explore-noise schedule, QMIX "
                        "mixing; docs/maasn.md section 9)")
    p.add_argument("--architecture", choices=("paper", "shared"), default="paper",
                   help="paper: per-agent networks over eq. 10's padded observation (one N); "
                        "shared: one set of networks for every agent over the graph observation "
                        "(any N and users per node; docs/maasn.md section 8)")
    p.add_argument("--mix", default="",
                   help="train on a scenario mix: 'generalist' (the shipped generalist's "
                        "distribution) or a JSON file of components (docs/maasn.md section 8); "
                        "needs --architecture shared")
    p.add_argument("--graph-n-max", type=int, default=12,
                   help="shared architecture: most nodes of an instance it serves")
    p.add_argument("--graph-u-max", type=int, default=64,
                   help="shared architecture: most users of an instance it serves")
    p.add_argument("--no-action-semantics", action="store_true", help="ablation: flat actor")
    p.add_argument("--no-value-decomposition", action="store_true",
                   help="ablation: independent critics, no mixer")
    p.add_argument("--augmentation", choices=("esn", "rnn", "cgan", "none"), default="esn",
                   help="predictor of the synthetic samples: esn (the paper's), or the "
                        "ablations rnn (GRU, all weights trained), cgan (conditional GAN), "
                        "none (docs/maasn.md section 10)")
    p.add_argument("--no-augmentation", action="store_true",
                   help="ablation: no synthetic samples (= --augmentation none)")
    p.add_argument("--aug-hidden", type=int, default=128,
                   help="rnn/cgan augmentation: GRU width / generator and discriminator width")
    p.add_argument("--aug-epochs", type=int, default=8,
                   help="rnn/cgan augmentation: training passes per episode")
    p.add_argument("--aug-history", type=int, default=4,
                   help="rnn/cgan augmentation: episodes trained on (this one and earlier)")
    p.add_argument("--aug-lr", type=float, default=1e-3, help="rnn augmentation: Adam step")
    p.add_argument("--no-observe-demand", action="store_true",
                   help="observation exactly as eq. 10 (without the bytes each node's users "
                        "still request)")
    p.add_argument("--observe-reserve", action="store_true",
                   help="with --guard-mode reserve: observe each node's room beyond the "
                        "guard's reservations and its users' later demand not reserved there")
    p.add_argument("--teacher", default="",
                   help="demonstrations: a solver whose plans on the training pool start the "
                        "actors (behaviour cloning) and stay in the actor loss (--bc-weight); "
                        "e.g. milp (docs/maasn.md)")
    p.add_argument("--teacher-param", action="append", default=[], metavar="NAME=VALUE",
                   help="parameter of the teacher solver (repeatable)")
    p.add_argument("--teacher-time-limit", type=float, default=300.0,
                   help="seconds per teacher run")
    p.add_argument("--bc-epochs", type=int, default=100,
                   help="behaviour-cloning passes over the demonstrations")
    p.add_argument("--bc-lr", type=float, default=1e-3)
    p.add_argument("--bc-weight", type=float, default=0.4,
                   help="weight of the behaviour-cloning term in the actor loss (with a "
                        "teacher; the Q term is normalised as in TD3+BC)")
    p.add_argument("--init-policy", default="",
                   help="start from this policy file's actor (e.g. the shipped teacher-started "
                        "policy, fgamcd_opt/data/policies/paper-default.pt) with fresh critics")
    p.add_argument("--actor-delay", type=int, default=0,
                   help="episodes of critic-only updates before the actor moves (with "
                        "--init-policy: the fresh critics first learn the policy's values)")
    p.add_argument("--critic-warmup", type=int, default=500,
                   help="critic-only updates on the demonstrations before episode 1")
    p.add_argument("--n-step", type=int, default=5,
                   help="n-step returns in the critic's targets (1: the paper's eq. 21)")
    p.add_argument("--reward-clip", type=float, default=20.0,
                   help="clip each step's reward below at minus this (0: no clipping)")
    p.add_argument("--no-shaping", action="store_true",
                   help="no potential-based reward shaping (Phi = -r2 x the storage deficit of "
                        "the later PBs, in PBs)")
    p.add_argument("--room-price", type=float, default=0.0,
                   help="shape the reward with Phi = -PRICE x the own later demand the nodes' "
                        "free room lacks, in PBs (undiscounted potential: a copy no local user "
                        "requests is charged when it takes room they will need; 0: off)")
    p.add_argument("--reward-reference", choices=("none", "idle"), default="none",
                   help="idle: train on each step's reward minus the reward of the same PB when "
                        "the policy asks for nothing (a constant per instance and step, so no "
                        "policy's ranking changes; most of the rewards' spread drops out)")
    p.add_argument("--explore-noise0", type=float, default=1.0,
                   help="exploration: scale of the Gumbel noise in the first episode (1: eq. 13)")
    p.add_argument("--explore-noise-final", type=float, default=0.1,
                   help="exploration: noise scale after --explore-decay episodes")
    p.add_argument("--explore-decay", type=int, default=300,
                   help="exploration: episodes over which the noise scale falls linearly")
    p.add_argument("--no-straight-through", action="store_true",
                   help="actor step and targets on relaxed Gumbel samples (the v2 learner) "
                        "instead of straight-through binary ones")
    p.add_argument("--actor-gradient", choices=("expected", "st"), default="expected",
                   help="the actor's gradient for the caching bit: expected (Q_n(1) - Q_n(0), "
                        "exact for a Bernoulli bit) or st (straight-through slope)")
    p.add_argument("--target-actions", choices=("greedy", "sample"), default="greedy",
                   help="target actor's actions in the critic target")
    p.add_argument("--cache-prior", type=float, default=None,
                   help="initial caching logit of every agent (e.g. -3: cache 5%% of the time "
                        "at first, near the coverage guard alone); default: the networks' own "
                        "initialisation")
    p.add_argument("--huber-delta", type=float, default=1.0,
                   help="critic loss: Huber threshold (0: squared error)")
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: reproducible)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes that plan each episode's deliveries after its steps (the "
                        "rewards filled in afterwards; 1: step by step)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _mix(args) -> tuple:
    """The scenario mix of --mix ('generalist' or a JSON file), validated; () without."""
    import json

    from ..marl.scenarios import GENERALIST, validate

    if not args.mix:
        return ()
    if args.mix == "generalist":
        mix = GENERALIST
    else:
        try:
            mix = tuple(json.loads(Path(args.mix).read_text()))
        except (OSError, ValueError) as exc:
            raise ParameterError(f"--mix {args.mix}: cannot read a JSON list of scenario "
                                 f"components ({exc})") from None
    validate(mix)
    return tuple(mix)


def _configs(args):
    from ..generators import generate, scenario_params_declared
    from ..instance_io import load_instance
    from ..marl.env import EnvConfig
    from ..marl.learner import LearnerConfig
    from ..marl.training import TrainConfig
    from ..params import parse_assignments, resolve

    if args.episodes < 1:
        raise ParameterError("--episodes: must be at least 1")
    if args.no_augmentation and args.augmentation not in ("esn", "none"):
        raise ParameterError(f"--no-augmentation: contradicts --augmentation "
                             f"{args.augmentation}")
    for name in ("aug_hidden", "aug_epochs", "aug_history"):
        if getattr(args, name) < 1:
            raise ParameterError(f"--{name.replace('_', '-')}: must be at least 1")
    given = parse_assignments(args.set)
    typed = resolve(scenario_params_declared(), given, owner="fgamcd-train --set")
    overrides = {k: typed[k] for k in given}
    try:
        choices = tuple(float(x) for x in args.storage_gb_choices.split(",") if x.strip())
    except ValueError:
        raise ParameterError(f"--storage-gb-choices: cannot read {args.storage_gb_choices!r} "
                             "as comma-separated numbers") from None
    inst = load_instance(args.instance) if args.instance else None
    mix = _mix(args)
    if mix and args.architecture != "shared":
        raise ParameterError("--mix: needs --architecture shared (the instances differ in N)")
    if inst is None and not mix:
        # parse overrides through the generator so a bad name/value fails here, in one line
        probe = generate(args.scenario, seed=args.pool_seed0, **overrides)
        del probe
    env_cfg = EnvConfig(scenario=args.scenario, overrides=overrides, instance=inst,
                        pool=args.pool, pool_seed0=args.pool_seed0,
                        storage_gb_choices=choices,
                        max_users_per_node=args.max_users_per_node,
                        reward_scale=args.reward_scale, r1=args.r1, r2=args.r2,
                        delivery=args.delivery, max_cluster=args.max_cluster,
                        effort=args.delivery_effort,
                        observe_demand=not args.no_observe_demand,
                        observe_reserve=args.observe_reserve, guard=args.guard,
                        guard_mode=args.guard_mode,
                        policy_migrations=not args.no_policy_migrations,
                        obs_format="graph" if args.architecture == "shared" else "flat",
                        graph_n_max=args.graph_n_max, graph_u_max=args.graph_u_max, mix=mix)
    teacher_params = {}
    if args.teacher:
        from ..registry import get_solver

        cls = get_solver(args.teacher)  # an unknown solver fails here, in one line
        given_t = parse_assignments(args.teacher_param)
        typed_t = resolve(cls.params, given_t, owner=f"--teacher-param ({args.teacher})")
        teacher_params = {k: typed_t[k] for k in given_t}
    elif args.teacher_param:
        raise ParameterError("--teacher-param: needs --teacher")
    learner_cfg = LearnerConfig(gamma=args.gamma, lr_actor=args.lr_actor,
                                lr_critic=args.lr_critic, soft_tau=args.soft_tau,
                                temperature=args.temperature,
                                action_semantics=not args.no_action_semantics,
                                value_decomposition=not args.no_value_decomposition,
                                bc_weight=args.bc_weight if args.teacher else 0.0,
                                straight_through=not args.no_straight_through,
                                actor_gradient=args.actor_gradient,
                                target_actions=args.target_actions,
                                huber_delta=args.huber_delta, architecture=args.architecture,
                                cache_prior=args.cache_prior, algo=args.algo)
    train_cfg = TrainConfig(episodes=args.episodes, seed=args.seed, batch=args.batch,
                            buffer=args.buffer, updates_per_episode=args.updates_per_episode,
                            augmentation=not (args.no_augmentation
                                              or args.augmentation == "none"),
                            augmenter="esn" if args.augmentation == "none" else args.augmentation,
                            aug_hidden=args.aug_hidden, aug_epochs=args.aug_epochs,
                            aug_history=args.aug_history, aug_lr=args.aug_lr,
                            tau0=args.tau0, xi=args.xi,
                            attenuation=args.attenuation,
                            attenuation_every=args.attenuation_every, reservoir=args.reservoir,
                            checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
                            eval_instances=args.eval_instances,
                            threads=args.threads, delivery_workers=args.workers,
                            init_policy=args.init_policy, actor_delay=args.actor_delay,
                            teacher=args.teacher,
                            teacher_params=teacher_params,
                            teacher_time_limit=args.teacher_time_limit,
                            bc_epochs=args.bc_epochs, bc_lr=args.bc_lr,
                            critic_warmup=args.critic_warmup, n_step=args.n_step,
                            reward_clip=args.reward_clip, shaping=not args.no_shaping,
                            room_price=args.room_price,
                            reward_reference=args.reward_reference,
                            explore_noise0=args.explore_noise0,
                            explore_noise_final=args.explore_noise_final,
                            explore_decay=args.explore_decay)
    return env_cfg, learner_cfg, train_cfg


def run(args) -> int:
    from ..marl.training import Trainer, plot_curve

    env_cfg, learner_cfg, train_cfg = _configs(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    command = "fgamcd-train " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    trainer = Trainer(env_cfg, learner_cfg, train_cfg, out, command=command)
    if args.override and not args.resume:
        raise ParameterError("--override: only with --resume")
    if args.resume:
        if trainer.load_checkpoint(override=args.override,
                                   log=lambda m: print(m, file=sys.stderr)):
            print(f"resuming after episode {trainer.episode} from {trainer.checkpoint_path()}",
                  file=sys.stderr)
        else:
            print(f"no checkpoint in {out}; starting from episode 0", file=sys.stderr)
    elif trainer.checkpoint_path().exists():
        raise ParameterError(f"{trainer.checkpoint_path()}: a checkpoint exists; pass --resume "
                             "to continue it or choose another --output")
    result = trainer.train(progress=not args.quiet)
    title = f"MAASN-DA, {env_cfg.instance.name if env_cfg.instance else env_cfg.scenario}, " \
            f"seed {train_cfg.seed}"
    plot_curve(out / "curve.csv", out / "curve.png", title)
    last = result.rows[-20:]
    if last:
        import numpy as np

        print(f"{result.episodes_done} episodes; last {len(last)}: mean reward "
              f"{np.mean([r['reward'] for r in last]):.3f}, mean delay "
              f"{np.mean([r['delay_s'] for r in last]):.4f} s, wall "
              f"{sum(r['wall_s'] for r in result.rows):.1f} s")
    print(f"policy: {result.policy_path} (card {result.policy_path.with_suffix('.json')}); "
          f"curve: {out / 'curve.csv'}, {out / 'curve.png'}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(run, args, prefix="fgamcd-train",
                       interrupted="fgamcd-train: interrupted; continue with --resume")


if __name__ == "__main__":
    sys.exit(main())
