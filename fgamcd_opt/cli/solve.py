"""fgamcd-solve, fgamcd-eval, fgamcd solvers and fgamcd schema: running solvers, scoring plans,
listing solvers and printing file-format schemas. (fgamcd_opt/cli/main.py dispatches; instance
commands live there.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import FgamcdError
from .shared import _common, _fmt_bytes, _instance_input_args


def _print_evaluation(inst, ev, header: str) -> None:
    s = ev.summary(inst)
    print(header)
    parts = (f"migration {s['migration_delay_s']:.4f} s = {100 * s['migration_share']:.1f}%, "
             f"broadcast {s['broadcast_delay_s']:.4f} s = {100 * s['broadcast_share']:.1f}%")
    if s["total_delay_s"] != float("inf"):
        print(f"  status {s['status']}: total delay {s['total_delay_s']:.4f} s ({parts})")
    else:
        if not s["complete"]:
            why = (f"{s['undelivered_users'] + s['qos_violating_users']} user(s) not fully "
                   f"served, {s['unserved_pairs']} of {s['requested_pairs']} requested (user, "
                   "PB) pairs unserved or at zero rate")
        elif s["zero_rate_transmissions"]:
            why = (f"{s['zero_rate_transmissions']} transmission(s) have a user at worst-case "
                   "rate 0 and never end")
        else:
            why = "the plan breaks a structural constraint"
        print(f"  status {s['status']}: total delay inf ({why}); delivered part "
              f"{s['delivered_delay_s']:.4f} s ({parts})")
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


def _output_paths(args, inst_name: str, solver: str) -> tuple[Path, Path, Path]:
    """plan, evaluation and run-record paths: next to ``-o`` when given, else under
    ``runs/`` (never into the source tree)."""
    if args.output:
        plan = Path(args.output)
        stem = plan.name[: -len(".plan.json")] if plan.name.endswith(".plan.json") else plan.stem
    else:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in solver)
        stem = f"{inst_name}.{safe}.s{args.seed}"
        plan = Path(args.runs_dir) / f"{stem}.plan.json"
    return plan, plan.with_name(f"{stem}.eval.json"), plan.with_name(f"{stem}.run.json")


class _ProgressBar:
    """tqdm bar fed by ``ctx.progress`` (shown only on a terminal, or with --progress)."""

    def __init__(self, enabled: bool, desc: str):
        self.bar = None
        if enabled:
            import threading

            from tqdm import tqdm

            self.bar = tqdm(total=1000, desc=desc, unit="", leave=False,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"
                                       " {postfix}")
            # the elapsed time keeps moving through stages that report nothing for a while
            # (reading a 10^6-user instance, scoring the plan)
            self._done = threading.Event()
            threading.Thread(target=self._tick, daemon=True).start()

    def _tick(self) -> None:
        while not self._done.wait(1.0):
            self.bar.refresh()

    def __call__(self, fraction: float, message: str) -> None:
        if self.bar is not None:
            self.bar.n = int(1000 * fraction)
            if message:
                self.bar.set_postfix_str(message, refresh=False)
            self.bar.refresh()

    def restart(self, desc: str) -> None:
        """The next stage (loading, the solver, the bound) starts at 0%."""
        if self.bar is not None:
            self.bar.reset(total=1000)
            self.bar.set_description_str(desc, refresh=False)
            self.bar.set_postfix_str("", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self._done.set()
            self.bar.close()


def cmd_solve(args) -> int:
    import jsonschema

    from .. import registry
    from ..errors import SolverRefusal
    from ..evaluator import EVAL_JSON_ITEMS
    from ..instance_io import load_instance
    from ..jsonio import write_json_atomic
    from ..oracle import BeamformingOracle
    from ..params import parse_assignments
    from ..plan_io import plan_to_dict
    from ..runner import RUN_SCHEMA, attach_bound, run_solver

    if args.list_solvers:
        return cmd_solvers(args)
    if not args.instance or not args.solver:
        print("fgamcd-solve: give an instance file and --solver NAME (or --list-solvers)",
              file=sys.stderr)
        return 2
    bar = _ProgressBar(args.progress or sys.stderr.isatty(), "loading")
    store = executor = inst = None
    try:
        bar(0.0, f"reading {args.instance}")
        inst = load_instance(args.instance, allow_external_sidecar=args.allow_external_sidecar,
                             max_memory=args.max_memory)
        cls = registry.get_solver(args.solver)
        params = parse_assignments(args.param or [])
        if args.oracle_store:
            from ..oracle.store import OracleStore

            store = OracleStore(args.oracle_store, flush_every=0)
        oracle = BeamformingOracle(args.beamforming, store=store)
        if args.regions < 0 or (args.dask_workers is not None and args.dask_workers < 0):
            raise FgamcdError("fgamcd-solve: --regions and --dask-workers must be >= 0")
        if args.regions > 1:
            import os

            from ..experiments.executors import make_executor

            workers = args.dask_workers if args.dask_workers is not None else min(
                args.regions, os.cpu_count() or 1)
            executor = (make_executor(scheduler=args.scheduler, dask_workers=workers)
                        if args.scheduler or workers > 0 else None)
            cls = _regions_solver(cls, args, executor)
        bar.restart(cls.name)
        run = run_solver(inst, cls, params, seed=args.seed, time_limit_s=args.time_limit,
                         oracle=oracle, debug=args.debug, progress=bar,
                         certificate_time_s=args.certificate_time)
        if run.record.metadata.get("refused"):
            # bad input for this solver: one line on stderr, exit 2, nothing written (README)
            raise SolverRefusal(f"{args.instance}: solver {cls.name} refused the instance: "
                                f"{run.record.message}")
        if args.bound:
            bar.restart("bound")
            bound, info = _external_bound(inst, args, progress=bar)
            run = attach_bound(run, bound, info)
    finally:
        bar.close()
        if executor is not None:
            executor.close()
        if store is not None:
            # shared only when the instance came through the run unchanged
            unchanged = inst is not None and \
                type(inst).fingerprint.func(inst) == inst.fingerprint
            if unchanged:
                store.flush()
            else:
                store.discard()
            store.close()
    rec = run.record
    print(f"solver {rec.solver} on {inst.name}: solver status {rec.solver_status}, "
          f"solve time {rec.solve_time_s:.2f} s, oracle calls {rec.oracle_calls} "
          f"({rec.oracle_cache_hits} cached, {rec.oracle_time_s:.2f} s)")
    if rec.message:
        print(f"  message: {rec.message}")
    if rec.bound_s is not None:
        gap = f", gap {100 * rec.gap:.2f}%" if rec.gap is not None else \
            " (no gap: the plan is not comparable)"
        bi = rec.metadata.get("bound_info") or {}
        cut = "; a bound stage hit its time budget" if bi.get("budget_hit") else ""
        print(f"  lower bound on delay {rec.bound_s:.4f} s ({rec.bound_source}){gap}{cut}")
    if run.evaluation is not None:
        _print_evaluation(inst, run.evaluation, "evaluation")
        _print_certificates(rec.metadata.get("pb_certificates") or {})
    plan_path, ev_path, run_path = _output_paths(args, inst.name, rec.solver)
    record = rec.to_dict()
    jsonschema.validate(record, RUN_SCHEMA)  # a record that breaks its schema is a bug
    if run.plan is not None:
        plan_d = plan_to_dict(run.plan, inst, with_beams=not args.omit_beams,
                              solver_params=rec.params)
        write_json_atomic(plan_path, plan_d, indent=None if not args.omit_beams else 1)
        write_json_atomic(ev_path, {"run": record,
                                    "evaluation": run.evaluation.to_dict(
                                        inst, max_items=EVAL_JSON_ITEMS)
                                    if run.evaluation is not None else None})
    write_json_atomic(run_path, record)
    written = [str(p) for p in ((plan_path, ev_path) if run.plan is not None else ())]
    print(f"wrote {', '.join([*written, str(run_path)])}")
    if rec.solver_status == "error":
        print(f"error: {args.instance}: solver {rec.solver} failed: {rec.message}",
              file=sys.stderr)
        return 1
    return 0


def _print_certificates(cert: dict) -> None:
    """One line on the beams' certificates (certificate.py) and the PBs furthest from theirs."""
    if cert.get("time_ratio") is None:
        return
    worst = ", ".join(f"{w['block']} {100 * w['time_ratio']:.1f}%" for w in cert["worst"])
    print(f"  beam certificates: {cert['transmissions']} transmissions take "
          f"{100 * (1 / cert['time_ratio'] - 1):.2f}% longer than their groups' rate bounds "
          f"allow (worst transmission at {100 * cert['min_ratio']:.1f}% of its bound; "
          f"{cert['group_bounds']} group bounds); lowest PBs: {worst}")


