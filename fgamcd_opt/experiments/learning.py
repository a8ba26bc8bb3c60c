"""The learning study (paper section V-C, Fig. 7): spec kind ``learning``.

A spec of this kind lists training *variants* (``fgamcd-train`` arguments: MAASN-DA, QMIX-DA,
the ablations), *storages* (C_n, each with its episodes and training seeds) and held-out
generator seeds. ``fgamcd-bench SPEC --size quick|full`` then

1. trains every (storage, training seed, variant) with ``fgamcd-train`` in its own folder
   ``DIR/runs/<storage>/<variant>/seed<S>/`` (one subprocess per run, handed to the sweep
   executors: local processes or Dask; in this process with the inline executor); a finished
   run (its ``policy.json`` has the episodes asked for) is skipped, an interrupted one
   continues with ``fgamcd-train --resume``;
2. evaluates each final policy greedily on the held-out generator seeds (below the training
   pool's ``pool_seed0``) in the environment it was trained in, the plan scored by the
   evaluator (``heldout.json`` in the run's folder, kept on a rerun);
3. renders ``DIR/index.md`` / ``index.html``: per storage the cumulative reward per episode
   (eq. 12 summed over the episode's steps) with the mean and the spread (min-max) over the
   training seeds (``DIR/figures/fig0<figure>.png``, e.g. fig07b.png for ``figure = "7b"``), the
   curves as ``DIR/curves.csv``, the final greedy held-out delay of each variant
   (``DIR/final.csv``), whether the paper's ordering holds per variant, and where and how long
   it ran.

Options (``[options]`` of the spec; docs/experiments.md and ``reports/specs/fig07.toml``)::

    train_args = ["--pool", "16", ...]     # fgamcd-train arguments of every run
    heldout_seeds = [0, 1, 2, 3, 4]        # generator seeds of the final evaluation
    smooth = 10                            # moving-average window of the figures (episodes)
    [[options.storages]]                   # one figure each, in this order
    gb = 0.25
    figure = "7b"
    episodes = 600
    seeds = [0, 1, 2]                      # training seeds
    args = []                              # fgamcd-train arguments of this storage's runs
    [[options.variants]]
    name = "maasn"                         # folder name
    label = "MAASN-DA"
    args = []                              # extra fgamcd-train arguments
    reference = true                       # the variant the others are compared with
    [[options.orderings]]                  # the paper's claims checked in the report
    better = "maasn"
    worse = "qmix"
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .spec import Spec, SpecError, spec_summary


# ---- the spec's options ---------------------------------------------------------------------
def study_plan(spec: Spec) -> dict:
    """The validated options of a learning spec: storages, variants, runs (one SpecError
    naming the key otherwise)."""
    o = spec.options

    def bad(key, msg):
        raise SpecError(spec.path, f"options.{key}", msg)

    storages = o.get("storages")
    if not isinstance(storages, list) or not storages:
        bad("storages", "need at least one [[options.storages]] entry (gb, episodes, seeds)")
    out_st = []
    for i, st in enumerate(storages):
        if not isinstance(st, dict):
            bad(f"storages[{i}]", "must be a table")
        extra = sorted(set(st) - {"gb", "figure", "episodes", "seeds", "args"})
        if extra:
            bad(f"storages[{i}].{extra[0]}", "unknown key (gb, figure, episodes, seeds, args)")
        st_args = st.get("args", [])
        if not isinstance(st_args, list) or not all(isinstance(a, str) for a in st_args):
            bad(f"storages[{i}].args", "must be a list of strings (fgamcd-train arguments)")
        gb, ep, seeds = st.get("gb"), st.get("episodes"), st.get("seeds")
        if not isinstance(gb, int | float) or isinstance(gb, bool) or not gb > 0:
            bad(f"storages[{i}].gb", f"must be a positive number of GB, got {gb!r}")
        if not isinstance(ep, int) or isinstance(ep, bool) or ep < 1:
            bad(f"storages[{i}].episodes", f"must be an integer >= 1, got {ep!r}")
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
                or len(set(seeds)) != len(seeds)):
            bad(f"storages[{i}].seeds", "must be a non-empty list of distinct integers")
        out_st.append({"gb": float(gb), "figure": str(st.get("figure", f"{i + 1}")),
                       "episodes": ep, "seeds": list(seeds), "tag": f"{float(gb):g}gb",
                       "args": list(st_args)})
    if len({s["tag"] for s in out_st}) != len(out_st):
        bad("storages", "repeated gb")
    variants = o.get("variants")
    if not isinstance(variants, list) or not variants:
        bad("variants", "need at least one [[options.variants]] entry (name, label, args)")
    out_v = []
    for i, v in enumerate(variants):
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v["name"] \
                or any(c in v["name"] for c in "/\\ "):
            bad(f"variants[{i}].name", "required: a non-empty string without spaces or "
                "slashes")
        extra = sorted(set(v) - {"name", "label", "args", "reference"})
        if extra:
            bad(f"variants[{i}].{extra[0]}", "unknown key (name, label, args, reference)")
        args = v.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            bad(f"variants[{i}].args", "must be a list of strings (fgamcd-train arguments)")
        out_v.append({"name": v["name"], "label": str(v.get("label", v["name"])),
                      "args": list(args), "reference": bool(v.get("reference", False))})
    names = [v["name"] for v in out_v]
    if len(set(names)) != len(names):
        bad("variants", "repeated name")
    refs = [v["name"] for v in out_v if v["reference"]] or [names[0]]
    if len(refs) > 1:
        bad("variants", "more than one reference variant")
    train_args = o.get("train_args", [])
    if not isinstance(train_args, list) or not all(isinstance(a, str) for a in train_args):
        bad("train_args", "must be a list of strings (fgamcd-train arguments)")
    for a in train_args + [a for v in out_v for a in v["args"]] + [
            a for st in out_st for a in st["args"]]:
        if a in ("-o", "--output", "--episodes", "--seed", "--resume", "--storage-gb-choices",
                 "--set", "--instance"):
            bad("train_args", f"{a} is set by the study, not the spec")
    held = o.get("heldout_seeds", [0, 1, 2, 3, 4])
    if (not isinstance(held, list) or not held
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in held)):
        bad("heldout_seeds", "must be a non-empty list of generator seeds >= 0")
    pool_seed0 = _pool_seed0(train_args)
    if max(held) >= pool_seed0:
        bad("heldout_seeds", f"must stay below the training pool's first seed {pool_seed0}")
    smooth = o.get("smooth", 10)
    if not isinstance(smooth, int) or smooth < 1:
        bad("smooth", "must be an integer >= 1")
    orderings = o.get("orderings", [])
    if not isinstance(orderings, list):
        bad("orderings", "must be a list of {better, worse} tables")
    for i, od in enumerate(orderings):
        if not isinstance(od, dict) or od.get("better") not in names \
                or od.get("worse") not in names:
            bad(f"orderings[{i}]", f"better and worse must name variants ({', '.join(names)})")
    runs = [{"storage": st["tag"], "gb": st["gb"], "episodes": st["episodes"], "seed": s,
             "variant": v["name"], "args": train_args + st["args"] + v["args"]}
            for st in out_st for s in st["seeds"] for v in out_v]
    return {"storages": out_st, "variants": out_v, "reference": refs[0], "runs": runs,
            "heldout_seeds": list(held), "smooth": smooth, "orderings": orderings,
            "train_args": train_args}


def _pool_seed0(args: list[str]) -> int:
    for i, a in enumerate(args[:-1]):
        if a == "--pool-seed0":
            return int(args[i + 1])
    return 1000  # fgamcd-train's default


def run_dir(out: Path, run: dict) -> Path:
    return Path(out) / "runs" / run["storage"] / run["variant"] / f"seed{run['seed']}"


def train_command(spec: Spec, run: dict, folder: Path, resume: bool) -> list[str]:
    """The fgamcd-train command of one run (``python -m fgamcd_opt.cli.train``)."""
    def value(v):
        return ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)

    sets = [x for k, v in spec.params.items() for x in ("--set", f"{k}={value(v)}")]
    return [sys.executable, "-m", "fgamcd_opt.cli.train", spec.scenario, *sets,
            "-o", str(folder), "--episodes", str(run["episodes"]), "--seed", str(run["seed"]),
            "--storage-gb-choices", f"{run['gb']:g}", "--quiet", *run["args"],
            *(["--resume"] if resume else [])]


def episodes_done(folder: Path) -> int:
    """Episodes of the final policy in ``folder`` (0: none yet)."""
    try:
        card = json.loads((folder / "policy.json").read_text())
        return int(card["training"]["episodes_done"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


# ---- step 1: training runs (executed by the sweep executors) -------------------------------
def train_task(item: dict) -> dict:
    """Run one fgamcd-train (a picklable task for the executors): skipped when its policy has
    the episodes asked for, resumed when a checkpoint exists. Appends its wall time and the load
    average before and after to ``runs.jsonl`` in the run's folder."""
    folder = Path(item["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    if episodes_done(folder) >= item["episodes"]:
        return {**item, "state": "skipped"}
    resume = (folder / "checkpoint.pt").exists() or (folder / "checkpoint.prev.pt").exists()
    cmd = item["resume_cmd"] if resume else item["cmd"]
    load0 = _loadavg()
    t0 = time.time()
    with open(folder / "train.log", "a") as log:
        if item.get("in_process"):
            rc = _train_in_process(cmd[3:], log)
        else:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=item.get("cwd"),
                                check=False).returncode
    wall = time.time() - t0
    rec = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), "wall_s": wall,
           "rc": rc, "resumed": resume, "in_process": bool(item.get("in_process")),
           "load_before": load0,
           "load_after": _loadavg(), "host": os.uname().nodename}
    with open(folder / "runs.jsonl", "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    ok = rc == 0 and episodes_done(folder) >= item["episodes"]
    return {**item, "state": "done" if ok else "failed", "rc": rc, "wall_s": wall}


def _train_in_process(argv: list[str], log) -> int:
    """fgamcd-train in this process (the inline executor: tests and debugging), its output
    to ``log`` and its card's command as the subprocess would record it."""
    import contextlib

    from ..cli.train import main

    saved = sys.argv
    sys.argv = ["fgamcd-train", *argv]
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            return main(argv)
    finally:
        sys.argv = saved


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


# ---- step 2: greedy evaluation on held-out seeds -------------------------------------------
_ORACLES: dict = {}  # one memoising oracle per held-out instance, shared by the policies


def heldout_task(item: dict) -> dict:
    """Greedy rollout of a run's final policy on each held-out seed, in the environment of
    its training (its card: delivery, effort, cluster cap, guard), the plan scored by the
    evaluator. Writes ``heldout.json`` (kept when its seeds match)."""
    import torch

    from ..evaluator import evaluate
    from ..generators import generate
    from ..marl.policy import Policy
    from ..marl.rollout import rollout
    from ..oracle import default_oracle

    torch.set_num_threads(1)
    folder = Path(item["dir"])
    path = folder / "heldout.json"
    try:
        old = json.loads(path.read_text())
        if old.get("seeds") == item["seeds"] and old.get("episodes") == item["episodes"]:
            return {**item, "state": "skipped"}
    except (OSError, ValueError):
        pass
    policy = Policy.load(folder / "policy.pt")
    envc = policy.card.get("environment", {})
    rows = []
    for s in item["seeds"]:
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in item["params"].items()}
        inst = generate(item["scenario"], seed=int(s), storage_gb=item["gb"], **kw)
        key = (item["scenario"], int(s), item["gb"], json.dumps(item["params"], sort_keys=True))
        oracle = _ORACLES.get(key)
        if oracle is None:
            oracle = _ORACLES[key] = default_oracle()
        cfg = policy.env_config(inst, delivery=envc.get("delivery", "planner"),
                                max_cluster=int(envc.get("max_cluster", 3)),
                                effort=envc.get("effort", "quick"),
                                guard=bool(envc.get("guard", False)))
        t0 = time.perf_counter()
        env, stats = rollout(inst, cfg, policy.act, oracle, seed=0, workers=1)
        ev = evaluate(inst, env.plan(policy.algo), oracle)
        rows.append({"seed": int(s), "delay_s": float(ev.total_delay_s)
                     if math.isfinite(ev.total_delay_s) else None,
                     "delivered_delay_s": float(ev.delivered_delay_s),
                     "complete": bool(ev.complete), "qos_violations": ev.count("qos"),
                     "penalised_pbs": int(stats["penalised_pbs"]),
                     "reward": float(stats["reward"]), "wall_s": time.perf_counter() - t0})
    path.write_text(json.dumps({"seeds": item["seeds"], "episodes": item["episodes"],
                                "rows": rows}, indent=1))
    return {**item, "state": "done"}


