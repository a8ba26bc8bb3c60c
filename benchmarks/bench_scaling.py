"""How gen, info, every solver and the evaluator scale with U and N (issues 9 and 20).

    python benchmarks/bench_scaling.py [--cap 30] [--users 30 300 3000 30000] [--nodes 6 12 24]
                                       [--tasks gen info trimcaching ... evaluate] [--out NAME]
                                       [--scenario paper-default|metro] [--workers W]
                                       [--milp-time-limit S]

Each cell (task, N, U) runs in its own process (``--worker``) on the scenario (paper-default:
a 1 km square whatever N; metro: paper-default's node density, the square growing with N) with
``n_users=U n_nodes=N`` (seed 0), under a CPU-time cap (RLIMIT_CPU; the machine is shared,
so wall time would measure other people's load): a cell that exceeds it is stopped and recorded
as ``time_cap``, and the larger U of that (task, N) and the larger N at that U and
beyond are recorded as ``skipped`` without being run. Per cell: wall time, the phase times
the task reports, CPU seconds of the worker and of the processes it waited for (a solver's
``workers``), peak resident memory (the largest of the worker and its children, ru_maxrss),
oracle calls, the requested (user, PB) pairs and the load average at the start and the end.
The printed table ends with the log-log slope of solve CPU against requested pairs per
(task, N) between the smallest and the largest U that finished. Tasks:

- ``gen``: ``generate`` + ``save_instance`` (what ``fgamcd-gen`` does);
- ``info``: ``load_instance`` + ``summary`` + ``qos_reachability`` (what ``fgamcd-info`` does);
- a solver name: ``fgamcd_opt.runner.run_solver`` (solve + evaluate, the fast oracle, no time
  limit; ``milp`` with ``--milp-time-limit``; ``maasn`` needs a policy trained for that N,
  recorded as ``not_applicable`` otherwise); solvers with a ``workers`` parameter get
  ``--workers``;
- ``evaluate``: ``evaluate`` of a nocoop-shaped plan with matched-filter beams built without
  the oracle (:func:`own_cell_plan`), on a freshly loaded instance.

Writes benchmarks/results/scaling.json (resumable: finished cells are kept) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import ResultsFile, table  # noqa: E402

from fgamcd_opt.jsonio import jsonable  # noqa: E402

SOLVERS = ("trimcaching", "nocoop", "tdma", "coarse", "hybrid", "full-comp", "milp", "maasn",
           "replicate", "guard-only", "guard-fill")
TASKS = ("gen", "info", *SOLVERS, "evaluate")
WALL_FACTOR = 8  # wall-clock safety net: this many times the CPU cap


def _instance_path(work: Path, n: int, u: int, scenario: str = "paper-default") -> Path:
    prefix = "pd" if scenario == "paper-default" else scenario
    return work / f"{prefix}-N{n}-U{u}.json"


def _solver_class(name: str):
    import importlib

    from fgamcd_opt.registry import BUILTIN_SOLVERS

    module, cls = BUILTIN_SOLVERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def worker(task: str, n: int, u: int, work: Path, cap: float, scenario: str = "paper-default",
           workers: int = 1, milp_time_limit: float = 300.0) -> dict:
    """Run one cell in this process; returns the measured phases."""
    from fgamcd_opt.instance_io import load_instance, save_instance

    path = _instance_path(work, n, u, scenario)
    out: dict = {"load_start": os.getloadavg()[0]}
    use0 = resource.getrusage(resource.RUSAGE_SELF)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = use0.ru_utime + use0.ru_stime  # imports excluded
    kcpu0 = kids0.ru_utime + kids0.ru_stime
    t0 = time.perf_counter()
    if task == "gen":
        from fgamcd_opt.generators import generate

        inst = generate(scenario, seed=0, n_users=u, n_nodes=n)
        out["generate_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        save_instance(inst, path)
        out["save_s"] = time.perf_counter() - t1
        out["file_mb"] = path.stat().st_size / 1e6
        out["K"] = inst.n_blocks
    elif task == "info":
        from fgamcd_opt.bounds import qos_reachability

        inst = load_instance(path)
        out["load_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        inst.summary()
        out["summary_s"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        qos_reachability(inst)
        out["reachability_s"] = time.perf_counter() - t1
    elif task == "evaluate":
        from fgamcd_opt.evaluator import evaluate
        from fgamcd_opt.oracle import BeamformingOracle

        inst = load_instance(path)
        out["load_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        plan = own_cell_plan(inst)
        out["plan_s"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        ev = evaluate(inst, plan, BeamformingOracle())
        out["evaluate_s"] = time.perf_counter() - t1
        out["units"] = len(plan.units)
        out["total_delay_s"] = ev.total_delay_s
    else:
        from fgamcd_opt.oracle import BeamformingOracle
        from fgamcd_opt.runner import run_solver

        inst = load_instance(path)
        out["load_s"] = time.perf_counter() - t0
        out["requested_pairs"] = int(sum(len(inst.requesters(k))
                                         for k in inst.requested_blocks))
        cls = _solver_class(task)
        declared = {p.name for p in cls.params}
        params = {"workers": workers} if "workers" in declared else {}
        # no time limit except milp's: the cell measures the whole solve (the CPU cap stops it)
        limit = milp_time_limit if task == "milp" else None
        t1 = time.perf_counter()
        run = run_solver(inst, cls, params, seed=0, oracle=BeamformingOracle(),
                         time_limit_s=limit)
        rec = run.record
        if task == "maasn" and rec.solver_status == "error" and "polic" in rec.message:
            return {"status": "not_applicable", "message": rec.message[:200]}
        use = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.update(solve_s=rec.solve_time_s, eval_s=rec.eval_time_s,
                   oracle_calls=rec.oracle_calls, solver_status=rec.solver_status,
                   total_delay_s=rec.total_delay_s, complete=rec.complete,
                   qos_violating_users=rec.qos_violating_users, params=params,
                   time_limit_s=limit, run_wall_s=time.perf_counter() - t1,
                   units=len(run.plan.units) if run.plan else None)
    out["wall_s"] = time.perf_counter() - t0
    use = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the worker and of the processes it waited for (a solver's workers): the
    # machine is shared, so wall times carry other people's load
    out["cpu_s"] = use.ru_utime + use.ru_stime - cpu0
    out["children_cpu_s"] = kids.ru_utime + kids.ru_stime - kcpu0
    out["peak_rss_mb"] = max(use.ru_maxrss, kids.ru_maxrss) / 1e3
    out["load_end"] = os.getloadavg()[0]
    return out


def _limit_cpu(cap: float):
    def apply() -> None:  # in the worker, before exec: the kernel stops it after `cap` CPU s
        soft = max(1, math.ceil(cap))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))
    return apply


def own_cell_plan(inst):
    """A nocoop-shaped plan built without the oracle, so that the evaluator can be timed at any
    U: every node caches the PBs its own users request and broadcasts each to them with a
    matched-filter beam (sum of the group's normalised channels, scaled to P_max). The delay is
    not the point (storage may be exceeded; the evaluator reports it), the evaluation work is:
    one unit per (node, requested PB), every requested (user, PB) pair scored."""
    import numpy as np

    from fgamcd_opt.plan import DeliveryUnit, Plan

    holds = np.zeros((inst.n_nodes, inst.n_blocks), dtype=bool)
    units = []
    for k in inst.requested_blocks:
        req = inst.requesters(k)
        for node in np.unique(inst.users.node[req]):
            users = req[inst.users.node[req] == node]
            h = inst.channel(int(k), users)[node]  # (V, M)
            w = (h / np.linalg.norm(h, axis=1, keepdims=True)).sum(axis=0)
            w *= np.sqrt(inst.nodes.power_max_w[node]) / np.linalg.norm(w)
            holds[node, k] = True
            units.append(DeliveryUnit(int(k), users.tolist(), (int(node),), beams=w[None, :]))
    return Plan.from_holds(holds, units=units, solver="own-cell")


def run_cell(task: str, n: int, u: int, work: Path, cap: float, scenario: str = "paper-default",
             workers: int = 1, milp_time_limit: float = 300.0) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", task, "--n", str(n),
           "--u", str(u), "--work", str(work), "--cap", str(cap), "--scenario", scenario,
           "--workers", str(workers), "--milp-time-limit", str(milp_time_limit)]
    t0 = time.perf_counter()
    try:
        # one thread per worker: the machine is shared and BLAS threads would blur the curves
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        # the cap is on CPU time (RLIMIT_CPU), which other people's load does not inflate;
        # the wall-clock timeout is only a safety net
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=WALL_FACTOR * cap,
                           env=env, preexec_fn=_limit_cpu(cap))
    except subprocess.TimeoutExpired:
        return {"status": "time_cap", "wall_s": time.perf_counter() - t0,
                "message": f"wall clock above {WALL_FACTOR * cap:g} s"}
    if p.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return {"status": "time_cap", "wall_s": time.perf_counter() - t0,
                "message": f"CPU time above {cap:g} s"}
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"status": "error", "message": last[:300],
                "wall_s": time.perf_counter() - t0}
    row = json.loads(p.stdout.strip().splitlines()[-1])
    row.setdefault("status", "ok")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap", type=float, default=30.0, help="CPU-time cap per cell, s")
    ap.add_argument("--users", type=int, nargs="+", default=[30, 300, 3000, 30000])
    ap.add_argument("--nodes", type=int, nargs="+", default=[6, 12, 24])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--out", default="scaling.json")
    ap.add_argument("--scenario", default="paper-default", choices=["paper-default", "metro"])
    ap.add_argument("--workers", type=int, default=1, help="the solvers' workers parameter")
    ap.add_argument("--milp-time-limit", type=float, default=300.0, help="milp's time limit, s")
    ap.add_argument("--work", default=None, help="folder for the generated instances "
                    "(default: $TMPDIR/fgamcd-scaling-work)")
    ap.add_argument("--worker", choices=TASKS, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--u", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    # instances and plans are scratch data: outside the source tree
    work = Path(args.work) if args.work else Path(tempfile.gettempdir()) / "fgamcd-scaling-work"
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.u, work, args.cap, args.scenario,
                                args.workers, args.milp_time_limit)))
        return
    work.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/bench_scaling.py " + " ".join(sys.argv[1:])
    res = ResultsFile(args.out, {"command": command.strip(), "cap_s": args.cap,
                                 "scenario": f"{args.scenario}, seed 0",
                                 "workers": args.workers,
                                 "milp_time_limit_s": args.milp_time_limit})
    users, nodes = sorted(args.users), sorted(args.nodes)
    capped: dict[str, list[tuple[int, int]]] = {}  # task -> cells (N, U) that hit the cap

    def beyond(task: str, n: int, u: int) -> tuple[int, int] | None:
        for cn, cu in capped.get(task, []):
            if n >= cn and u >= cu:
                return cn, cu
        return None

    for n in nodes:
        for u in users:
            for task in args.tasks:
                if res.has(task=task, N=n, U=u):
                    old = next(r for r in res.rows if r["task"] == task and r["N"] == n
                               and r["U"] == u)
                    if old["status"] in ("time_cap", "skipped"):
                        capped.setdefault(task, []).append((n, u))
                    continue
                hit = beyond(task, n, u)
                inst_path = _instance_path(work, n, u, args.scenario)
                if hit is None and task != "gen" and not inst_path.exists():
                    row = {"status": "skipped", "message": "no instance (gen did not finish)"}
                elif hit is not None:
                    row = {"status": "skipped",
                           "message": f"N={hit[0]}, U={hit[1]} exceeded the {args.cap:g} s cap"}
                else:
                    row = run_cell(task, n, u, work, args.cap, args.scenario, args.workers,
                                   args.milp_time_limit)
                if row["status"] in ("time_cap", "skipped"):
                    capped.setdefault(task, []).append((n, u))
                row = jsonable({"task": task, "N": n, "U": u, **row})  # inf delay -> null
                res.add(row)
                print(f"{task:12s} N={n:3d} U={u:6d} {row['status']:8s} "
                      f"{row.get('wall_s', float('nan')):8.2f} s  "
                      f"cpu {row.get('cpu_s', float('nan')):8.2f} s  "
                      f"{row.get('peak_rss_mb', float('nan')):7.0f} MB  "
                      f"{row.get('message', '')}", flush=True)
    print()
    print(format_table(res.rows, args.tasks, nodes, users))
    slopes = solve_slopes(res.rows, args.tasks, nodes)
    if slopes:
        print("\nlog-log slope of solve CPU against requested pairs (smallest to largest U "
              "that finished):")
        for (task, n), (lo, hi, slope) in sorted(slopes.items()):
            print(f"  {task:12s} N={n:3d}: U {lo} -> {hi}: {slope:.2f}")
        res.data["slopes"] = {f"{t}/N{n}": {"U_from": lo, "U_to": hi, "slope": sl}
                              for (t, n), (lo, hi, sl) in slopes.items()}
        from fgamcd_opt.jsonio import write_json_atomic

        write_json_atomic(res.path, res.data)


def solve_slopes(rows: list[dict], tasks, nodes) -> dict:
    """(task, N) -> (U_lo, U_hi, slope) of log(solve CPU) against log(requested pairs)
    between the smallest and the largest U whose cell finished (solver tasks only)."""
    out = {}
    for task in tasks:
        if task not in SOLVERS:
            continue
        for n in nodes:
            ok = sorted((r for r in rows if r["task"] == task and r["N"] == n
                         and r["status"] == "ok" and r.get("requested_pairs")
                         and r.get("solve_s")), key=lambda r: r["U"])
            if len(ok) < 2:
                continue
            lo, hi = ok[0], ok[-1]
            cpu = [r["cpu_s"] + r.get("children_cpu_s", 0.0) - r.get("eval_s", 0.0)
                   for r in (lo, hi)]
            if min(cpu) <= 0:
                continue
            out[(task, n)] = (lo["U"], hi["U"], math.log(cpu[1] / cpu[0])
                              / math.log(hi["requested_pairs"] / lo["requested_pairs"]))
    return out


def format_table(rows: list[dict], tasks, nodes, users) -> str:
    """Wall seconds per cell (tasks x N as rows, U as columns); '>cap' and 'skip' marked."""
    out = []
    for task in tasks:
        for n in nodes:
            r = {"task": task, "N": n}
            for u in users:
                cell = next((x for x in rows if x["task"] == task and x["N"] == n
                             and x["U"] == u), None)
                if cell is None:
                    r[f"U={u}"] = "-"
                elif cell["status"] == "ok":
                    cpu = cell.get("cpu_s", math.nan) + cell.get("children_cpu_s", 0.0)
                    calls = (f" {cell['oracle_calls']} calls" if "oracle_calls" in cell
                             else "")
                    r[f"U={u}"] = (f"{cell['wall_s']:.1f} / {cpu:.1f} s"
                                   f" {cell['peak_rss_mb']:.0f} MB{calls}")
                else:
                    r[f"U={u}"] = {"time_cap": ">cap", "skipped": "skip",
                                   "not_applicable": "n/a"}.get(cell["status"], cell["status"])
            out.append(r)
    cols = [("task", "task", "12s"), ("N", "N", "3d")] + [
        (f"U={u}: wall / CPU, peak RSS, oracle calls", f"U={u}", "36s") for u in users]
    return table(out, cols)


if __name__ == "__main__":
    main()
