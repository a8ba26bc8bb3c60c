"""Regions (fgamcd_opt/regions.py): speed-up on 1, 2 and 4 Dask workers, and the delay against
the unsplit solve where both finish (issue 20, item 3).

    python benchmarks/bench_regions.py speedup [--nodes 96] [--users 3000] [--solver hybrid]
                                               [--regions 8] [--workers 1 2 4]
    python benchmarks/bench_regions.py loss [--nodes 24] [--users 300] [--regions 4]
                                            [--solvers hybrid trimcaching ...] [--halo 600 0]

``speedup``: one metro instance (seed 0) split into ``--regions`` regions, solved on a local
Dask cluster of W worker processes for each W (the cluster's start-up excluded: it is started
before the clock): wall seconds of the regions' solve (the regions' CPU seconds summed, and the
split and stitch times, are recorded too). ``loss``: per solver, the unsplit solve's delay and
the stitched plan's (with each ``--halo`` radius, 0 = no halo nodes), scored by the evaluator on
the whole instance. The load average is recorded with every row (the machine is shared: with
more workers than free cores the speed-up says so). Writes benchmarks/results/regions.json
(resumable).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ResultsFile, table  # noqa: E402


def _instance(n: int, u: int):
    from fgamcd_opt.generators import generate

    return generate("metro", seed=0, n_nodes=n, n_users=u)


def speedup(args, res: ResultsFile) -> None:
    from fgamcd_opt.evaluator import evaluate
    from fgamcd_opt.experiments.executors import DaskExecutor
    from fgamcd_opt.regions import solve_regions

    inst = None
    for w in args.workers:
        key = dict(kind="speedup", N=args.nodes, U=args.users, solver=args.solver,
                   regions=args.regions, workers=w, halo_m=args.halo[0])
        if res.has(**key):
            continue
        inst = inst or _instance(args.nodes, args.users)
        ex = DaskExecutor(workers=w)
        try:
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            plan, info = solve_regions(inst, args.solver, {}, args.regions, ex,
                                       halo_m=args.halo[0])
            wall = time.perf_counter() - t0
            load1 = os.getloadavg()[0]
        finally:
            ex.close()
        ev = evaluate(inst, plan)
        row = {**key, "wall_s": wall, "solve_wall_s": info["solve_wall_s"],
               "region_cpu_s": info["region_cpu_s"], "split_s": info["split_s"],
               "stitch_s": info["stitch_s"], "oracle_calls": info["oracle_calls"],
               "total_delay_s": ev.total_delay_s if ev.complete else None,
               "complete": ev.complete, "load_start": load0, "load_end": load1,
               "per_region": info["per_region"], "cpus": os.cpu_count()}
        res.add(row)
        print(f"W={w}: {wall:.1f} s wall (regions' CPU {info['region_cpu_s']:.1f} s), "
              f"delay {row['total_delay_s']}, load {load0:.1f}-{load1:.1f}", flush=True)
    rows = [r for r in res.rows if r.get("kind") == "speedup" and r["N"] == args.nodes
            and r["U"] == args.users and r["solver"] == args.solver
            and r["regions"] == args.regions]
    base = next((r["wall_s"] for r in rows if r["workers"] == 1), None)
    for r in rows:
        r["speedup"] = base / r["wall_s"] if base else None
    print(table(sorted(rows, key=lambda r: r["workers"]), [
        ("workers", "workers", "d"), ("wall s", "wall_s", ".1f"),
        ("regions' CPU s", "region_cpu_s", ".1f"), ("speed-up", "speedup", ".2f"),
        ("load start", "load_start", ".1f"), ("load end", "load_end", ".1f")]))


def loss(args, res: ResultsFile) -> None:
    from fgamcd_opt.evaluator import evaluate
    from fgamcd_opt.oracle import BeamformingOracle
    from fgamcd_opt.regions import solve_regions
    from fgamcd_opt.registry import get_solver
    from fgamcd_opt.runner import run_solver

    inst = None
    for solver in args.solvers:
        key = dict(kind="loss", N=args.nodes, U=args.users, solver=solver,
                   regions=args.regions)
        if res.has(**key, halo_m=None):
            row_u = next(r for r in res.rows if r.get("kind") == "loss" and all(
                r.get(k) == v for k, v in key.items()) and r.get("halo_m") is None)
        else:
            inst = inst or _instance(args.nodes, args.users)
            c0 = time.process_time()
            rec = run_solver(inst, get_solver(solver), {}, seed=0,
                             oracle=BeamformingOracle()).record
            row_u = {**key, "halo_m": None, "total_delay_s": rec.total_delay_s,
                     "complete": rec.complete, "cpu_s": time.process_time() - c0,
                     "oracle_calls": rec.oracle_calls, "load": os.getloadavg()[0]}
            res.add(row_u)
        for halo in args.halo:
            if res.has(**key, halo_m=halo):
                continue
            inst = inst or _instance(args.nodes, args.users)
            c0 = time.process_time()
            plan, info = solve_regions(inst, solver, {}, args.regions, None, halo_m=halo)
            ev = evaluate(inst, plan)
            t = ev.total_delay_s
            ref = row_u["total_delay_s"]
            row = {**key, "halo_m": halo, "total_delay_s": t if ev.complete else None,
                   "complete": ev.complete, "cpu_s": time.process_time() - c0,
                   "oracle_calls": info["oracle_calls"], "load": os.getloadavg()[0],
                   "vs_unsplit": (t / ref - 1) if ev.complete and ref else None}
            res.add(row)
            print(f"{solver} halo {halo:g} m: {t:.4f} s vs unsplit {ref} "
                  f"({row['vs_unsplit']})", flush=True)
    rows = [r for r in res.rows if r.get("kind") == "loss" and r["N"] == args.nodes
            and r["U"] == args.users and r["regions"] == args.regions]
    print(table(rows, [("solver", "solver", ""), ("halo m", "halo_m", ""),
                       ("delay s", "total_delay_s", ".4f"), ("vs unsplit", "vs_unsplit", "+.4f"),
                       ("CPU s", "cpu_s", ".1f"), ("oracle calls", "oracle_calls", "d")]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["speedup", "loss"])
    ap.add_argument("--nodes", type=int, default=None)
    ap.add_argument("--users", type=int, default=None)
    ap.add_argument("--solver", default="hybrid")
    ap.add_argument("--solvers", nargs="+",
                    default=["trimcaching", "nocoop", "tdma", "coarse", "hybrid", "full-comp"])
    ap.add_argument("--regions", type=int, default=None)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--halo", type=float, nargs="+", default=[600.0, 0.0])
    ap.add_argument("--out", default="regions.json")
    args = ap.parse_args()
    if args.mode == "speedup":
        args.nodes, args.users = args.nodes or 96, args.users or 3000
        args.regions = args.regions or 8
    else:
        args.nodes, args.users = args.nodes or 24, args.users or 300
        args.regions = args.regions or 4
    res = ResultsFile(args.out, {"command": "python benchmarks/bench_regions.py "
                                            + " ".join(sys.argv[1:])})
    (speedup if args.mode == "speedup" else loss)(args, res)


if __name__ == "__main__":
    main()
