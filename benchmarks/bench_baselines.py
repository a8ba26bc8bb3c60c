"""Every built-in baseline on paper-default with several seeds: delay (migration + broadcast),
QoS violations, undelivered users and solve time; one row per (solver, seed).

    python benchmarks/bench_baselines.py [--seeds 0 1 2 3 4] [--solvers coarse trimcaching ...]

Prints a table per seed and the mean over seeds; writes benchmarks/results/baselines.json
(resumable: finished rows are kept and skipped on a rerun; --fresh starts over).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ResultsFile, table  # noqa: E402

from fgamcd_opt.generators import generate  # noqa: E402
from fgamcd_opt.jsonio import write_json_atomic  # noqa: E402
from fgamcd_opt.oracle import BeamformingOracle  # noqa: E402
from fgamcd_opt.registry import get_solver  # noqa: E402
from fgamcd_opt.runner import run_solver  # noqa: E402

DEFAULT = ["trimcaching", "nocoop", "tdma", "coarse", "hybrid", "full-comp"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--solvers", nargs="+", default=DEFAULT)
    ap.add_argument("--scenario", default="paper-default")
    ap.add_argument("--out", default="baselines.json")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="scenario override, e.g. storage_gb=0.5")
    args = ap.parse_args()
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = tuple(float(x) for x in value.split(",")) if "," in value else (
            int(value) if value.lstrip("-").isdigit() else float(value))
    res = ResultsFile(args.out, {"scenario": args.scenario, "overrides": args.set,
                                 "command": "python benchmarks/bench_baselines.py "
                                            + " ".join(sys.argv[1:])})
    if args.fresh:
        res.data["rows"] = []
    for seed in args.seeds:
        inst = generate(args.scenario, seed=seed, **overrides)
        oracle = BeamformingOracle()  # shared by the solvers of one instance (memoised)
        for name in args.solvers:
            if res.has(scenario=args.scenario, seed=seed, solver=name):
                continue
            run = run_solver(inst, get_solver(name), seed=seed, oracle=oracle)
            r = run.record
            ev = run.evaluation
            res.add({
                "scenario": args.scenario, "seed": seed, "solver": name, "verdict": r.verdict,
                "solver_status": r.solver_status, "complete": r.complete,
                "total_delay_s": r.total_delay_s, "delivered_delay_s": r.delivered_delay_s,
                "migration_delay_s": r.migration_delay_s,
                "broadcast_delay_s": r.broadcast_delay_s,
                "qos_violating_users": r.qos_violating_users,
                "qos_violating_units": sum(1 for v in ev.violations if v.kind in
                                           ("qos", "zero_rate")) if ev else None,
                "undelivered_users": r.undelivered_users, "solve_time_s": r.solve_time_s,
                "oracle_calls": r.oracle_calls, "oracle_cache_hits": r.oracle_cache_hits,
                "n_units": len(ev.units) if ev else None,
            })
            total = r.total_delay_s if r.total_delay_s is not None else float("inf")
            print(f"seed {seed} {name:12s} T={total:.3f}s ({r.solve_time_s:.1f}s)", flush=True)
    rows = [r for r in res.rows if r["scenario"] == args.scenario and r["seed"] in args.seeds]
    cols = [("seed", "seed", ""), ("solver", "solver", "12s"),
            ("delay s", "total_delay_s", ".3f"), ("migration s", "migration_delay_s", ".3f"),
            ("broadcast s", "broadcast_delay_s", ".3f"),
            ("QoS users", "qos_violating_users", "d"), ("undelivered", "undelivered_users", "d"),
            ("solve s", "solve_time_s", ".1f"), ("oracle calls", "oracle_calls", "d")]
    print(table(sorted(rows, key=lambda r: (r["seed"], r["solver"])), cols))
    mean_rows = []
    for name in args.solvers:
        rs = [r for r in rows if r["solver"] == name]
        if not rs:
            continue
        m = {"solver": name, "seeds": len(rs)}
        for key in ("total_delay_s", "migration_delay_s", "broadcast_delay_s",
                    "qos_violating_users", "undelivered_users", "solve_time_s"):
            # an incomplete plan's total is null in the record: its mean is infinite
            m[key] = float(np.mean([np.inf if r[key] is None else r[key] for r in rs]))
        mean_rows.append(m)
    print("\nmean over seeds")
    print(table(sorted(mean_rows, key=lambda r: r["total_delay_s"]),
                [("solver", "solver", "12s"), ("seeds", "seeds", "d"),
                 ("delay s", "total_delay_s", ".3f"), ("migration s", "migration_delay_s", ".3f"),
                 ("broadcast s", "broadcast_delay_s", ".3f"),
                 ("QoS users", "qos_violating_users", ".1f"),
                 ("undelivered", "undelivered_users", ".1f"), ("solve s", "solve_time_s", ".1f")]))
    res.data["summary"] = mean_rows
    write_json_atomic(res.path, res.data)


if __name__ == "__main__":
    main()
