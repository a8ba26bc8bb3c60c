"""MAASN-DA numbers (docs/maasn.md): training time breakdown, inference time, and quality on
held-out generator seeds against the baselines.

    python benchmarks/bench_maasn.py training [--curve PATH] [--after E] [--note TEXT]
    python benchmarks/bench_maasn.py inference [--policy PATH]
    python benchmarks/bench_maasn.py quality --storage 1.25 [--seeds 0 .. 9] [--solvers ...]
                                     [--with-milp] [--policy PATH] [--maasn-episodes E]
    python benchmarks/bench_maasn.py curves --tag T RUN_DIR [RUN_DIR ...] [--block 50] [--storage C]
                                     [--versus-idle]
    python benchmarks/bench_maasn.py table --prefix P [--storages 0.25 0.5 1.25] [--group RE]
    python benchmarks/bench_maasn.py horizon [--storages 0.25 0.5] [--seeds 0 .. 9]

training: sums the per-episode timings of the learning curve (the shipped policy's by default):
  environment steps without the oracle, oracle, action selection, ESN augmentation, network
  updates, wall. inference: the decision time per step of the actors (mean over the steps of a
  rollout of instances/paper-default.json) and the wall time of the full command
  ``fgamcd-solve instances/paper-default.json --solver maasn`` (a fresh process: imports, policy
  load, rollout through the planner and oracle, evaluation). quality: seeds 0-9 of paper-default
  (the training pools use seeds >= 1000, so these are never seen in training) at the given C_n;
  one row per (seed, solver), a shared memoised oracle per instance; the gap is to milp's
  certified lower bound of that instance when milp ran. curves: the learning curves of several
  training runs (one per training seed, each a fgamcd-train output folder): per episode the mean
  and the spread (min, max) of the episode reward over the runs, block means of --block
  episodes, the greedy evaluations, and a PNG (benchmarks/results/maasn_curves_TAG.png).
  horizon: how many steps after a copy of a PB no user of the node requests the node first
  lacks room for a PB its own users request (guard-fill rule=all), and what gamma^d weighs it.
  Results in benchmarks/results/maasn_*.json (resumable: finished rows are skipped; --fresh
  starts over).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ResultsFile, table  # noqa: E402

from fgamcd_opt.generators import generate  # noqa: E402
from fgamcd_opt.jsonio import jsonable  # noqa: E402
from fgamcd_opt.oracle import BeamformingOracle  # noqa: E402
from fgamcd_opt.registry import get_solver  # noqa: E402
from fgamcd_opt.runner import run_solver  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ["trimcaching", "nocoop", "tdma", "coarse", "hybrid"]


def maasn_spec() -> str:
    """'maasn' once the registry lists it, else the plugin path (same class)."""
    from fgamcd_opt import registry

    return "maasn" if "maasn" in registry.available() else str(
        ROOT / "solvers" / "maasn.py") + ":MaasnSolver"


def cmd_training(args) -> None:
    from fgamcd_opt.marl.policy import shipped_policy_path

    path = Path(args.curve) if args.curve else shipped_policy_path().with_suffix(".curve.csv")
    rows = [r for r in csv.DictReader(open(path)) if int(r["episode"]) > args.after]
    if not rows:
        raise SystemExit(f"{path}: empty learning curve")

    def total(key):
        return float(sum(float(r[key]) for r in rows))

    wall, env, oracle = total("wall_s"), total("env_s"), total("oracle_s")
    out = {"curve": str(path), "note": args.note, "after_episode": args.after,
           "episodes": len(rows), "wall_s": wall,
           "env_without_oracle_s": env - oracle, "oracle_s": oracle, "act_s": total("act_s"),
           "esn_s": total("esn_s"), "update_s": total("update_s"),
           "other_s": wall - env - total("act_s") - total("esn_s") - total("update_s"),
           "wall_per_episode_s": wall / len(rows),
           "projected_600_episodes_min": wall / len(rows) * 600 / 60}
    # demonstrations (the card next to the curve): teacher runs, behaviour cloning, critic
    # warm-up happen before episode 1 and are not in the curve rows
    card = path.with_name(path.name.replace(".curve.csv", ".json").replace("curve.csv",
                                                                            "policy.json"))
    demo = json.loads(card.read_text()).get("demonstrations") if card.is_file() else None
    if demo and not args.after:
        pre = {k: float(demo[k]) for k in ("teacher_s", "bc_s", "critic_warmup_s")}
        out.update({f"pretrain_{k}": v for k, v in pre.items()},
                   pretrain_s=sum(pre.values()), total_with_pretrain_s=wall + sum(pre.values()),
                   total_with_pretrain_min=(wall + sum(pre.values())) / 60)
    for lo, hi in ((0, 50), (len(rows) - 50, len(rows))):
        part = rows[max(lo, 0):hi]
        out[f"episodes_{part[0]['episode']}_{part[-1]['episode']}_wall_per_episode_s"] = float(
            np.mean([float(r["wall_s"]) for r in part]))
    res = ResultsFile("maasn_training.json", {"command": "python benchmarks/bench_maasn.py "
                                              + " ".join(sys.argv[1:])})
    res.data["rows"] = [r for r in res.rows if (r.get("curve"), r.get("after_episode", 0))
                        != (str(path), args.after)] + [out]
    from fgamcd_opt.jsonio import write_json_atomic

    write_json_atomic(res.path, res.data)
    for k, v in out.items():
        print(f"{k:40s} {v:.2f}" if isinstance(v, float) else f"{k:40s} {v}")


def cmd_inference(args) -> None:
    from fgamcd_opt.instance_io import load_instance, save_instance

    if args.scenario:
        # a generated instance (e.g. N = 12, U = 60 for the generalist's decision time)
        over = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.gen_param)}
        inst = generate(args.scenario, seed=args.seed, **over)
        inst_path = Path(args.tmp) / f"bench-inference-{inst.name}.json"
        save_instance(inst, inst_path)
    else:
        inst_path = ROOT / "instances" / "paper-default.json"
        inst = load_instance(inst_path)
    params = {"policy": args.policy} if args.policy else {}
    spec = maasn_spec()
    cls = get_solver(spec)
    run_solver(inst, cls, params, oracle=BeamformingOracle())  # warm: imports, policy load
    runs = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        run = run_solver(inst, cls, params, oracle=BeamformingOracle())
        runs.append((time.perf_counter() - t0, run))
    roll = [r.result.metadata["rollout"] for _, r in runs]
    cmd = [sys.executable, "-m", "fgamcd_opt.cli.main", "solve", str(inst_path), "--solver",
           spec, "-o", str(Path(args.tmp) / "maasn.plan.json")]
    if args.policy:
        cmd += ["--param", f"policy={args.policy}"]
    walls = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"fgamcd-solve failed: {proc.stderr.strip()[-400:]}")
    rec = runs[0][1].record
    where = str(inst_path.relative_to(ROOT)) if inst_path.is_relative_to(ROOT) else \
        f"{args.scenario} seed {args.seed} {' '.join(args.gen_param)}".strip()
    out = {"instance": where, "n_nodes": inst.n_nodes, "n_users": inst.n_users,
           "policy": args.policy or "shipped", "steps": roll[0]["steps"],
           "bench_command": "python benchmarks/bench_maasn.py " + " ".join(sys.argv[1:]),
           "decision_s_per_step_mean": float(np.mean([r["decision_s_per_step"] for r in roll])),
           "rollout_s_cold_oracle_mean": float(np.mean([r["rollout_s"] for r in roll])),
           "solve_s_in_process_mean": float(np.mean([w for w, _ in runs])),
           "fgamcd_solve_wall_s": walls, "fgamcd_solve_wall_s_median": float(np.median(walls)),
           "command": " ".join(cmd[2:]).replace("fgamcd_opt.cli.main solve", "fgamcd-solve"),
           "total_delay_s": rec.total_delay_s, "qos_violating_users": rec.qos_violating_users,
           "undelivered_users": rec.undelivered_users}
    res = ResultsFile("maasn_inference.json", {"command": "python benchmarks/bench_maasn.py "
                                               + " ".join(sys.argv[1:])})
    # one row per (instance, policy): measuring another keeps the earlier rows
    res.data["rows"] = [r for r in res.data.get("rows", [])
                        if (r.get("instance"), r.get("policy", "shipped"))
                        != (out["instance"], out["policy"])] + [out]
    from fgamcd_opt.jsonio import write_json_atomic

    write_json_atomic(res.path, res.data)
    for k, v in out.items():
        print(f"{k:32s} {v}")


def cmd_quality(args) -> None:
    st = args.storage
    maasn = "maasn" if not args.maasn_episodes else f"maasn-ft{args.maasn_episodes}"
    if args.tag:
        maasn += f"[{args.tag}]"
    solvers = ([maasn] if not args.no_maasn else []) + [
        s for s in args.solvers if s != "maasn"] + (["milp"] if args.with_milp else [])
    res = ResultsFile(args.results or f"maasn_quality_storage{st:g}.json", {
        "scenario": "paper-default", "storage_gb": st, "held_out_seeds": args.seeds,
        "command": "python benchmarks/bench_maasn.py " + " ".join(sys.argv[1:])})
    if args.fresh:
        res.data["rows"] = []
    for seed in args.seeds:
        inst = generate("paper-default", seed=seed, storage_gb=st)
        oracle = BeamformingOracle()
        for name in solvers:
            if res.has(seed=seed, solver=name):
                continue
            is_maasn = name.startswith("maasn")
            spec = maasn_spec() if is_maasn else name.split("?")[0]
            params = {"policy": args.policy} if is_maasn and args.policy else {}
            if not is_maasn and "?" in name:  # e.g. guard-fill?rule=all
                params.update(kv.split("=", 1) for kv in name.split("?", 1)[1].split("&"))
            if is_maasn and args.maasn_episodes:
                params["episodes"] = args.maasn_episodes
            if is_maasn:
                params.update(dict(kv.split("=", 1) for kv in args.maasn_param))
            run = run_solver(inst, get_solver(spec), params, seed=seed, oracle=oracle)
            r = run.record
            row = {"seed": seed, "solver": name, "status": r.solver_status,
                   "verdict": r.verdict, "complete": r.complete,
                   "total_delay_s": r.total_delay_s, "delivered_delay_s": r.delivered_delay_s,
                   "migration_delay_s": r.migration_delay_s,
                   "broadcast_delay_s": r.broadcast_delay_s,
                   "qos_violating_users": r.qos_violating_users,
                   "undelivered_users": r.undelivered_users, "bound_s": r.bound_s,
                   "solve_time_s": r.solve_time_s, "message": r.message[:200]}
            if is_maasn:
                meta = run.result.metadata
                row["fine_tuned"] = meta.get("fine_tuned")
                row["decision_s_per_step"] = meta.get("rollout", {}).get(
                    "decision_s_per_step")
                # the policy's own rollout (before the polish) and, when fine-tuned, the
                # tuned policy's; which whole plan the solver returned (docs/maasn.md sec. 5)
                row["rollout_delay_s"] = meta.get("rollout", {}).get("delay_s")
                if "fine_tuned_rollout" in meta:
                    row["fine_tuned_rollout_delay_s"] = meta["fine_tuned_rollout"].get(
                        "delay_s")
                    row["fine_tune_episodes"] = meta.get("fine_tune_episodes")
                row["plan_source"] = meta.get("plan_source")
                row["fallback"] = meta.get("fallback")
            res.add(jsonable(row))
            print(f"C_n {st} seed {seed} {name:12s} T={r.total_delay_s} delivered "
                  f"{r.delivered_delay_s or 0:.3f}s undelivered {r.undelivered_users} qos "
                  f"{r.qos_violating_users} ({r.solve_time_s:.1f}s)", flush=True)
    rows = [r for r in res.rows if r["seed"] in args.seeds]
    bound = {r["seed"]: r["bound_s"] for r in rows if r["solver"] == "milp" and r["bound_s"]}
    summary = []
    for name in dict.fromkeys(r["solver"] for r in rows):
        rs = [r for r in rows if r["solver"] == name]
        complete = [r for r in rs if r["total_delay_s"] is not None]
        gaps = [(r["total_delay_s"] - bound[r["seed"]]) / r["total_delay_s"]
                for r in complete if r["seed"] in bound]
        summary.append({
            "solver": name, "runs": len(rs), "complete_runs": len(complete),
            "mean_delay_s_complete": float(np.mean([r["total_delay_s"] for r in complete]))
            if complete else None,
            "mean_delivered_delay_s": float(np.mean([r["delivered_delay_s"] or 0 for r in rs])),
            "mean_qos_users": float(np.mean([r["qos_violating_users"] or 0 for r in rs])),
            "mean_undelivered_users": float(np.mean([r["undelivered_users"] or 0 for r in rs])),
            "mean_gap_to_bound": float(np.mean(gaps)) if gaps else None,
            "mean_solve_s": float(np.mean([r["solve_time_s"] for r in rs]))})
    res.data["summary"] = jsonable(summary)
    from fgamcd_opt.jsonio import write_json_atomic

    write_json_atomic(res.path, res.data)
    print(table(summary, [("solver", "solver", "12s"), ("runs", "runs", "d"),
                          ("complete", "complete_runs", "d"),
                          ("delay s (complete)", "mean_delay_s_complete", ".3f"),
                          ("delivered s", "mean_delivered_delay_s", ".3f"),
                          ("QoS users", "mean_qos_users", ".1f"),
                          ("undelivered", "mean_undelivered_users", ".1f"),
                          ("gap", "mean_gap_to_bound", ".3f"),
                          ("solve s", "mean_solve_s", ".1f")]))


def idle_rewards(run_dir: Path, names: set) -> dict:
    """Eq. 12's episode reward of each named training instance (``paper-default-sSEED`` at
    the run's storages) when the policy asks for nothing, in the run's training environment
    (its card: guard, guard mode, delivery effort): what ``--reward-reference idle`` subtracts.
    Keyed by (instance name, storage)."""
    import re

    from fgamcd_opt.marl.env import EnvConfig, FgamcdParallelEnv
    from fgamcd_opt.marl.training import idle_rewards as idle_step_rewards

    card = json.loads((run_dir / "policy.json").read_text())
    envc = card["environment"]
    keep = ("reward_scale", "r1", "r2", "storage_ref_bytes", "guard", "guard_mode",
            "policy_migrations", "observe_demand", "observe_reserve", "effort", "max_cluster",
            "delivery")
    out = {}
    for name, st in sorted(names):
        m = re.fullmatch(r"(.+)-s(\d+)", name)
        inst = generate(m.group(1), seed=int(m.group(2)), storage_gb=st)
        env = FgamcdParallelEnv(EnvConfig(instance=inst,
                                          max_users_per_node=card["max_users_per_node"],
                                          **{k: envc[k] for k in keep if k in envc}))
        out[(name, st)] = float(idle_step_rewards(env, inst).sum())
    return out


def cmd_curves(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = []
    for d in args.runs:
        every = list(csv.DictReader(open(Path(d) / "curve.csv")))
        # a run over several storages: the episodes at --storage only, in their order
        rows = [x for x in every if args.storage is None
                or abs(float(x["storage_gb"]) - args.storage) < 1e-6]
        card = json.loads((Path(d) / "policy.json").read_text()) if (
            Path(d) / "policy.json").is_file() else {}
        runs.append({"dir": str(d), "rows": rows, "seed": card.get("training", {}).get("seed"),
                     "wall_s": sum(float(x["wall_s"]) for x in every),
                     "episodes_all": len(every)})
    n_ep = min(len(r["rows"]) for r in runs)
    if not n_ep:
        raise SystemExit("empty learning curves")
    rew = np.array([[float(x["reward"]) for x in r["rows"][:n_ep]] for r in runs])
    if args.versus_idle:
        # the reward relative to the policy that asks for nothing on the same instance: the
        # raw episode reward moves mostly with which pool instance was drawn
        for r in runs:
            names = {(x["instance"], float(x["storage_gb"])) for x in r["rows"][:n_ep]}
            idle = idle_rewards(Path(r["dir"]), names)
            r["idle"] = [idle[(x["instance"], float(x["storage_gb"]))] for x in r["rows"][:n_ep]]
        rew = rew - np.array([r["idle"] for r in runs])
    dly = np.array([[float(x["delay_s"]) for x in r["rows"][:n_ep]] for r in runs])
    bad = np.array([[float(x["qos_violations"]) + float(x["undelivered_pbs"])
                     for x in r["rows"][:n_ep]] for r in runs])
    blocks = []
    for lo in range(0, n_ep, args.block):
        hi = min(lo + args.block, n_ep)
        per_run = rew[:, lo:hi].mean(axis=1)
        blocks.append({"episodes": f"{lo + 1}-{hi}", "reward_mean": float(per_run.mean()),
                       "reward_min_run": float(per_run.min()),
                       "reward_max_run": float(per_run.max()),
                       "delay_s_mean": float(dly[:, lo:hi].mean()),
                       "penalised_pbs_mean": float(bad[:, lo:hi].mean())})
    evals = []
    for r in runs:
        evals.append([(int(x["episode"]), float(x["eval_delay_s"]),
                       float(x["eval_penalised_pbs"]))
                      for x in r["rows"][:n_ep] if x.get("eval_delay_s")])
    walls = [r["wall_s"] for r in runs]
    out = {"tag": args.tag, "runs": [r["dir"] for r in runs], "storage_gb": args.storage,
           "reward": "minus the idle policy's on the same instance" if args.versus_idle
           else "eq. 12",
           "episodes_per_run_all_storages": [r["episodes_all"] for r in runs],
           "seeds": [r["seed"] for r in runs], "episodes": n_ep, "block": args.block,
           "blocks": blocks, "greedy_evaluations": evals, "wall_s_per_run": walls,
           "first_block_reward": blocks[0]["reward_mean"],
           "last_block_reward": blocks[-1]["reward_mean"],
           "rises": bool(blocks[-1]["reward_mean"] > blocks[0]["reward_mean"])}
    res = ResultsFile(f"maasn_curves_{args.tag}.json", {
        "command": "python benchmarks/bench_maasn.py " + " ".join(sys.argv[1:])})
    res.data["rows"] = [out]
    from fgamcd_opt.jsonio import write_json_atomic

    write_json_atomic(res.path, res.data)
    ep = np.arange(1, n_ep + 1)

    def smooth(y, w=args.smooth):
        k = np.ones(min(w, len(y))) / min(w, len(y))
        return np.convolve(y, k, mode="valid")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    first = ("cumulative reward per episode minus the idle policy's" if args.versus_idle
             else "cumulative reward per episode (eq. 12)")
    for ax, y, label in ((axes[0], rew, first),
                         (axes[1], dly, "total delay of the episode (s)"),
                         (axes[2], bad, "PBs with QoS violation or undelivered")):
        sm = np.array([smooth(v) for v in y])
        x = ep[len(ep) - sm.shape[1]:]
        ax.fill_between(x, sm.min(axis=0), sm.max(axis=0), alpha=0.25, color="C0",
                        label=f"min-max over {len(runs)} training seeds")
        ax.plot(x, sm.mean(axis=0), color="C0", lw=1.6, label=f"mean (moving {args.smooth})")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("episode" if args.storage is None
                      else f"episode at C_n = {args.storage:g} GB (k-th of the run's)")
        ax.grid(alpha=0.3)
    for i, ev in enumerate(evals):
        # a run over several storages evaluates on its pool (all storages): not drawn against
        # the episodes of one storage
        if ev and args.storage is None:
            e, d, _ = zip(*ev, strict=True)
            axes[1].plot(e, d, "o-", ms=2.5, lw=0.8, color=f"C{i + 1}",
                         label=f"greedy eval, run {i + 1}")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"MAASN-DA learning curves: {args.tag}", fontsize=10)
    fig.tight_layout()
    png = res.path.with_suffix(".png")
    fig.savefig(png, dpi=100)
    plt.close(fig)
    fmt = ".3f" if args.versus_idle else ".1f"
    print(table(blocks, [("episodes", "episodes", "10s"), ("reward", "reward_mean", fmt),
                         ("min run", "reward_min_run", fmt),
                         ("max run", "reward_max_run", fmt),
                         ("delay s", "delay_s_mean", ".3f"),
                         ("penalised", "penalised_pbs_mean", ".1f")]))
    print(f"wall per run: {', '.join(f'{w / 60:.1f} min' for w in walls)}; {png}")


def cmd_table(args) -> None:
    """One table from several quality result files (benchmarks/results/PREFIX*_storageC.json):
    per storage and solver label the mean delay over the seeds where the plan is complete,
    how many of the seeds that is, the mean users below QoS / undelivered, and the gap to
    milp's certified bound; labels matching --group (a regex with one group) are also averaged
    over the matching labels (e.g. the training seeds of one recipe)."""
    import glob
    import re

    out = []
    for st in args.storages:
        rows = []
        for f in sorted(glob.glob(str(RESULTS / f"{args.prefix}*_storage{st:g}.json"))):
            rows += json.loads(Path(f).read_text())["rows"]
        rows = [r for r in rows if r["seed"] in args.seeds
                and not (args.exclude and re.fullmatch(args.exclude, r["solver"]))]
        bound = {r["seed"]: r["bound_s"] for r in rows if r["solver"] == "milp" and r["bound_s"]}
        labels = list(dict.fromkeys(r["solver"] for r in rows))
        groups: dict = {}
        for lab in labels:
            m = re.fullmatch(args.group, lab) if args.group else None
            if m:
                groups.setdefault(m.group(1), []).append(lab)
        entries = [(lab, [lab]) for lab in labels]
        entries += [(f"{g} (mean of {len(ls)})", ls) for g, ls in groups.items()]
        for lab, members in entries:
            rs = [r for r in rows if r["solver"] in members]
            done = [r for r in rs if r["total_delay_s"] is not None]
            gaps = [(r["total_delay_s"] - bound[r["seed"]]) / r["total_delay_s"]
                    for r in done if r["seed"] in bound]
            out.append({"storage_gb": st, "solver": lab, "runs": len(rs),
                        "complete": len(done),
                        "mean_delay_s": float(np.mean([r["total_delay_s"] for r in done]))
                        if done else None,
                        "qos_users": float(np.mean([r["qos_violating_users"] or 0 for r in rs])),
                        "undelivered_users": float(np.mean([r["undelivered_users"] or 0
                                                            for r in rs])),
                        "gap_to_bound": float(np.mean(gaps)) if gaps else None,
                        "mean_bound_s": float(np.mean(list(bound.values()))) if bound and
                        lab == "milp" else None})
    res = ResultsFile(f"maasn_table_{args.prefix}.json", {
        "command": "python benchmarks/bench_maasn.py " + " ".join(sys.argv[1:])})
    res.data["rows"] = out
    from fgamcd_opt.jsonio import write_json_atomic

    write_json_atomic(res.path, res.data)
    print(table(out, [("C_n", "storage_gb", "g"), ("solver", "solver", "30s"),
                      ("runs", "runs", "d"), ("complete", "complete", "d"),
                      ("delay s", "mean_delay_s", ".3f"), ("QoS users", "qos_users", ".1f"),
                      ("undelivered", "undelivered_users", ".1f"),
                      ("gap", "gap_to_bound", ".3f"), ("bound s", "mean_bound_s", ".3f")]))


def cmd_horizon(args) -> None:
    """How far ahead the cost of a copy no local user requests arrives: ``guard-fill`` rule
    ``all`` (every PB everywhere the reserve guard leaves room, in step order) on held-out
    seeds; per node, the steps at which a PB its own users request no longer fits, and for
    each copy of an unrequested PB the distance to the next such step at that node, with the
    weight gamma^d a discounted critic gives it."""
    from fgamcd_opt.marl.env import EnvConfig, FgamcdParallelEnv, own_requests
    from fgamcd_opt.marl.rollout import max_users_per_node
    from fgamcd_opt.marl.training import run_episode

    res = ResultsFile("maasn_horizon.json", {
        "command": "python benchmarks/bench_maasn.py horizon " + " ".join(sys.argv[2:])})
    for st in args.storages:
        dist, unreq, blocked, steps = [], 0, 0, []
        for seed in args.seeds:
            inst = generate("paper-default", seed=seed, storage_gb=st)
            pad = max_users_per_node(inst)
            env = FgamcdParallelEnv(EnvConfig(instance=inst, max_users_per_node=pad,
                                              guard=True, guard_mode="reserve",
                                              policy_migrations=False))
            env.defer_delivery = True  # placement only: no delivery is planned
            n = inst.n_nodes
            seen = []

            def fill(obs, mask, seen=seen, pad=pad):
                seen.append((own_requests(obs, pad) > 0, mask[:, 0] > 0))
                d = np.zeros_like(mask)
                d[:, 0] = 1
                return d

            ep = run_episode(env, fill, seed=0)
            own = np.array([o for o, _ in seen])
            fits = np.array([f for _, f in seen])
            copies = ep["act"][:, np.arange(n), np.arange(n)]
            steps.append(len(own))
            for i in range(n):
                blocks = np.flatnonzero(own[:, i] & ~fits[:, i])
                mine = np.flatnonzero(copies[:, i] & ~own[:, i])
                blocked += len(blocks)
                unreq += len(mine)
                nxt = np.searchsorted(blocks, mine, side="right")
                dist += (blocks[nxt[nxt < len(blocks)]] - mine[nxt < len(blocks)]).tolist()
        d = np.asarray(dist, float)
        row = {"storage_gb": st, "seeds": args.seeds, "steps_per_episode": float(np.mean(steps)),
               "unrequested_copies_per_episode": unreq / len(args.seeds),
               "own_pbs_blocked_per_episode": blocked / len(args.seeds),
               "copies_followed_by_a_block_per_episode": len(d) / len(args.seeds)}
        if len(d):
            row.update(distance_median=float(np.median(d)),
                       distance_p10=float(np.percentile(d, 10)),
                       distance_p90=float(np.percentile(d, 90)),
                       **{f"mean_weight_gamma_{g:g}": float(np.mean(g ** d))
                          for g in (0.95, 0.99)})
        res.data["rows"] = [r for r in res.rows if r.get("storage_gb") != st]
        res.add(row)
        print(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("training")
    t.add_argument("--curve", help="a fgamcd-train curve.csv (default: the shipped policy's)")
    t.add_argument("--after", type=int, default=0, help="only episodes after this one")
    t.add_argument("--note", default="", help="what the run was (stored with the row)")
    i = sub.add_parser("inference")
    i.add_argument("--policy", default="")
    i.add_argument("--repeat", type=int, default=3)
    i.add_argument("--tmp", default="/tmp")
    i.add_argument("--scenario", default="", help="a generated instance instead of "
                   "instances/paper-default.json")
    i.add_argument("--seed", type=int, default=0, help="--scenario: generator seed")
    i.add_argument("--gen-param", action="append", default=[], metavar="NAME=VALUE",
                   help="--scenario: generator parameter (JSON value; repeatable)")
    q = sub.add_parser("quality")
    q.add_argument("--storage", type=float, default=1.25)
    q.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    q.add_argument("--solvers", nargs="+", default=BASELINES,
                   help="registry names; NAME?P=V&Q=W passes parameters (the row's label)")
    q.add_argument("--with-milp", action="store_true")
    q.add_argument("--no-maasn", action="store_true", help="baselines only")
    q.add_argument("--policy", default="")
    q.add_argument("--tag", default="", help="label maasn rows maasn[TAG] (another policy)")
    q.add_argument("--maasn-episodes", type=int, default=0,
                   help="run maasn with episodes=E (fine-tuning), reported as maasn-ftE")
    q.add_argument("--maasn-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter of the maasn solver (e.g. guard_mode=reserve)")
    q.add_argument("--fresh", action="store_true")
    q.add_argument("--results", help="results file name under benchmarks/results (default "
                   "maasn_quality_storageC.json)")
    tb = sub.add_parser("table")
    tb.add_argument("--prefix", required=True, help="results files PREFIX*_storageC.json")
    tb.add_argument("--storages", type=float, nargs="+", default=[0.25, 0.5, 1.25])
    tb.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    tb.add_argument("--exclude", default="", help="regex: labels left out")
    tb.add_argument("--group", default="", help="regex with one group: labels averaged "
                    "together, e.g. 'maasn\\[(scratch)-s\\d\\]'")
    c = sub.add_parser("curves")
    c.add_argument("runs", nargs="+", help="fgamcd-train output folders (one per seed)")
    c.add_argument("--tag", required=True, help="name of the result files")
    c.add_argument("--block", type=int, default=50, help="episodes per block mean")
    c.add_argument("--storage", type=float, default=None,
                   help="runs over several storages: only their episodes at this C_n (GB)")
    c.add_argument("--smooth", type=int, default=20, help="moving-average window of the PNG")
    c.add_argument("--versus-idle", action="store_true",
                   help="the episode reward minus that of the policy that asks for nothing on "
                        "the same instance (the runs' training environment)")
    h = sub.add_parser("horizon")
    h.add_argument("--storages", type=float, nargs="+", default=[0.25, 0.5])
    h.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    args = ap.parse_args()
    {"horizon": cmd_horizon, "training": cmd_training, "inference": cmd_inference,
     "quality": cmd_quality, "table": cmd_table, "curves": cmd_curves}[args.cmd](args)


if __name__ == "__main__":
    main()
