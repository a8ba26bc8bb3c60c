"""Every built-in solver on the LLM scenarios and on paper-default: delays, milp's certified gap.

    python benchmarks/bench_llm.py --tag after                       # llm-7b/13b-calibrated
    python benchmarks/bench_llm.py --tag after --scenario paper-default \\
        --set storage_gb=0.25 --param group_bound_time=900

One row per (tag, scenario, overrides, seed, solver) in ``benchmarks/results/llm.json`` (or
``--output``), written atomically after every solver, so an interrupted run resumes where it
stopped. Per instance ``milp`` runs first (its wall time is then that of a fresh oracle memo) and
the other solvers share its oracle memo (the same beams for the same subproblems, so the delays
do not depend on the order; their solve times are lower than alone). Each row records the
evaluated delay, the solver's status, its solve time, its CPU time (this process and the
workers it joined), the 1-minute load average before and after, the summary of the per-PB
beam certificates of the run record (if it has them; group bounds for 30 s for milp,
per-user bounds for the others), and for milp its certified bound and gap. ``--tag`` names
the code version (``before``: a checkout of main run with its own PYTHONPATH, into its own
results file); ``--table FILE...`` prints the before/after comparison.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

from _common import ResultsFile

SOLVERS = ["milp", "coarse", "full-comp", "hybrid", "maasn", "nocoop", "tdma", "trimcaching",
           "replicate", "guard-only", "guard-fill"]
LLM = ["llm-7b-calibrated", "llm-13b-calibrated"]
CERTIFICATE_S = 30.0  # group bounds of milp's per-PB beam certificates (others: per-user only)


def _load() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def _cpu() -> float:
    """User + system CPU seconds of this process and its finished children (the group-bound
    workers): a load-independent measure of the work, close to the wall time on an idle
    machine (less where the 2 workers or HiGHS's 2 threads run in parallel)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _certificate_summary(meta: dict) -> dict | None:
    cert = meta.get("pb_certificates")
    if not cert:
        return None
    keys = ("transmissions", "min_ratio", "time_ratio", "group_bounds", "worst")
    return {k: cert.get(k) for k in keys if k in cert}


def run_instance(res: ResultsFile, tag: str, scenario: str, seed: int, overrides: dict,
                 solvers: list[str], milp_params: dict) -> None:
    from fgamcd_opt.generators import generate
    from fgamcd_opt.oracle import BeamformingOracle
    from fgamcd_opt.registry import builtin_solvers
    from fgamcd_opt.runner import run_solver

    key = {"tag": tag, "scenario": scenario, "overrides": overrides, "seed": seed}
    todo = [s for s in solvers if not res.has(**key, solver=s)]
    if not todo:
        return
    inst = generate(scenario, seed=seed, **overrides)
    oracle = BeamformingOracle("fast")
    classes = builtin_solvers()
    for name in sorted(todo, key=lambda s: s != "milp"):
        load0 = _load()
        t0, cpu0 = time.perf_counter(), _cpu()
        params = milp_params if name == "milp" else {}
        extra = {}
        if "certificate_time_s" in inspect.signature(run_solver).parameters:  # not before
            extra["certificate_time_s"] = CERTIFICATE_S if name == "milp" else 0.0
        run = run_solver(inst, classes[name], params, seed=0, oracle=oracle, **extra)
        rec = run.record
        meta = rec.metadata or {}
        row = {**key, "solver": name, "params": params, "delay_s": rec.total_delay_s,
               "delivered_delay_s": rec.delivered_delay_s, "verdict": rec.verdict,
               "solver_status": rec.solver_status,
               "qos_violating_users": rec.qos_violating_users,
               "undelivered_users": rec.undelivered_users, "solve_time_s": rec.solve_time_s,
               "wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - cpu0,
               "load_before": load0, "load_after": _load()}
        if name == "milp":
            row.update(bound_s=rec.bound_s, gap=rec.gap,
                       per_user_bound_s=meta.get("per_user_trivial_bound"),
                       group_bound=meta.get("group_bound"),
                       large_group_bound=meta.get("large_group_bound"),
                       total_time_s=meta.get("total_time_s"),
                       planner_primal_delay_s=meta.get("planner_primal_delay_s"))
        cert = _certificate_summary(meta)
        if cert is not None:
            row["pb_certificates"] = cert
        res.add(row)
        print(f"{tag} {scenario} {overrides} seed {seed} {name}: delay {rec.total_delay_s} "
              f"({rec.solver_status}, {rec.solve_time_s:.1f} s, load {load0:.2f})"
              + (f", bound {rec.bound_s}, gap {rec.gap}" if name == "milp" else ""),
              file=sys.stderr, flush=True)


def print_table(rows: list[dict], before: str, after: str) -> None:
    """Mean delay per (scenario, overrides, solver) for the two tags, and milp's gaps."""
    groups: dict = {}
    for r in rows:
        k = (r["scenario"], tuple(sorted(r["overrides"].items())), r["solver"])
        groups.setdefault(k, {}).setdefault(r["tag"], {})[r["seed"]] = r
    print("| scenario | solver | seeds | delay before s | delay after s | change | "
          "milp gap before | milp gap after |")
    print("|---|---|---|---|---|---|---|---|")
    for (scen, ov, solver), tags in sorted(groups.items()):
        b, a = tags.get(before, {}), tags.get(after, {})
        seeds = sorted(set(b) & set(a)) or sorted(set(b) | set(a))

        def mean(d, field, seeds=seeds):
            vals = [d[s].get(field) for s in seeds if s in d]
            if not vals or any(v is None for v in vals):
                return None
            return sum(vals) / len(vals)

        db, da = mean(b, "delay_s"), mean(a, "delay_s")
        ch = f"{100 * (da - db) / db:+.2f}%" if db and da else "-"
        gb, ga = mean(b, "gap"), mean(a, "gap")
        name = scen + "".join(f" {k}={v}" for k, v in ov)
        print(f"| {name} | {solver} | {','.join(map(str, seeds))} | "
              f"{'-' if db is None else f'{db:.4f}'} | {'-' if da is None else f'{da:.4f}'} | "
              f"{ch} | {'-' if gb is None else f'{100 * gb:.1f}%'} | "
              f"{'-' if ga is None else f'{100 * ga:.1f}%'} |")


def print_checks(rows: list[dict], before: str, after: str) -> None:
    """Per instance: milp against the best other solver (after), milp's gap, its wall and CPU
    time; per (scenario, solver): the largest per-seed change of the delay, after vs before."""
    inst: dict = {}
    for r in rows:
        k = (r["scenario"], tuple(sorted(r["overrides"].items())), r["seed"])
        inst.setdefault(k, {}).setdefault(r["tag"], {})[r["solver"]] = r
    print("\n| instance | milp after s | best other after s (solver) | milp below all | "
          "milp gap | milp wall s / CPU s (load) |")
    print("|---|---|---|---|---|---|")
    worst: dict = {}
    for (scen, ov, seed), tags in sorted(inst.items()):
        a, b = tags.get(after, {}), tags.get(before, {})
        for solver, ra in a.items():
            rb = b.get(solver)
            if rb and ra.get("delay_s") and rb.get("delay_s"):
                ch = (ra["delay_s"] - rb["delay_s"]) / rb["delay_s"]
                key = (scen + "".join(f" {k}={v}" for k, v in ov), solver)
                if key not in worst or ch > worst[key][0]:
                    worst[key] = (ch, seed)
        m = a.get("milp")
        if not m or m.get("delay_s") is None:
            continue
        others = [(r["delay_s"], s) for s, r in a.items() if s != "milp" and r.get("delay_s")]
        best = min(others) if others else (None, "-")
        below = best[0] is None or m["delay_s"] <= best[0] * (1 + 1e-9)
        name = scen + "".join(f" {k}={v}" for k, v in ov) + f" seed {seed}"
        gap = "-" if m.get("gap") is None else f"{100 * m['gap']:.2f}%"
        other = "-" if best[0] is None else f"{best[0]:.4f}"
        print(f"| {name} | {m['delay_s']:.4f} | {other} ({best[1]}) | "
              f"{'yes' if below else 'NO'} | {gap} | "
              f"{m['wall_s']:.0f} / {m.get('cpu_s', float('nan')):.0f} "
              f"({m['load_before']:.1f}) |")
    print("\n| scenario | solver | largest per-seed change after vs before (seed) |")
    print("|---|---|---|")
    for (scen, solver), (ch, seed) in sorted(worst.items()):
        print(f"| {scen} | {solver} | {100 * ch:+.2f}% ({seed}) |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tag", default="after", help="code version label, e.g. before / after")
    ap.add_argument("--scenario", nargs="+", default=LLM)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="scenario override, e.g. storage_gb=0.25")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="milp solver parameter, e.g. group_bound_time=900")
    ap.add_argument("--solvers", nargs="+", default=SOLVERS)
    ap.add_argument("--output", default="llm.json", help="file name under benchmarks/results/")
    ap.add_argument("--table", nargs="+", metavar="FILE",
                    help="print the before/after comparison of these results files (names "
                    "under benchmarks/results/; rows tagged as --compare says) and exit")
    ap.add_argument("--compare", nargs=2, default=["before", "after"], metavar=("BEFORE", "AFTER"),
                    help="the two tags --table compares (default: before after)")
    args = ap.parse_args(argv)
    if args.table:
        rows = [r for name in args.table for r in ResultsFile(name).rows]
        print_table(rows, *args.compare)
        print_checks(rows, *args.compare)
        return 0
    res = ResultsFile(args.output, {"benchmark": "llm"})
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    milp_params = {k: _value(v) for k, v in (s.split("=", 1) for s in args.param)}
    for scenario in args.scenario:
        for seed in args.seeds:
            run_instance(res, args.tag, scenario, seed, overrides, args.solvers, milp_params)
    print(f"wrote {res.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
