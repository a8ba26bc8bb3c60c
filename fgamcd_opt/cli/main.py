"""Command line: ``fgamcd <command>`` and the shortcuts ``fgamcd-solve``, ``fgamcd-gen``,
``fgamcd-info``, ``fgamcd-eval``.

    fgamcd gen paper-default -o instances/paper-default.json [--seed 0] [--set N=8 ...]
    fgamcd info instances/paper-default.json [--verify-channels] [--json]
    fgamcd solve instances/paper-default.json --solver coarse [-o plan.json] [--param k=v]
    fgamcd eval instances/paper-default.json plan.json [--json] [-o evaluation.json]
    fgamcd schema [instance|plan]
    fgamcd solvers            (same as fgamcd-solve --list-solvers)

Bad input (files, fields, parameters) prints one line naming the file and JSON path and exits 2;
``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import __version__
from ..errors import FgamcdError


def _fmt_bytes(b: float) -> str:
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(b) >= div:
            return f"{b / div:.2f} {unit}"
    return f"{b:.0f} B"


# ---------------------------------------------------------------------------------------
def cmd_gen(args) -> int:
    from ..generators import SCENARIOS, generate, scenario_params_declared
    from ..instance_io import save_instance
    from ..params import parse_assignments, resolve

    if args.list or not args.scenario:
        print("scenarios:")
        for name, (_, desc) in SCENARIOS.items():
            print(f"  {name:14s} {desc}")
        print("\nparameters (--set name=value):")
        for p in scenario_params_declared():
            print("  " + p.describe())
        return 0 if args.list else 2
    given = parse_assignments(args.set or [])
    declared = scenario_params_declared()
    typed = resolve(declared, given, owner="fgamcd-gen")
    overrides = {k: typed[k] for k in given}
    inst = generate(args.scenario, seed=args.seed, **overrides)
    if args.name:
        inst.name = args.name
    out = Path(args.output or f"{inst.name}.json")
    save_instance(inst, out)
    s = inst.summary()
    print(f"wrote {out}: N={s['N']} U={s['U']} J={s['J']} K={s['K']} M={s['M']}, unique "
          f"{_fmt_bytes(s['unique_bytes'])}, naive {_fmt_bytes(s['naive_bytes'])}")
    return 0


def cmd_info(args) -> int:
    from ..bounds import qos_reachability
    from ..instance_io import load_instance

    inst = load_instance(args.instance, verify_channels="full" if args.verify_channels
                         else "probe")
    s = inst.summary()
    s["qos_reachability"] = qos_reachability(inst)
    s["fingerprint"] = inst.fingerprint
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    print(f"instance {s['name']} ({args.instance}), fingerprint {s['fingerprint']}")
    print(f"  nodes N={s['N']}  users U={s['U']}  models J={s['J']}  PBs K={s['K']}  "
          f"antennas M={s['M']}  bandwidth {s['bandwidth_hz'] / 1e6:g} MHz")
    print(f"  storage per node {_fmt_bytes(s['storage_bytes'][0])}, "
          f"P_max {s['power_max_w'][0]:.2f} W")
    print("repository")
    print(f"  unique bytes {_fmt_bytes(s['unique_bytes'])}, naive bytes "
          f"{_fmt_bytes(s['naive_bytes'])} (sharing saves {100 * s['storage_saving']:.1f}%)")
    print(f"  reuse ratio per model: mean {100 * s['reuse_ratio_mean']:.2f}%, "
          f"min {100 * s['reuse_ratio_min']:.2f}%, max {100 * s['reuse_ratio_max']:.2f}%")
    print(f"  pairwise reuse: {s['pairs_sharing']} ordered model pairs share PBs, mean "
          f"{100 * s['pairwise_reuse_mean']:.2f}%, max {100 * s['pairwise_reuse_max']:.2f}%")
    print(f"  shared PBs {s['shared_blocks']}, PB sizes {_fmt_bytes(s['block_bytes_min'])} .. "
          f"{_fmt_bytes(s['block_bytes_max'])}")
    print("requests")
    print(f"  requested models {s['requested_models']}, requested PBs {s['requested_blocks']} "
          f"({_fmt_bytes(s['requested_unique_bytes'])} unique, "
          f"{_fmt_bytes(s['requested_naive_bytes'])} if sent per user)")
    print(f"  requesters per PB: mean {s['requesters_per_block_mean']:.2f}, max "
          f"{s['requesters_per_block_max']}; PBs with several requesters "
          f"{s['blocks_with_several_requesters']}; most requests of one model "
          f"{s['top_model_requests']}")
    print(f"  QoS {s['qos_bps_min'] / 1e9:.2f} .. {s['qos_bps_max'] / 1e9:.2f} Gbps")
    q = s["qos_reachability"]
    print(f"  QoS reachable (bound, all nodes at full power): "
          f"{100 * q['blocks_qos_reachable_share']:.1f}% of requested PBs, "
          f"{100 * q['users_qos_reachable_share']:.1f}% of users; zero-rate users "
          f"{100 * q['users_zero_rate_share']:.1f}%")
    if args.verify_channels:
        print("channels: regenerated and matched the recorded full fingerprint")
    return 0


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


# ---------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fgamcd", description="fine-grained AI model caching and "
                                 "downloading: instances, solvers, evaluation")
    ap.add_argument("--version", action="version", version=f"fgamcd-opt {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gen", help="generate a scenario instance")
    _gen_args(g)
    i = sub.add_parser("info", help="show an instance's statistics")
    _info_args(i)
    s = sub.add_parser("solve", help="run a solver and evaluate its plan")
    _solve_args(s)
    e = sub.add_parser("eval", help="evaluate a plan")
    _eval_args(e)
    sc = sub.add_parser("schema", help="print the JSON Schema of a file format")
    sc.add_argument("what", nargs="?", choices=["instance", "plan"], default="instance")
    sc.add_argument("--debug", action="store_true")
    sv = sub.add_parser("solvers", help="list solvers and their parameters")
    sv.add_argument("--debug", action="store_true")
    return ap


def _common(p):
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _gen_args(p):
    p.add_argument("scenario", nargs="?", help="paper-default, paper-literal, llm-7b, ...")
    p.add_argument("-o", "--output", help="instance file to write (default: NAME.json)")
    p.add_argument("--seed", type=int, default=None, help="master seed (default: scenario's)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("--name", help="instance name")
    p.add_argument("--list", action="store_true", help="list scenarios and parameters")
    _common(p)


def _info_args(p):
    p.add_argument("instance")
    p.add_argument("--json", action="store_true")
    p.add_argument("--verify-channels", action="store_true",
                   help="regenerate every PB's channels and check the full fingerprint")
    _common(p)


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


_COMMANDS = {"gen": cmd_gen, "info": cmd_info, "solve": cmd_solve, "eval": cmd_eval,
             "schema": cmd_schema, "solvers": cmd_solvers}


def _run(func, args) -> int:
    try:
        return func(args)
    except FgamcdError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    return _run(_COMMANDS[args.command], args)


def _single(name: str, add_args, func, argv=None) -> int:
    p = argparse.ArgumentParser(prog=f"fgamcd-{name}")
    add_args(p)
    return _run(func, p.parse_args(argv))


def solve_main(argv=None) -> int:
    return _single("solve", _solve_args, cmd_solve, argv)


def gen_main(argv=None) -> int:
    return _single("gen", _gen_args, cmd_gen, argv)


def info_main(argv=None) -> int:
    return _single("info", _info_args, cmd_info, argv)


def eval_main(argv=None) -> int:
    return _single("eval", _eval_args, cmd_eval, argv)


if __name__ == "__main__":
    sys.exit(main())
