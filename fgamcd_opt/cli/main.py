"""Command line: ``fgamcd <command>`` and the shortcuts ``fgamcd-solve``, ``fgamcd-gen``,
``fgamcd-info``, ``fgamcd-eval``.

    fgamcd gen paper-default -o instances/paper-default.json [--seed 0] [--set N=8 ...]
    fgamcd info instances/paper-default.json [--verify-channels] [--json]
    fgamcd solve instances/paper-default.json --solver coarse [-o plan.json] [--param k=v]
    fgamcd eval instances/paper-default.json plan.json [--json] [-o evaluation.json]
    fgamcd schema [instance|plan|run]
    fgamcd solvers            (same as fgamcd-solve --list-solvers)
    fgamcd theorem1 [--tau0 0:1:21] [--xi 0.5:2.5:101] [--set gamma=0.95] [-o DIR] [--json]

Bad input (files, fields, parameters) prints one line naming the file and JSON path and exits 2;
``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import __version__
from .shared import _common, _fmt_bytes, _instance_input_args, _memory_arg, run_guarded
from .solve import (
    _eval_args,
    _solve_args,
    cmd_eval,
    cmd_schema,
    cmd_solve,
    cmd_solvers,
)
from .theorem1_cmd import cmd_theorem1, theorem1_args

REACHABILITY_AUTO_PAIRS = 1_000_000


def cmd_gen(args) -> int:
    from ..generators import SCENARIOS, generate, scenario_params_declared
    from ..instance_io import save_instance
    from ..params import parse_assignments, resolve

    if args.list or not args.scenario:
        print("scenarios:")
        for name, (_, desc) in SCENARIOS.items():
            print(f"  {name:19s} {desc}")
        print("\nparameters (--set name=value):")
        for p in scenario_params_declared():
            print("  " + p.describe())
        return 0 if args.list else 2
    given = parse_assignments(args.set or [])
    declared = scenario_params_declared()
    typed = resolve(declared, given, owner="fgamcd-gen")
    overrides = {k: typed[k] for k in given}
    inst = generate(args.scenario, seed=args.seed, max_memory=args.max_memory, **overrides)
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
                         else "probe", allow_external_sidecar=args.allow_external_sidecar,
                         max_memory=args.max_memory)
    s = inst.summary()
    pairs = sum(len(inst.requesters(k)) for k in inst.requested_blocks)
    # the bound draws the channels of every requested (user, PB) pair (~40 us each): by
    # default only up to REACHABILITY_AUTO_PAIRS pairs (10^6 users would take ~10 minutes)
    if args.reachability == "on" or (args.reachability == "auto"
                                     and pairs <= REACHABILITY_AUTO_PAIRS):
        s["qos_reachability"] = qos_reachability(inst)
    else:
        s["qos_reachability"] = None
    s["requested_pairs"] = pairs
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
    if q is None:
        print(f"  QoS reachability not computed ({pairs:,} requested (user, PB) pairs; "
              "--reachability on computes it)")
    else:
        print(f"  QoS reachable (bound, all nodes at full power): "
              f"{100 * q['blocks_qos_reachable_share']:.1f}% of requested PBs, "
              f"{100 * q['users_qos_reachable_share']:.1f}% of users; zero-rate users "
              f"{100 * q['users_zero_rate_share']:.1f}%")
    if args.verify_channels:
        print("channels: regenerated and matched the recorded full fingerprint")
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
    sc.add_argument("what", nargs="?", choices=["instance", "plan", "run"],
                    default="instance")
    sc.add_argument("--debug", action="store_true")
    sv = sub.add_parser("solvers", help="list solvers and their parameters")
    sv.add_argument("--debug", action="store_true")
    t1 = sub.add_parser("theorem1", help="Theorem 1's bound over (tau0, xi): minimiser, Fig. 6")
    theorem1_args(t1)
    return ap


def _gen_args(p):
    p.add_argument("scenario", nargs="?", help="paper-default, paper-literal, llm-7b, ...")
    p.add_argument("-o", "--output", help="instance file to write (default: NAME.json)")
    p.add_argument("--seed", type=int, default=None, help="master seed (default: scenario's)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter")
    p.add_argument("--name", help="instance name")
    p.add_argument("--list", action="store_true", help="list scenarios and parameters")
    _memory_arg(p)
    _common(p)


def _info_args(p):
    p.add_argument("instance")
    p.add_argument("--json", action="store_true")
    p.add_argument("--verify-channels", action="store_true",
                   help="regenerate every PB's channels and check the full fingerprint")
    p.add_argument("--reachability", choices=("auto", "on", "off"), default="auto",
                   help="QoS reachability bound (auto: when at most "
                        f"{REACHABILITY_AUTO_PAIRS:,} requested (user, PB) pairs)")
    _instance_input_args(p)
    _common(p)



_COMMANDS = {"gen": cmd_gen, "info": cmd_info, "solve": cmd_solve, "eval": cmd_eval,
             "schema": cmd_schema, "solvers": cmd_solvers, "theorem1": cmd_theorem1}


def _run(func, args) -> int:
    return run_guarded(func, args)


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
