"""Whole solves before/after the cached SOCP template of the fast oracle (fast.py).

    python benchmarks/bench_oracle_template.py --before-code DIR [--after-code DIR2]
        [--solvers maasn hybrid trimcaching] [--reps 3]
        [--instance instances/paper-default.json] [--fresh] [--out NAME]

Runs ``fgamcd-solve INSTANCE --solver S`` as a subprocess ``--reps`` times per solver and code
state (a fresh process each time, so no run is timed on another's oracle memo), the old code and
the new interleaved (order alternated per repetition, so both see the same load on the shared
cores). Each run records the wall time, the child's CPU time, the run record's solve_time_s /
oracle_time_s / oracle_calls / total_delay_s, a digest of the plan without its metadata (the same
digest before and after shows the oracle's numbers did not change) and the 1-minute load average
before and after the run (the 2 cores are shared). ``before`` runs DIR, a copy of the packages
holding the old code (DIR/fgamcd_opt and DIR/fgamcd_solvers first on PYTHONPATH); ``after`` runs
this tree, or DIR2 (snapshot both at once when others edit the tree). Rows go to
benchmarks/results/oracle_template.json (resumable: finished rows are skipped; --fresh starts
over); the table prints the medians per (solver, code).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import ResultsFile, table  # noqa: E402

from fgamcd_opt.jsonio import write_json_atomic  # noqa: E402

NAME = "oracle_template.json"


def run_once(instance: str, solver: str, code: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "b.plan.json"
        exe = Path(sys.executable).with_name("fgamcd-solve")
        cmd = [str(exe), instance, "--solver", solver, "-o", str(plan)]
        env = dict(os.environ)
        if code:
            env["PYTHONPATH"] = code
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)
            # wait4 gives the child's own CPU time: less sensitive to the shared cores' load
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            rc = os.waitstatus_to_exitcode(status)
            proc.returncode = rc
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        load1 = os.getloadavg()[0]
        if rc != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({rc}): {stderr[-500:]}")
        rec = json.loads((Path(tmp) / "b.run.json").read_text())
        # metadata holds paths (the policy file's, under DIR) that differ between code copies
        body = {k: v for k, v in json.loads(plan.read_text()).items() if k != "metadata"}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "solve_time_s": rec["solve_time_s"],
            "oracle_time_s": rec["oracle_time_s"], "oracle_calls": rec["oracle_calls"],
            "total_delay_s": rec["total_delay_s"], "plan_sha256_16": digest,
            "load_before": load0, "load_after": load1}


def summary(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["label"], r["solver"]) for r in rows}, key=lambda k: (k[1], k[0] != "before"))
    for label, solver in keys:
        rs = [r for r in rows if r["label"] == label and r["solver"] == solver]

        def med(key, rs=rs):
            return float(np.median([r[key] for r in rs]))

        out.append({"label": label, "solver": solver, "runs": len(rs), "wall_s": med("wall_s"),
                    "cpu_s": med("cpu_s"), "solve_s": med("solve_time_s"),
                    "oracle_s": med("oracle_time_s"),
                    "oracle_share": med("oracle_time_s") / med("solve_time_s"),
                    "load": float(np.mean([(r["load_before"] + r["load_after"]) / 2 for r in rs])),
                    "delay": rs[0]["total_delay_s"],
                    "plans": ",".join(sorted({r["plan_sha256_16"][:8] for r in rs}))})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before-code", required=True,
                    help="a folder holding a copy of fgamcd_opt and fgamcd_solvers with the old "
                         "code (put first on PYTHONPATH of the 'before' runs)")
    ap.add_argument("--after-code", default=None,
                    help="the same for the 'after' runs (default: this tree); snapshot both at "
                         "once when others edit the tree")
    ap.add_argument("--solvers", nargs="+", default=["maasn", "hybrid", "trimcaching"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--instance", default="instances/paper-default.json")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--out", default=NAME, help="results file under benchmarks/results")
    args = ap.parse_args()
    cmd = f"fgamcd-solve {args.instance} --solver SOLVER"
    res = ResultsFile(args.out, {"command": cmd, "reps": args.reps,
                             "note": "before/after interleaved per repetition (order alternated); "
                                     "wall = subprocess wall time incl. start-up, cpu = the "
                                     "child's user+sys time; oracle share = oracle_time_s / "
                                     "solve_time_s of the run record; medians"})
    if args.fresh:
        res.data["rows"] = []
    codes = {"before": args.before_code, "after": args.after_code}
    for rep in range(args.reps):
        for solver in args.solvers:
            order = ("before", "after") if rep % 2 == 0 else ("after", "before")
            for label in order:
                if res.has(label=label, solver=solver, rep=rep, instance=args.instance):
                    continue
                row = {"label": label, "solver": solver, "rep": rep, "instance": args.instance,
                       "code": codes[label] or "working tree",
                       **run_once(args.instance, solver, codes[label])}
                print(f"{label} {solver} rep {rep}: wall {row['wall_s']:.2f} s, cpu "
                      f"{row['cpu_s']:.2f} s (oracle {row['oracle_time_s']:.2f} s, load "
                      f"{row['load_before']:.2f})", flush=True)
                res.add(row)
    res.data["summary"] = summary(res.rows)
    write_json_atomic(res.path, res.data)
    print(f"command: {cmd} (median of {args.reps}, before/after interleaved)")
    print(table(res.data["summary"], [
        ("solver", "solver", "s"), ("code", "label", "s"), ("wall s", "wall_s", ".2f"),
        ("cpu s", "cpu_s", ".2f"), ("solve s", "solve_s", ".2f"), ("oracle s", "oracle_s", ".2f"),
        ("oracle share", "oracle_share", ".0%"), ("load", "load", ".2f"),
        ("T (s)", "delay", ".6f"), ("plan digest", "plans", "s")]))


if __name__ == "__main__":
    main()
