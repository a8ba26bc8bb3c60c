"""``fgamcd-bench``: run a sweep spec, or the benchmark suite.

    fgamcd-bench SPEC.toml [-o DIR] [--size quick] [--workers N]
                 [--dask-workers N | --scheduler tcp://HOST:PORT] [--no-report]
    fgamcd-bench --suite standard [--solver my_solver.py:MySolver ...] [-o DIR]

Results go to DIR/store.jsonl (one row per finished cell, appended atomically), DIR/results.csv
and, unless ``--no-report``, the report (DIR/index.md, DIR/index.html, DIR/figures/). Rerunning
the same command resumes: finished cells of the same code are kept; the others run again.
Exit status: 0 when every cell is done (and, for the suite, no solver is disqualified), 1 when
some cell failed, was killed, crashed or tampered (the last line says how many), 2 for bad
input, 130 when interrupted (Ctrl-C or SIGTERM: the running cells are stopped at once, every
finished row is kept and the stopped cells are written to DIR/sweep-log.jsonl).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from ..errors import FgamcdError
from .shared import run_guarded


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fgamcd-bench", description="run a sweep spec (TOML) or "
                                 "the benchmark suite; results resume after a crash")
    ap.add_argument("spec", nargs="?", help="sweep spec (TOML), e.g. reports/specs/fig08.toml")
    ap.add_argument("-o", "--output", help="results directory (default: bench-out/NAME[-SIZE])")
    ap.add_argument("--size", help="a [sizes.NAME] of the spec, e.g. quick or full")
    ap.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    ap.add_argument("--dask-workers", type=int, help="run on a local Dask cluster of N worker "
                    "processes (127.0.0.1 only)")
    ap.add_argument("--scheduler", help="run on the Dask scheduler tcp://HOST:PORT")
    ap.add_argument("--threads-per-worker", type=int, default=1,
                    help="BLAS/OpenMP threads per worker (default 1)")
    ap.add_argument("--inline", action="store_true", help="run in this process (debugging)")
    ap.add_argument("--no-report", action="store_true", help="do not render the report")
    ap.add_argument("--no-oracle-store", action="store_true",
                    help="do not share oracle results between cells through "
                         "OUT/oracle-memo.sqlite")
    ap.add_argument("--report-only", action="store_true",
                    help="learning specs: render the report of the finished runs, train nothing")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--suite", help="run the benchmark suite (e.g. 'standard' or a suite TOML)")
    ap.add_argument("--solver", action="append", default=[], help="with --suite: a solver to "
                    "rank (name or path/to/file.py:Class); repeatable (none: the built-ins)")
    ap.add_argument("--skip-check", action="store_true",
                    help="with --suite: do not run the conformance check first (an earlier "
                    "result for the same plugin code is reused)")
    ap.add_argument("--other-code", choices=("rerun", "accept", "refuse"), default="rerun",
                    help="rows in DIR made by other code (another fgamcd-opt source or plugin "
                    "file): run them again (default), keep them, or stop with an error")
    ap.add_argument("--accept-other-code", action="store_true",
                    help="same as --other-code accept")
    ap.add_argument("--grace", type=float, default=None, metavar="S",
                    help="kill a run S seconds after its time limit (default: max(5 s, 25%% of "
                    "the limit))")
    ap.add_argument("--dask-no-worker-timeout", type=float, default=None, metavar="S",
                    help="stop a Dask run after S seconds without a live worker (default 60)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    return ap


def _executor(args):
    from ..experiments.executors import make_executor

    if args.workers < 1 or args.threads_per_worker < 1 or (
            args.dask_workers is not None and args.dask_workers < 1):
        raise FgamcdError("fgamcd-bench: --workers, --dask-workers and --threads-per-worker "
                          "must be >= 1")
    if args.scheduler and args.dask_workers:
        raise FgamcdError("fgamcd-bench: give --scheduler or --dask-workers, not both")
    if args.grace is not None and not args.grace >= 0:
        raise FgamcdError("fgamcd-bench: --grace must be >= 0")
    from ..experiments.executors import NO_WORKER_TIMEOUT_S

    return make_executor(args.workers, args.scheduler, args.dask_workers,
                         args.threads_per_worker, args.inline,
                         args.dask_no_worker_timeout or NO_WORKER_TIMEOUT_S, args.grace)


def _interrupted(exc, out: Path) -> int:
    print(f"interrupted: {len(exc.running)} running cell(s) stopped (written to "
          f"{out / 'sweep-log.jsonl'}); every finished row is in {out / 'store.jsonl'}; rerun "
          "the same command to resume", file=sys.stderr)
    return 130


def _states_text(states: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(states.items(), key=lambda kv: (
        kv[0] != "done", kv[0])))


def run(args) -> int:
    command = "fgamcd-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if args.argv is None else "fgamcd-bench " + " ".join(shlex.quote(a) for a in args.argv)
    other = "accept" if args.accept_other_code else args.other_code
    from ..experiments.pool import Interrupted

    if args.suite:
        from ..experiments.suite import run_suite

        out = Path(args.output or f"bench-out/suite-{Path(args.suite).stem}")
        ex = _executor(args)
        try:
            board = run_suite(args.suite, args.solver, out, ex, check=not args.skip_check,
                              progress=not args.no_progress, command=command, other_code=other)
        except Interrupted as exc:
            return _interrupted(exc, out)
        finally:
            ex.close()
        print(board.read_text())
        print(f"leaderboard: {out / 'leaderboard.md'} and {out / 'leaderboard.html'}")
        summary = json.loads((out / "leaderboard.json").read_text())
        dq = [b["solver"] for b in summary["board"] if b["disqualified"]]
        bad = {k: v for k, v in summary["states"].items() if k != "done"}
        if bad or dq or summary["failed_checks"]:
            print(f"suite {summary['suite']}: {summary['cells']} runs: "
                  f"{_states_text(summary['states'])}"
                  + (f"; disqualified: {', '.join(dq)}" if dq else "")
                  + (f"; conformance FAIL: {', '.join(summary['failed_checks'])}"
                     if summary["failed_checks"] else "")
                  + "; see the leaderboard", file=sys.stderr)
            return 1
        return 0
    if not args.spec:
        raise FgamcdError("fgamcd-bench: give a spec file (or --suite NAME --solver ...)")
    from ..experiments.spec import load_spec

    spec = load_spec(args.spec, args.size)
    out = Path(args.output or f"bench-out/{spec.name}{'-' + spec.size if spec.size else ''}")
    if spec.kind == "learning":  # training runs, not solver cells (experiments/learning.py)
        from ..experiments.learning import run_learning

        ex = _executor(args)
        try:
            index = run_learning(spec, out, ex, command=command, train=not args.report_only,
                                 progress=not args.no_progress)
        except KeyboardInterrupt:
            print(f"interrupted; finished runs are in {out / 'runs'}; rerun the same command "
                  "to resume", file=sys.stderr)
            return 130
        finally:
            ex.close()
        print(f"{spec.name}: report {index}")
        return 0
    if spec.kind != "sweep":
        from ..experiments.figures import run_figure

        t0 = time.time()
        index = run_figure(spec, out, command=command)
        print(f"{spec.name}: done in {time.time() - t0:.1f} s; report {index}")
        return 0
    from ..experiments.sweep import run_sweep

    ex = _executor(args)
    try:
        counts = run_sweep(spec, out, ex, progress=not args.no_progress, command=command,
                           other_code=other, oracle_store=not args.no_oracle_store)
    except Interrupted as exc:
        return _interrupted(exc, out)
    finally:
        ex.close()
    states = {k: counts[k] for k in ("done", "failed", "killed", "crashed", "tampered")
              if counts.get(k)}
    print(f"{spec.name}: {counts['cells']} cells ({counts['resumed_done']} already done, "
          f"{counts['ran']} run: {_states_text(states) or 'none'}) in "
          f"{counts['elapsed_s']:.1f} s; store {out / 'store.jsonl'}, CSV {out / 'results.csv'}")
    if not args.no_report:
        from ..experiments.reporting import build_report

        index = build_report(out)
        print(f"report: {index} and {index.with_suffix('.html')}")
    if counts["not_done"]:
        print(f"{spec.name}: {counts['not_done']} of {counts['cells']} cells are not done "
              "(see the report's failed cells); rerun the same command to retry them",
              file=sys.stderr)
        return 1
    return 0


def _term_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    args.argv = argv
    import signal

    # a batch scheduler's SIGTERM stops a sweep like Ctrl-C: finished cells are in the store
    signal.signal(signal.SIGTERM, _term_as_interrupt)
    return run_guarded(run, args)


if __name__ == "__main__":
    sys.exit(main())