def _external_bound(inst, args, progress=None) -> tuple[float | None, dict | None]:
    """The certified lower bound (``certified_lower_bound`` of the milp plugin, the same
    memoised computation the milp solver uses, docs/milp.md section 3.6) within
    ``--bound-time-limit`` seconds."""
    import importlib

    from .. import registry

    milp = registry.get_solver("milp")
    module = importlib.import_module(milp.__module__)
    fn = getattr(module, "certified_lower_bound", None)
    if fn is None:
        print("  --bound: this milp solver offers no certified_lower_bound()", file=sys.stderr)
        return None, None
    kwargs = {"progress": progress} if progress is not None else {}
    return fn(inst, time_limit_s=args.bound_time_limit, **kwargs)


def cmd_eval(args) -> int:
    from ..evaluator import EVAL_JSON_ITEMS, evaluate
    from ..instance_io import load_instance
    from ..jsonio import write_json_atomic
    from ..oracle import BeamformingOracle
    from ..plan_io import load_plan

    inst = load_instance(args.instance, allow_external_sidecar=args.allow_external_sidecar,
                         max_memory=args.max_memory)
    plan = load_plan(args.plan, inst)
    ev = evaluate(inst, plan, BeamformingOracle(args.beamforming))
    if args.json:
        print(json.dumps(ev.to_dict(inst, max_items=EVAL_JSON_ITEMS), indent=1))
    else:
        _print_evaluation(inst, ev, f"evaluation of {args.plan} on {inst.name}")
    if args.output:
        write_json_atomic(args.output, ev.to_dict(inst, max_items=EVAL_JSON_ITEMS))
    return 0


