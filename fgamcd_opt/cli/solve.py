"""fgamcd-solve, fgamcd-eval, fgamcd solvers and fgamcd schema: running solvers, scoring plans,
listing solvers and printing file-format schemas. (fgamcd_opt/cli/main.py dispatches; instance
commands live there.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import FgamcdError
from .shared import _common, _fmt_bytes


def _print_evaluation(inst, ev, header: str) -> None:
    s = ev.summary(inst)
    print(header)
    print(f"  status {s['status']}: total delay {s['total_delay_s']:.4f} s "
          f"(migration {s['migration_delay_s']:.4f} s = {100 * s['migration_share']:.1f}%, "
          f"broadcast {s['broadcast_delay_s']:.4f} s = {100 * s['broadcast_share']:.1f}%)")
    print(f"  {s['n_units']} delivery units, {s['n_migrations']} migrations; "
          f"{s['requested_pairs']} requested (user, PB) pairs")
    used, cap = s["storage_used_bytes"], s["storage_capacity_bytes"]
    print("  storage used per node: " + ", ".join(
        f"{inst.nodes.ids[n]} {100 * used[n] / cap[n]:.0f}%" if cap[n] else
        f"{inst.nodes.ids[n]} {_fmt_bytes(used[n])}" for n in range(len(used))))
    if ev.violations:
        kinds = ", ".join(f"{k}: {v}" for k, v in s["violations_by_kind"].items())
        print(f"  violations ({len(ev.violations)}): {kinds}")
        print(f"  users below QoS or at zero rate: {s['qos_violating_users']}; undelivered "
              f"users: {s['undelivered_users']}")
        for v in ev.violations[:8]:
            d = v.to_dict(inst)
            who = "; ".join(f"{key} {','.join(d[key])}" for key in ("nodes", "users", "blocks")
                            if d[key])
            print(f"    - {v.kind}: {v.message} [{who}]")
        if len(ev.violations) > 8:
            print(f"    ... {len(ev.violations) - 8} more (see the JSON output)")
    else:
        print("  no violations")


def cmd_solve(args) -> int:
    from .. import registry
    from ..instance_io import load_instance
    from ..jsonio import write_json_atomic
    from ..oracle import BeamformingOracle
    from ..params import parse_assignments
    from ..plan_io import plan_to_dict
    from ..runner import run_solver

    if args.list_solvers:
        return cmd_solvers(args)
    if not args.instance or not args.solver:
        print("fgamcd-solve: give an instance file and --solver NAME (or --list-solvers)",
              file=sys.stderr)
        return 2
    inst = load_instance(args.instance)
    cls = registry.get_solver(args.solver)
    params = parse_assignments(args.param or [])
    oracle = BeamformingOracle(args.beamforming)
    run = run_solver(inst, cls, params, seed=args.seed, time_limit_s=args.time_limit,
                     oracle=oracle, debug=args.debug)
    rec = run.record
    print(f"solver {rec.solver} on {inst.name}: solver status {rec.solver_status}, "
          f"solve time {rec.solve_time_s:.2f} s, oracle calls {rec.oracle_calls} "
          f"({rec.oracle_cache_hits} cached)")
    if rec.message:
        print(f"  message: {rec.message}")
    if rec.bound_s is not None:
        gap = f", gap {100 * rec.gap:.2f}%" if rec.gap is not None else ""
        print(f"  lower bound on delay {rec.bound_s:.4f} s{gap}")
    if run.evaluation is not None:
        _print_evaluation(inst, run.evaluation, "evaluation")
    out = Path(args.output or f"{inst.name}.{rec.solver}.plan.json")
    if run.plan is not None:
        plan_d = plan_to_dict(run.plan, inst, with_beams=not args.omit_beams,
                              solver_params=rec.params)
        write_json_atomic(out, plan_d, indent=None if not args.omit_beams else 1)
        ev_path = out.with_name(out.name.replace(".plan.json", "") + ".eval.json") \
            if out.name.endswith(".plan.json") else out.with_suffix(".eval.json")
        write_json_atomic(ev_path, {"run": rec.to_dict(),
                                    "evaluation": run.evaluation.to_dict(inst)
                                    if run.evaluation is not None else None})
        print(f"wrote {out} and {ev_path}")
    if rec.status == "error":
        return 1
    return 0


def cmd_eval(args) -> int:
    from ..evaluator import evaluate
    from ..instance_io import load_instance
    from ..jsonio import write_json_atomic
    from ..oracle import BeamformingOracle
    from ..plan_io import load_plan

    inst = load_instance(args.instance)
    plan = load_plan(args.plan, inst)
    ev = evaluate(inst, plan, BeamformingOracle(args.beamforming))
    if args.json:
        print(json.dumps(ev.to_dict(inst), indent=1))
    else:
        _print_evaluation(inst, ev, f"evaluation of {args.plan} on {inst.name}")
    if args.output:
        write_json_atomic(args.output, ev.to_dict(inst))
    return 0


def cmd_schema(args) -> int:
    from ..plan_io import PLAN_SCHEMA
    from ..schema import INSTANCE_SCHEMA

    print(json.dumps(INSTANCE_SCHEMA if args.what == "instance" else PLAN_SCHEMA, indent=1))
    return 0


def cmd_solvers(args) -> int:
    from .. import registry

    for name, origin in sorted(registry.available().items()):
        try:
            cls = registry.get_solver(name)
        except FgamcdError as exc:
            print(f"{name}  [{origin}]  (cannot load: {exc})")
            continue
        print(f"{name}  [{origin}]  {cls.description}")
        for p in cls.params:
            print("    --param " + p.describe())
    return 0


def _solve_args(p):
    p.add_argument("instance", nargs="?")
    p.add_argument("--solver", help="solver name, entry point, or path/to/file.py:Class")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="solver parameter")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=None, help="seconds")
    p.add_argument("--beamforming", default="fast", choices=["fast", "sdr", "mrt", "nonrobust"],
                   help="default oracle method")
    p.add_argument("-o", "--output", help="plan file (default: INSTANCE.SOLVER.plan.json)")
    p.add_argument("--omit-beams", action="store_true", help="do not store beams in the plan")
    p.add_argument("--list-solvers", action="store_true")
    _common(p)


def _eval_args(p):
    p.add_argument("instance")
    p.add_argument("plan")
    p.add_argument("--json", action="store_true")
    p.add_argument("-o", "--output", help="write the full evaluation JSON here")
    p.add_argument("--beamforming", default="fast", choices=["fast", "sdr", "mrt", "nonrobust"],
                   help="oracle method for units without beams")
    _common(p)
