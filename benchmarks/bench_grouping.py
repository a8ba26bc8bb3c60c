"""Partial groups in the nocoop and full-comp baselines, on vs off (issue 10, item 1).

    python benchmarks/bench_grouping.py [--seeds 0 1 2 3 4] [--storage default 0.25] [--fresh]
        [--scenario paper-default]

For each storage (``default``: the scenario's C_n, 1.25 GB for paper-default; a number:
``storage_gb``, as ``fgamcd-solve --set storage_gb=0.25``), seed and solver, runs the solver
through the runner (``run_solver``, evaluator-scored) with ``grouping=false`` (the one-group
rule) and ``grouping=true``: delay, completeness, QoS-violating users, undelivered users, solve
time and oracle calls. Each run gets its own fresh fast oracle, so no run is timed on another's
memo (the sweep runner shares one per instance, which would flatter whichever runs second). The
1-minute load average is recorded before and after each run (the machine is shared); ``split``
counts the (PB, node set) pairs sent as several groups. Rows go to
benchmarks/results/baselines_grouping.json (another scenario: baselines_grouping_<scenario>.json;
resumable: finished rows are skipped; --fresh starts over); a per-seed table and the means over
seeds are printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import ResultsFile, table  # noqa: E402

from fgamcd_opt.generators import SCENARIOS, generate  # noqa: E402
from fgamcd_opt.jsonio import write_json_atomic  # noqa: E402
from fgamcd_opt.oracle import BeamformingOracle  # noqa: E402
from fgamcd_opt.registry import get_solver  # noqa: E402
from fgamcd_opt.runner import run_solver  # noqa: E402

NAME = "baselines_grouping.json"
SOLVERS = ("nocoop", "full-comp")
FIELDS = ("verdict", "complete", "total_delay_s", "delivered_delay_s", "migration_delay_s",
          "broadcast_delay_s", "qos_violating_users", "undelivered_users", "violations",
          "solve_time_s", "oracle_calls", "message")


def _storage(text: str) -> str:
    if text != "default":
        try:
            if float(text) <= 0:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--storage {text!r}: expected 'default' or a positive number of GB") from None
    return text


def run_row(scenario: str, storage: str, seed: int, solver: str, grouping: bool) -> dict:
    overrides = {} if storage == "default" else {"storage_gb": float(storage)}
    inst = generate(scenario, seed=seed, **overrides)
    load0 = os.getloadavg()[0]
    run = run_solver(inst, get_solver(solver), {"grouping": grouping}, seed=0,
                     oracle=BeamformingOracle("fast"))
    r = run.record.to_dict()  # JSON form: an infinite delay is null
    # transmissions per (PB, node set): more than one means the requesters were split
    per_tx: dict[tuple, int] = {}
    for unit in run.plan.units:
        key = (unit.block, tuple(unit.nodes))
        per_tx[key] = per_tx.get(key, 0) + 1
    return {
        "storage": storage, "seed": seed, "solver": solver, "grouping": grouping,
        **{f: r[f] for f in FIELDS}, "units": len(run.plan.units),
        "split": sum(c > 1 for c in per_tx.values()),
        "load_avg_1m_before": load0, "load_avg_1m_after": os.getloadavg()[0],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--storage", type=_storage, nargs="+", default=["default", "0.25"])
    ap.add_argument("--scenario", default="paper-default")
    ap.add_argument("--fresh", action="store_true", help="discard finished rows and start over")
    args = ap.parse_args()
    command = "python benchmarks/bench_grouping.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    if args.scenario not in SCENARIOS:
        print(f"error: --scenario {args.scenario!r}: known: {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    name = NAME if args.scenario == "paper-default" else \
        NAME.replace(".json", f"_{args.scenario}.json")
    if args.fresh and (HERE / "results" / name).exists():
        (HERE / "results" / name).unlink()
    out = ResultsFile(name, {"scenario": args.scenario, "command": command,
                             "oracle": "fast, a fresh memo per run", "time_limit_s": None,
                             "cores": os.cpu_count()})
    for storage in args.storage:
        for seed in args.seeds:
            for solver in SOLVERS:
                for grouping in (False, True):
                    key = dict(storage=storage, seed=seed, solver=solver, grouping=grouping)
                    if out.has(**key):
                        continue
                    row = run_row(args.scenario, storage, seed, solver, grouping)
                    out.add(row)
                    print(f"{storage} seed {seed} {solver} grouping={grouping}: "
                          f"{row['total_delay_s']} s, {row['solve_time_s']:.2f} s solve, "
                          f"load {row['load_avg_1m_before']:.2f}", flush=True)
    rows = [r for r in out.rows if r["storage"] in args.storage and r["seed"] in args.seeds]
    rows.sort(key=lambda r: (args.storage.index(r["storage"]), r["seed"],
                             SOLVERS.index(r["solver"]), r["grouping"]))
    print(table(rows, [
        ("storage", "storage", ""), ("seed", "seed", "d"), ("solver", "solver", "10s"),
        ("grouping", "grouping", ""), ("delay s", "total_delay_s", ".4f"),
        ("complete", "complete", ""), ("QoS users", "qos_violating_users", "d"),
        ("undelivered", "undelivered_users", "d"), ("units", "units", "d"),
        ("split", "split", "d"),
        ("solve s", "solve_time_s", ".2f"), ("oracle calls", "oracle_calls", "d"),
        ("load 1m", "load_avg_1m_before", ".2f")]))
    summary = []
    for storage in args.storage:
        for solver in SOLVERS:
            for grouping in (False, True):
                rs = [r for r in rows if (r["storage"], r["solver"], r["grouping"])
                      == (storage, solver, grouping)]
                if not rs:
                    continue
                summary.append({
                    "storage": storage, "solver": solver, "grouping": grouping,
                    "seeds": len(rs), "complete": sum(bool(r["complete"]) for r in rs),
                    # an incomplete plan's delay is null (infinite): so is the mean
                    "total_delay_s": None if any(r["total_delay_s"] is None for r in rs)
                    else float(np.mean([r["total_delay_s"] for r in rs])),
                    "delivered_delay_s": float(np.mean([r["delivered_delay_s"] for r in rs])),
                    "qos_violating_users": int(sum(r["qos_violating_users"] for r in rs)),
                    "solve_time_s": float(np.mean([r["solve_time_s"] for r in rs])),
                    "load_avg_1m": float(np.mean([r["load_avg_1m_before"] for r in rs]))})
    print("\nmean over seeds (QoS users: total over seeds; complete: plans out of seeds; "
          "delay '-': some plan incomplete, infinite)")
    print(table(summary, [
        ("storage", "storage", ""), ("solver", "solver", "10s"), ("grouping", "grouping", ""),
        ("seeds", "seeds", "d"), ("complete", "complete", "d"),
        ("delay s", "total_delay_s", ".4f"), ("delivered s", "delivered_delay_s", ".4f"),
        ("QoS users", "qos_violating_users", "d"), ("solve s", "solve_time_s", ".2f"),
        ("load 1m", "load_avg_1m", ".2f")]))
    out.data["summary"] = summary
    write_json_atomic(out.path, out.data)
    print(f"\nwrote {out.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
