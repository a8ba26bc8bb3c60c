"""Benchmark of the MILP solver and of every built-in solver's gap to the certified bound.

    python benchmarks/bench_milp.py                       # paper-default, seeds 0-4
    python benchmarks/bench_milp.py --seeds 0 1 --set storage_gb=0.25 --output x.json

For each seed: the ``milp`` solver's build time (pyomo model + translation to HiGHS, both
MILPs), HiGHS solve time, final MIP gaps, the certified bound and the evaluated delay of its plan,
then each other built-in solver's evaluated delay and its gap to the bound,
(delay - bound) / delay. Plans whose evaluation the bound does not cover (storage, eq. 2/3,
power or malformed violations, or a reachable (user, PB) pair served at no finite delay) are
marked. A table is printed; all records go to JSON (default benchmarks/results/milp.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from fgamcd_opt.generators import generate
from fgamcd_opt.oracle import BeamformingOracle
from fgamcd_opt.params import parse_assignments
from fgamcd_opt.registry import builtin_solvers
from fgamcd_opt.runner import run_solver

BASELINES = ["milp", "coarse", "full-comp", "hybrid", "nocoop", "tdma", "trimcaching"]
INVALIDATING = {"storage", "migration_source", "not_holding", "power", "malformed"}


def bound_covers(inst, ev, excluded: set[tuple[int, int]]) -> bool:
    """Whether the certified bound applies to this evaluated plan (docs/milp.md, validity)."""
    if any(v.kind in INVALIDATING for v in ev.violations):
        return False
    served = {(u, r.block) for r in ev.units if np.isfinite(r.delay_s) for u in r.users}
    needed = {(int(u), int(k)) for u, k in zip(*np.nonzero(inst.demand), strict=True)}
    return needed - excluded <= served


def _num(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "," in text:
        return tuple(float(x) for x in text.split(","))
    return text


def run_seed(scenario: str, seed: int, overrides: dict, solvers: list[str],
             milp_params: dict) -> dict:
    inst = generate(scenario, seed=seed, **overrides)
    oracle = BeamformingOracle("fast")  # one memo per instance: solvers share subproblems
    classes = builtin_solvers()
    t0 = time.perf_counter()
    mrun = run_solver(inst, classes["milp"], milp_params, seed=0, oracle=oracle)
    m = mrun.record.metadata
    bound = mrun.record.bound_s
    excluded = set()
    for u_id, k_id in m.get("excluded", []):
        excluded.add((inst.users.ids.index(u_id), inst.repository.block_index[k_id]))
    row = {
        "scenario": scenario, "seed": seed, "overrides": overrides, "instance": inst.name,
        "milp_status": mrun.record.solver_status,
        "milp_wall_s": time.perf_counter() - t0,
        "build_s": m.get("build_time_s"), "solve_s": m.get("solve_time_s"),
        "oracle_s": m.get("oracle_time_s"), "oracle_calls": m.get("oracle_calls"),
        "bound_gap": m.get("optimistic_gap"), "primal_gap": m.get("mip_gap"),
        "bound": bound, "bound_certified": m.get("bound_certified"),
        "trivial_bound": m.get("trivial_bound"), "excluded_pairs": m.get("excluded_pairs"),
        "optimistic": m.get("optimistic"), "oracle_model": m.get("oracle_model"),
        "planner_primal_delay": m.get("planner_primal_delay_s"),
        "per_user_bound": m.get("per_user_trivial_bound"), "group_bound": m.get("group_bound"),
        "cluster_bound_rounds": m.get("cluster_bound_rounds"),
        "milp_total_s": m.get("total_time_s"),
        "solvers": {},
    }
    for name in ["milp", *[s for s in solvers if s != "milp"]]:
        run = mrun if name == "milp" else run_solver(inst, classes[name], seed=0, oracle=oracle)
        ev = run.evaluation
        rec = run.record
        delay = rec.total_delay_s
        covered = ev is not None and bound_covers(inst, ev, excluded)
        row["solvers"][name] = {
            "verdict": rec.verdict, "solver_status": rec.solver_status, "delay": delay,
            "gap_to_bound": (delay - bound) / delay if delay and bound is not None else None,
            "record_gap": rec.gap,
            "bound_covers": covered, "qos_violating_users": rec.qos_violating_users,
            "undelivered_users": rec.undelivered_users, "solve_time_s": rec.solve_time_s,
            "violations": ev.summary(inst)["violations_by_kind"] if ev else None,
        }
        if covered and bound is not None and bound > delay:
            print(f"  !! bound {bound:.6f} above {name}'s delay {delay:.6f}", file=sys.stderr)
    return row


def _fmt(v, spec=".3f") -> str:
    if v is None:
        return "-"
    return format(v, spec)


def print_table(rows: list[dict], solvers: list[str]) -> None:
    head = (f"{'seed':>4} {'total_s':>7} {'build_s':>7} {'solve_s':>7} {'oracle_s':>8} "
            f"{'grp_s':>6} {'gap_b%':>6} {'gap_p%':>6} {'pu_bnd':>7} {'bound':>7} {'milp':>7} "
            f"{'milp%':>6}")
    others = [s for s in solvers if s != "milp"]
    head += "".join(f" {s[:11]:>11} {'%':>5}" for s in others)
    print(head)
    for r in rows:
        mil = r["solvers"]["milp"]
        mil_gap = None if mil["gap_to_bound"] is None else 100 * mil["gap_to_bound"]
        grp = (r.get("group_bound") or {}).get("time_s")
        line = (f"{r['seed']:>4} {_fmt(r.get('milp_total_s'), '.1f'):>7} "
                f"{_fmt(r['build_s'], '.2f'):>7} {_fmt(r['solve_s'], '.2f'):>7} "
                f"{_fmt(r['oracle_s'], '.1f'):>8} {_fmt(grp, '.1f'):>6} "
                f"{_fmt(None if r['bound_gap'] is None else 100 * r['bound_gap'], '.2f'):>6} "
                f"{_fmt(None if r['primal_gap'] is None else 100 * r['primal_gap'], '.2f'):>6} "
                f"{_fmt(r.get('per_user_bound')):>7} {_fmt(r['bound']):>7} "
                f"{_fmt(mil['delay']):>7} "
                f"{_fmt(mil_gap, '.1f'):>6}")
        for s in others:
            d = r["solvers"].get(s, {})
            g = d.get("gap_to_bound")
            mark = "" if d.get("bound_covers") else "*"
            mark += "q" if d.get("qos_violating_users") else ""
            line += (f" {_fmt(d.get('delay')):>11}"
                     f" {_fmt(None if g is None else 100 * g, '.1f') + mark:>5}")
        print(line)
    print("gap_b / gap_p: final MIP gap of the bound / oracle-rate MILP; milp% and the other %: "
          "(delay - bound) / delay; * = the bound does not cover that plan (see docstring); "
          "q = some user below QoS; pu_bnd = the per-user (Cauchy-Schwarz) bound alone; "
          "delays and bound in seconds")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="paper-default")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="scenario override, e.g. storage_gb=0.25")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="milp solver parameter, e.g. time_limit=60")
    ap.add_argument("--solvers", nargs="*", default=None,
                    help="default: milp and the planner/baseline solvers")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "milp.json"))
    args = ap.parse_args(argv)
    overrides = {k: _num(v) for k, v in parse_assignments(args.set).items()}
    solvers = BASELINES if args.solvers is None else args.solvers
    rows = []
    for seed in args.seeds:
        t = time.perf_counter()
        rows.append(run_seed(args.scenario, seed, overrides, solvers,
                             parse_assignments(args.param)))
        print(f"seed {seed} done in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    print_table(rows, solvers)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "milp", "scenario": args.scenario, "overrides": overrides,
        "milp_params": parse_assignments(args.param), "machine": platform.platform(),
        "python": platform.python_version(), "rows": rows}, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
