"""Every built-in baseline on paper-default with several seeds: delay (migration + broadcast),
QoS violations, undelivered users and solve time; one row per (solver, seed).

    python benchmarks/bench_baselines.py [--size quick|storage] [--workers N]
        [--seeds 0 1 2 3 4] [--solvers coarse trimcaching ...] [--set storage_gb=0.5]

A thin wrapper of the sweep runner (docs/experiments.md): it runs the spec
``reports/specs/baselines.toml`` (``--seeds``, ``--solvers`` and ``--set`` edit it before it
is validated) into a results store (default ``bench-out/baselines-<spec hash>``, so runs with
other settings never share one; resumable: rerun the same command), then prints a table per
seed and the mean over seeds from the store and writes them to
benchmarks/results/baselines.json (same rows and summary as before the runner; ``n_units`` is
not in a run record and is no longer written). With an instance axis (``--size storage``) the
rows carry the axis values and the means are per grid point.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import RESULTS, machine, table  # noqa: E402

from fgamcd_opt.errors import FgamcdError  # noqa: E402
from fgamcd_opt.experiments.executors import make_executor  # noqa: E402
from fgamcd_opt.experiments.spec import deep_merge, spec_from_dict  # noqa: E402
from fgamcd_opt.experiments.store import read_store  # noqa: E402
from fgamcd_opt.experiments.sweep import run_sweep  # noqa: E402
from fgamcd_opt.jsonio import write_json_atomic  # noqa: E402

SPEC = HERE.parent / "reports" / "specs" / "baselines.toml"
MEANS = ("total_delay_s", "migration_delay_s", "broadcast_delay_s", "qos_violating_users",
         "undelivered_users", "solve_time_s")


def _value(text: str):
    if "," in text:
        return [float(x) for x in text.split(",")]
    return int(text) if text.lstrip("-").isdigit() else float(text)


def build_spec(args):
    data = tomllib.loads(SPEC.read_text())
    if args.size:
        sizes = data.get("sizes", {})
        if args.size not in sizes:
            raise FgamcdError(f"{SPEC}: sizes: no size {args.size!r} "
                              f"(known: {', '.join(sizes)})")
        data = deep_merge(data, sizes[args.size])
    data.pop("sizes", None)
    if args.seeds is not None:
        data["seeds"] = list(args.seeds)
    if args.solvers is not None:
        data["solvers"] = [{"name": s} for s in args.solvers]
    for item in args.set:
        if "=" not in item:
            raise FgamcdError(f"--set {item!r}: expected NAME=VALUE, e.g. storage_gb=0.5")
        key, value = item.split("=", 1)
        try:
            data.setdefault("params", {})[key] = _value(value)
        except ValueError:
            raise FgamcdError(f"--set {item!r}: {value!r} is not a number") from None
        data.get("axes", {}).pop(key, None)  # a fixed value replaces the size's axis
    return spec_from_dict(data, file=str(SPEC))


def json_row(r: dict) -> dict:
    viol = r.get("violations") or {}
    return {
        "scenario": r["scenario"], "seed": r["instance_seed"], "solver": r["solver_label"],
        **r.get("point", {}), "verdict": r.get("verdict"),
        "solver_status": r.get("solver_status"), "complete": r.get("complete"),
        "total_delay_s": r.get("total_delay_s"), "delivered_delay_s": r.get("delivered_delay_s"),
        "migration_delay_s": r.get("migration_delay_s"),
        "broadcast_delay_s": r.get("broadcast_delay_s"),
        "qos_violating_users": r.get("qos_violating_users"),
        "qos_violating_units": viol.get("qos", 0) + viol.get("zero_rate", 0),
        "undelivered_users": r.get("undelivered_users"), "solve_time_s": r.get("solve_time_s"),
        "oracle_calls": r.get("oracle_calls"), "oracle_cache_hits": r.get("oracle_cache_hits"),
        "state": r.get("state"), "message": r.get("message"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="quick", help="a [sizes.NAME] of the spec (quick, storage)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--solvers", nargs="+", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="scenario override, e.g. storage_gb=0.5")
    ap.add_argument("--workers", type=int, default=1, help="local worker processes")
    ap.add_argument("-o", "--store", default=None, help="results store directory")
    ap.add_argument("--out", default=None, help="JSON file name in benchmarks/results "
                    "(default baselines.json; baselines_<size>.json for another size)")
    args = ap.parse_args()
    try:
        spec = build_spec(args)
    except FgamcdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = Path(args.store or f"bench-out/baselines-{spec.hash}")
    command = "python benchmarks/bench_baselines.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    ex = make_executor(args.workers)
    try:
        counts = run_sweep(spec, store, ex, progress=True, command=command)
    finally:
        ex.close()
    _, rows_all = read_store(store)
    cells = {c["cell"] for c in spec.cells()}
    rows = [json_row(r) for r in rows_all if r["cell"] in cells]
    axis = list(spec.axes)
    order = [s.label for s in spec.solvers]
    rows.sort(key=lambda r: ([r[a] for a in axis], r["seed"], order.index(r["solver"])))
    cols = [(a, a, "") for a in axis] + [
        ("seed", "seed", ""), ("solver", "solver", "12s"),
        ("delay s", "total_delay_s", ".3f"), ("migration s", "migration_delay_s", ".3f"),
        ("broadcast s", "broadcast_delay_s", ".3f"),
        ("QoS users", "qos_violating_users", "d"), ("undelivered", "undelivered_users", "d"),
        ("solve s", "solve_time_s", ".1f"), ("oracle calls", "oracle_calls", "d")]
    print(table(rows, cols))
    summary = []
    for point in spec.points():
        mean_rows = []
        for name in order:
            rs = [r for r in rows if r["solver"] == name and r["state"] == "done"
                  and all(r[a] == v for a, v in point.items())]
            if not rs:
                continue
            m = {"solver": name, **point, "seeds": len(rs)}
            for key in MEANS:
                # an incomplete plan's total is null in the record: its mean is infinite
                m[key] = float(np.mean([np.inf if r[key] is None else r[key] for r in rs]))
            mean_rows.append(m)
        print("\nmean over seeds" + (f" at {point}" if point else ""))
        print(table(sorted(mean_rows, key=lambda r: r["total_delay_s"]),
                    [("solver", "solver", "12s"), ("seeds", "seeds", "d"),
                     ("delay s", "total_delay_s", ".3f"),
                     ("migration s", "migration_delay_s", ".3f"),
                     ("broadcast s", "broadcast_delay_s", ".3f"),
                     ("QoS users", "qos_violating_users", ".1f"),
                     ("undelivered", "undelivered_users", ".1f"),
                     ("solve s", "solve_time_s", ".1f")]))
        summary += mean_rows
    name = args.out or ("baselines.json" if args.size == "quick" and not args.set
                        else f"baselines_{args.size}.json")
    write_json_atomic(RESULTS / name, {
        "meta": {"scenario": spec.scenario, "overrides": args.set, "command": command,
                 "spec": str(SPEC.relative_to(HERE.parent)), "size": args.size,
                 "spec_hash": spec.hash, "store": str(store), "machine": machine()},
        "rows": rows, "summary": summary})
    print(f"\n{counts['ran']} cells run in {counts['elapsed_s']:.1f} s "
          f"({counts['resumed_done']} already in {store}); wrote {RESULTS / name}")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