# ---- the whole study -----------------------------------------------------------------------
def run_learning(spec: Spec, out_dir, executor, command: str = "", train: bool = True,
                 progress: bool = True) -> Path:
    """Train (resumable), evaluate on the held-out seeds and render the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = study_plan(spec)
    root = str(Path(__file__).resolve().parents[2])
    (out / "spec.json").write_text(json.dumps({"summary": spec_summary(spec),
                                               "options": spec.options}, indent=1))
    t0 = time.time()
    counts = {"done": 0, "skipped": 0, "failed": 0}
    if train:
        from .executors import InlineExecutor

        # the inline executor trains in this process (no interpreter start per run)
        inline = isinstance(executor, InlineExecutor)
        items = []
        for run in plan["runs"]:
            d = run_dir(out, run)
            items.append({**run, "dir": str(d), "cwd": root, "in_process": inline,
                          "cmd": train_command(spec, run, d, False),
                          "resume_cmd": train_command(spec, run, d, True)})

        def crashed(item, exc):
            return {**item, "state": "failed", "error": f"{type(exc).__name__}: {exc}"}

        for i, res in enumerate(executor.map_unordered(train_task, items, crashed), 1):
            counts[res["state"]] = counts.get(res["state"], 0) + 1
            if progress:
                print(f"[{i}/{len(items)}] {res['storage']} {res['variant']} seed "
                      f"{res['seed']}: {res['state']}"
                      + (f" in {res['wall_s']:.0f} s" if "wall_s" in res else ""),
                      file=sys.stderr, flush=True)
        held = [{"dir": str(run_dir(out, r)), "seeds": plan["heldout_seeds"], "gb": r["gb"],
                 "episodes": r["episodes"], "scenario": spec.scenario,
                 "params": spec.params} for r in plan["runs"]
                if episodes_done(run_dir(out, r)) >= r["episodes"]]
        for res in executor.map_unordered(heldout_task, held, crashed):
            counts["heldout_" + res["state"]] = counts.get("heldout_" + res["state"], 0) + 1
    elapsed = time.time() - t0
    log = {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
           "elapsed_s": round(elapsed, 1), "executor": getattr(executor, "description", "?"),
           "size": spec.size, "counts": counts, "load_after": _loadavg(), "train": train}
    with open(out / "study-log.jsonl", "a") as fh:
        fh.write(json.dumps(log) + "\n")
    from .learning_report import write_report

    return write_report(spec, plan, out)


def read_curve(folder: Path) -> list[dict]:
    try:
        with open(folder / "curve.csv") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def mean_std(x) -> tuple[float, float]:
    a = np.asarray([v for v in x if v is not None and np.isfinite(v)], float)
    if not len(a):
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0