def cmd_schema(args) -> int:
    from ..plan_io import PLAN_SCHEMA
    from ..runner import RUN_SCHEMA
    from ..schema import INSTANCE_SCHEMA

    schemas = {"instance": INSTANCE_SCHEMA, "plan": PLAN_SCHEMA, "run": RUN_SCHEMA}
    print(json.dumps(schemas[args.what], indent=1))
    return 0


def cmd_solvers(args) -> int:
    from .. import registry

    builtin = set(registry.BUILTIN_SOLVERS)
    for name, ref in sorted(registry.available().items()):
        origin = "builtin" if name in builtin else ref
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
    p.add_argument("-o", "--output", help="plan file; the evaluation (.eval.json) and run record "
                   "(.run.json) are written next to it (default: "
                   "RUNS_DIR/INSTANCE.SOLVER.sSEED.plan.json)")
    p.add_argument("--runs-dir", default="runs", help="folder for outputs without -o "
                   "(default: runs)")
    p.add_argument("--omit-beams", action="store_true", help="do not store beams in the plan")
    p.add_argument("--bound", action="store_true", help="also compute the certified lower "
                   "bound (MILP relaxation) and report the gap of this solver's plan")
    p.add_argument("--bound-time-limit", type=float, default=60.0,
                   help="seconds for the certified bound, computed after the solve (default 60, "
                        "= the milp solver's group_bound_time, so both get the same bound)")
    p.add_argument("--certificate-time", type=float, default=10.0,
                   help="seconds for the group bounds of the per-PB beam certificates in the "
                   "run record (default 10; 0: per-user bounds only)")
    p.add_argument("--progress", action="store_true",
                   help="show the progress bar even when stderr is not a terminal")
    p.add_argument("--list-solvers", action="store_true")
    p.add_argument("--oracle-store", metavar="PATH", help="share oracle results with other "
                   "runs through this SQLite file (read, and written after the run)")
    p.add_argument("--regions", type=int, default=0, metavar="R",
                   help="split the instance into R regions of nearby nodes, solve them in "
                        "parallel on Dask and stitch the plans (docs/model.md section 12)")
    p.add_argument("--halo-m", type=float, default=600.0,
                   help="with --regions: nodes of other regions within this distance of a "
                        "region's users join it as halo nodes (default 600 m)")
    p.add_argument("--dask-workers", type=int, default=None, metavar="W",
                   help="with --regions: a local Dask cluster of W processes (default: "
                        "min(R, CPUs); 0: solve the regions in this process)")
    p.add_argument("--scheduler", help="with --regions: the Dask scheduler tcp://HOST:PORT")
    _instance_input_args(p)
    _common(p)


def _regions_solver(cls, args, executor):
    """A solver that runs ``cls`` region by region (fgamcd_opt/regions.py) and returns the
    stitched plan, so the runner times it and the evaluator scores it like any solve."""
    from ..regions import solve_regions
    from ..solver import SolveResult, SolveStatus

    class Regions:
        name = cls.name
        description = f"{cls.description} (by regions)"
        params = cls.params

        def solve(self, instance, ctx, params):
            left = ctx.time_left()
            plan, info = solve_regions(instance, args.solver, params, args.regions, executor,
                                       seed=ctx.seed, time_limit_s=left if left != float("inf")
                                       else None, halo_m=args.halo_m, progress=ctx.progress)
            statuses = [r["status"] for r in info["per_region"]]
            status = (SolveStatus.ERROR if all(s == "error" for s in statuses) else
                      SolveStatus.TIME_LIMIT if "time_limit" in statuses else
                      SolveStatus.FEASIBLE)
            # the regions' own oracles did the work: count their calls in this run's record
            ctx.oracle.misses += info["oracle_calls"]
            message = "; ".join(f"region {r['index']}: {r['message']}"
                                for r in info["per_region"] if r["message"])
            return SolveResult(plan, status, message, metadata={"regions": info})

    return Regions


def _eval_args(p):
    p.add_argument("instance")
    p.add_argument("plan")
    p.add_argument("--json", action="store_true")
    p.add_argument("-o", "--output", help="write the full evaluation JSON here")
    p.add_argument("--beamforming", default="fast", choices=["fast", "sdr", "mrt", "nonrobust"],
                   help="oracle method for units without beams")
    _instance_input_args(p)
    _common(p)
