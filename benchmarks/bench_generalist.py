"""Model selection for a policy trained on a scenario mix: candidate policies against
``guard-fill rule=local`` (what the reserve-local policy does when it asks for nothing) on
validation draws of the mix that are neither in the training pool nor a test seed.

    python benchmarks/bench_generalist.py validate runs/gen/ep150.pt runs/gen/s0/policy.pt \\
        --first-seed 2000 --instances 10

Draws generator seeds from ``--first-seed`` on (the generalist's pool is 1000-1063, the test
seeds of the figures and of ``bench_maasn.py quality`` are below 100) and keeps the
paper-default components (the LLM ones take minutes per solve on 2 cores); writes
``benchmarks/results/generalist_validation.json`` (one row per instance and policy, resumable).
docs/maasn.md section 8 quotes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ResultsFile  # noqa: E402

from fgamcd_opt.generators import generate  # noqa: E402
from fgamcd_opt.marl.scenarios import GENERALIST, draw  # noqa: E402
from fgamcd_opt.registry import get_solver  # noqa: E402
from fgamcd_opt.runner import run_solver  # noqa: E402

IDLE = "guard-fill"  # rule=local by default: the reserve-local policy asking for nothing


def cmd_validate(args) -> None:
    res = ResultsFile("generalist_validation.json",
                      {"command": "python benchmarks/bench_generalist.py "
                                  + " ".join(sys.argv[1:])})
    seed, kept = args.first_seed, 0
    names = list(args.policies) + [IDLE]
    while kept < args.instances:
        scenario, over = draw(GENERALIST, seed)
        seed += 1
        if scenario not in args.scenarios:
            continue
        kept += 1
        inst = generate(scenario, seed=seed - 1, **over)
        line = [f"seed {seed - 1} N={inst.n_nodes} U={inst.n_users} "
                f"C={over.get('storage_gb', float('nan')):.2f}"]
        for name in names:
            if not res.has(seed=seed - 1, policy=name):
                solver = IDLE if name == IDLE else "maasn"
                params = {"workers": 2} if name == IDLE else {"policy": name, "workers": 2}
                run = run_solver(inst, get_solver(solver), params)
                res.add({"seed": seed - 1, "scenario": scenario, "params": over,
                         "n_nodes": inst.n_nodes, "n_users": inst.n_users, "policy": name,
                         "total_delay_s": run.record.total_delay_s,
                         "undelivered_users": run.record.undelivered_users,
                         "qos_violating_users": run.record.qos_violating_users})
            row = next(r for r in res.data["rows"] if r["seed"] == seed - 1
                       and r["policy"] == name)
            line.append(f"{row['total_delay_s']:.4f}")
        print(" | ".join(line), flush=True)
    seeds = sorted({r["seed"] for r in res.data["rows"]})
    idle = {r["seed"]: r["total_delay_s"] for r in res.data["rows"] if r["policy"] == IDLE}
    for name in names:
        d = [r["total_delay_s"] for r in res.data["rows"] if r["policy"] == name]
        below = sum(r["total_delay_s"] < idle[r["seed"]] - 1e-9 for r in res.data["rows"]
                    if r["policy"] == name and r["seed"] in idle)
        print(f"{name}: mean total delay {np.mean(d):.4f} s over {len(d)} instances; below "
              f"{IDLE} on {below} of {len(seeds)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate")
    v.add_argument("policies", nargs="+", help="policy files or shipped names")
    v.add_argument("--first-seed", type=int, default=2000)
    v.add_argument("--instances", type=int, default=10)
    v.add_argument("--scenarios", nargs="+", default=["paper-default"],
                   help="mix components kept")
    args = ap.parse_args()
    {"validate": cmd_validate}[args.cmd](args)


if __name__ == "__main__":
    main()
