"""Which committed reports under reports/ are stale, and re-running them with provenance.

    python benchmarks/rerun_reports.py                 # list every report: current or stale
    python benchmarks/rerun_reports.py --run           # re-run the stale ones
    python benchmarks/rerun_reports.py --run table3 suite-standard   # these (stale or not)
    python benchmarks/rerun_reports.py --run --all     # every report
    python benchmarks/rerun_reports.py --run fig08-full --keep   # the full size; resume a kill
    python benchmarks/rerun_reports.py --estimate-full  # worker time of every full size
    python benchmarks/rerun_reports.py --run fig08-full --solvers maasn qmix-da guard-only

A report is *current* when its store has format 2 (code identity and row checksums), every row
was made by the installed code (``fgamcd_opt.experiments.provenance.code_identity``: version and
a hash of the installed ``fgamcd_opt`` and built-in solvers, data included) and no row is left
out (checksum mismatch, not a cell). Anything else is *stale*: any change to that code makes
every report stale, which is the point (a result is only quoted with the code that made it).

Re-running a report moves its folder aside to ``runs/old-reports/NAME-<UTC time>`` (ignored by
git), runs its command from the repository root into the same folder, compares the new rows with
the old ones (how many rows a fresh run changes) and appends
the command, wall time, load average and outcome to ``benchmarks/results/rerun_reports.json``
(with how many rows of the same cells differ from the old store, on the fields both have).
The commands (2 local workers, the ``quick`` size where a spec has one) are the ones
docs/experiments.md documents:

- ``reports/NAME`` for every ``reports/specs/NAME.toml`` with a committed folder:
  ``fgamcd-bench reports/specs/NAME.toml [--size quick] -o reports/NAME --workers 2``;
- ``reports/NAME-full``: the spec's ``full`` size (the paper's grid, at least 5 seeds per
  point): ``fgamcd-bench reports/specs/NAME.toml --size full -o reports/NAME-full --workers 2``;
  listed once its folder exists, run by naming it (``--run fig08-full``); ``--keep`` runs into
  the existing folder, so a killed full run goes on from its finished rows. A full store is tens
  of MB (each row carries the run record's per-PB beam certificates), so git keeps it gzipped:
  after a run this script writes ``store.jsonl.gz`` next to the store (the raw ``store.jsonl``
  and ``results.csv`` are ignored; ``--keep`` restores the store from the ``.gz`` first, and
  ``gunzip -k reports/NAME-full/store.jsonl.gz && fgamcd-report reports/NAME-full`` re-renders);
- ``suite-standard``: ``fgamcd-bench --suite standard --solver
  examples/nearest_solver.py:NearestSolver -o reports/suite-standard --workers 2``;
- ``scaling/w1``, ``scaling/w2``, ``scaling/dask2``: the executor measurement (its
  ``reports/scaling/index.md`` quotes the timings by hand: update it after a re-run).

``--solvers LABEL ...`` re-runs only the rows of those solvers (labels as in the report): the
folder is copied aside, their rows are removed from the store and the command runs with
``--other-code accept``, so every other row is kept whatever code made it. For a change that
touches only those solvers; the report then says, in bold, how many of its rows other code made
(and this script lists it as stale), so the provenance of every number stays on the page.

To add a report: commit ``reports/specs/NAME.toml`` and its rendered ``reports/NAME`` (the first
rule finds it), or add an entry to ``EXTRA``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
LOG = ROOT / "benchmarks" / "results" / "rerun_reports.json"
EXTRA = {
    "suite-standard": ["--suite", "standard", "--solver",
                       "examples/nearest_solver.py:NearestSolver", "-o",
                       "reports/suite-standard", "--workers", "2"],
    "scaling/w1": ["reports/specs/scaling.toml", "-o", "reports/scaling/w1", "--workers", "1",
                   "--no-report"],
    "scaling/w2": ["reports/specs/scaling.toml", "-o", "reports/scaling/w2", "--workers", "2",
                   "--no-report"],
    "scaling/dask2": ["reports/specs/scaling.toml", "-o", "reports/scaling/dask2",
                      "--dask-workers", "2", "--no-report"],
}


def reports(with_full: bool = False) -> dict[str, list[str]]:
    """name -> fgamcd-bench arguments, for every committed report (``with_full``: also the full
    size of every spec that has one, committed or not)."""
    out = {}
    for spec in sorted((REPORTS / "specs").glob("*.toml")):
        name = spec.stem
        sizes = tomllib.loads(spec.read_text()).get("sizes", {})
        if (REPORTS / name / "store.jsonl").is_file():
            out[name] = [f"reports/specs/{spec.name}",
                         *(["--size", "quick"] if "quick" in sizes else []),
                         "-o", f"reports/{name}", "--workers", "2"]
        full = f"{name}-full"
        if "full" in sizes and (with_full or (REPORTS / full / "store.jsonl").is_file()
                                or (REPORTS / full / "store.jsonl.gz").is_file()):
            out[full] = [f"reports/specs/{spec.name}", "--size", "full", "-o",
                         f"reports/{full}", "--workers", "2"]
    out.update(EXTRA)
    return out


def folder(args: list[str]) -> Path:
    return ROOT / args[args.index("-o") + 1]


def gunzip_store(path: Path) -> bool:
    """Restore ``path/store.jsonl`` from the committed ``store.jsonl.gz`` where only that is
    here (a fresh clone of a full report); True when a store is there afterwards."""
    raw, gz = path / "store.jsonl", path / "store.jsonl.gz"
    if not raw.is_file() and gz.is_file():
        tmp = raw.with_suffix(".jsonl.tmp")
        with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, raw)
    return raw.is_file()


def gzip_store(path: Path) -> None:
    """Write ``path/store.jsonl.gz`` (what git keeps of a full report), atomically."""
    raw = path / "store.jsonl"
    if raw.is_file():
        tmp = path / "store.jsonl.gz.tmp"
        with open(raw, "rb") as src, gzip.GzipFile(tmp, "wb", mtime=0) as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, path / "store.jsonl.gz")


def status(path: Path) -> tuple[bool, str]:
    """(current?, why) of the report whose store is in ``path``."""
    from fgamcd_opt.errors import FgamcdError
    from fgamcd_opt.experiments.provenance import code_identity, code_text, same_code
    from fgamcd_opt.experiments.store import load_store

    if not gunzip_store(path):
        return False, "no store"
    try:
        view = load_store(path)
    except FgamcdError as exc:
        return False, f"unreadable: {exc}"
    if not view.verified:
        return False, "format 1: rows without code identity or checksums"
    now = code_identity()
    other = [r for r in view.rows if not same_code(r.get("code"), now)]
    why = []
    if other:
        codes = sorted({code_text(r.get("code")) for r in other})
        why.append(f"{len(other)} of {len(view.rows)} rows by other code ({'; '.join(codes)})")
    if view.ignored:
        why.append("rows left out: " + ", ".join(f"{v} {k}" for k, v in view.ignored.items()))
    cells = view.header.get("cells")
    if isinstance(cells, list) and len(cells) > len(view.rows):
        why.append(f"{len(cells) - len(view.rows)} cells without a row")
    states = {}
    for r in view.rows:
        states[r.get("state")] = states.get(r.get("state"), 0) + 1
    bad = {k: v for k, v in states.items() if k != "done"}
    note = f"; not done: {bad}" if bad else ""
    return (not why), ("; ".join(why) or f"current ({code_text(now)})") + note


def compare(new: Path, old: Path, rtol: float = 1e-9) -> dict:
    """Rows of the same cell in both stores, on the fields both have (an older store lacks the
    newer provenance fields): how many differ beyond ``rtol``, and in which fields most."""
    from fgamcd_opt.experiments.store import read_store
    from fgamcd_opt.experiments.sweep import comparable, same_value

    a = {r["cell"]: comparable(r) for r in read_store(new)[1]}
    b = {r["cell"]: comparable(r) for r in read_store(old)[1]}
    common = sorted(set(a) & set(b))
    fields: dict[str, int] = {}
    differ = 0
    for c in common:
        bad = [k for k in set(a[c]) & set(b[c]) if not same_value(a[c][k], b[c][k], rtol)]
        differ += bool(bad)
        for k in bad:
            fields[k] = fields.get(k, 0) + 1
    top = sorted(fields.items(), key=lambda kv: -kv[1])[:8]
    return {"cells_new": len(a), "cells_old": len(b), "common": len(common),
            "rows_differ": differ, "fields": dict(top), "rtol": rtol}


def drop_rows(store: Path, labels: set[str]) -> int:
    """Remove the rows of the solvers labelled ``labels`` from ``store`` (atomically); the
    header and every other line are kept as they are. Returns how many rows went."""
    kept, dropped = [], 0
    for line in store.read_text().splitlines(keepends=True):
        try:
            row = json.loads(line)
        except ValueError:
            kept.append(line)
            continue
        label = row.get("solver_label") or row.get("solver") if isinstance(row, dict) else None
        if isinstance(row, dict) and "cell" in row and label in labels:
            dropped += 1
            continue
        kept.append(line)
    tmp = store.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(kept))
    os.replace(tmp, store)
    return dropped


def rerun(name: str, args: list[str], keep: bool = False, solvers=()) -> dict:
    out = folder(args)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = ROOT / "runs" / "old-reports" / f"{name.replace('/', '-')}-{stamp}"
    extra = []
    if keep or solvers:
        gunzip_store(out)
    if solvers:
        if not (out / "store.jsonl").is_file():
            raise SystemExit(f"{name}: no store to re-run solvers {', '.join(solvers)} in")
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(out, aside)
        print(f"== {name}: {drop_rows(out / 'store.jsonl', set(solvers))} rows of "
              f"{', '.join(solvers)} removed; the rest kept (--other-code accept)", flush=True)
        extra = ["--other-code", "accept"]
    elif out.exists() and not keep:
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(out), str(aside))
    command = ["fgamcd-bench", *args, *extra, "--no-progress"]
    load0 = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").is_file() \
        else []
    print(f"== {name}: {' '.join(command)}", flush=True)
    t0 = time.monotonic()
    rc = subprocess.call([sys.executable, "-m", "fgamcd_opt.cli.bench", *command[1:]],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             [str(ROOT), os.environ.get("PYTHONPATH", "")])})
    wall = time.monotonic() - t0
    if name.endswith("-full"):
        gzip_store(out)
    load1 = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").is_file() \
        else []
    entry = {"report": name, "command": " ".join(command), "exit_status": rc,
             **({"solvers_rerun": list(solvers)} if solvers else {}),
             "wall_s": round(wall, 1), "load_before": load0, "load_after": load1,
             "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "status": status(out)[1]}
    if (aside / "store.jsonl").is_file() and (out / "store.jsonl").is_file():
        entry["compared_with_old"] = compare(out, aside)
        print(f"== {name}: against the old rows: {entry['compared_with_old']}", flush=True)
    print(f"== {name}: exit {rc}, {wall:.1f} s, load {' '.join(load0)} -> {' '.join(load1)}",
          flush=True)
    log = json.loads(LOG.read_text()) if LOG.is_file() else {"runs": []}
    log["runs"].append(entry)
    from fgamcd_opt.jsonio import write_json_atomic

    write_json_atomic(LOG, log)
    return entry


def worker_seconds(path: Path) -> tuple[float, int, int]:
    """(worker seconds summed over the rows, instances, rows) of the store in ``path``."""
    from fgamcd_opt.experiments.store import read_store

    rows = read_store(path)[1]
    inst = {(json.dumps(r.get("point"), sort_keys=True), r.get("replicate")) for r in rows}
    return sum(float(r.get("wall_s") or 0.0) for r in rows), len(inst), len(rows)


def estimate_full() -> dict:
    """Worker time of every spec's full size: measured where ``reports/NAME-full`` has finished,
    else the quick report's worker seconds per instance x the full size's instances x the
    full/quick ratio per instance of the specs measured at both sizes, for the specs whose quick
    size fixes U (U = 20 there, Table II's U = 30 at full size; 1 for the others)."""
    from fgamcd_opt.experiments.spec import load_spec

    out, ratios = {}, []
    for name, args in reports(with_full=True).items():
        if not name.endswith("-full") or "axes" not in tomllib.loads(
                (ROOT / args[0]).read_text()):
            continue
        base = name[:-len("-full")]
        spec = load_spec(ROOT / args[0], "full")
        cells = spec.cells()
        n_inst = len({(json.dumps(c["point"], sort_keys=True), c["replicate"]) for c in cells})
        row = {"runs": len(cells), "instances": n_inst,
               "quick_fixes_users": "n_users" in load_spec(ROOT / args[0], "quick").params
               and "n_users" not in spec.params}
        full = folder(args)
        if gunzip_store(full):
            w, i, n = worker_seconds(full)
            if n >= len(cells):
                row.update(worker_s=round(w), measured=True)
        if (REPORTS / base / "store.jsonl").is_file():
            qw, qi, _ = worker_seconds(REPORTS / base)
            row["quick_worker_s_per_instance"] = qw / max(qi, 1)
            if row.get("measured") and row["quick_fixes_users"]:
                ratios.append((row["worker_s"] / n_inst) / row["quick_worker_s_per_instance"])
        out[name] = row
    ratio = sum(ratios) / len(ratios) if ratios else 1.0
    for row in out.values():
        if not row.get("measured") and "quick_worker_s_per_instance" in row:
            row["worker_s"] = round(row["quick_worker_s_per_instance"] * row["instances"]
                                    * (ratio if row["quick_fixes_users"] else 1.0))
            row["measured"] = False
    total = sum(r.get("worker_s", 0) for r in out.values())
    return {"specs": out, "full_over_quick_per_instance": ratio,
            "runs": sum(r["runs"] for r in out.values()), "worker_s": total,
            "hours_on_2_workers": total / 2 / 3600}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", nargs="*", metavar="NAME", default=None,
                    help="re-run these reports (none named: the stale ones)")
    ap.add_argument("--all", action="store_true", help="with --run: every report")
    ap.add_argument("--keep", action="store_true",
                    help="with --run: run into the existing folder (its finished rows made by "
                         "the installed code are kept: a killed run goes on)")
    ap.add_argument("--solvers", nargs="+", metavar="LABEL", default=(),
                    help="with --run: re-run only these solvers' rows (labels), keeping the "
                         "others whatever code made them")
    ap.add_argument("--estimate-full", action="store_true",
                    help="print the worker time of every spec's full size (measured or "
                         "estimated from the quick run) and exit")
    args = ap.parse_args(argv)
    if args.estimate_full:
        est = estimate_full()
        for name, row in est["specs"].items():
            print(f"{name:<12} {row['runs']:>5} runs  {row['instances']:>4} instances  "
                  f"{row.get('worker_s', 0):>7} worker s  "
                  f"{'measured' if row.get('measured') else 'estimated'}")
        print(f"total {est['runs']} runs, {est['worker_s']} worker s "
              f"({est['worker_s'] / 3600:.1f} h; {est['hours_on_2_workers']:.1f} h on 2 "
              f"workers); full/quick per instance {est['full_over_quick_per_instance']:.2f}")
        return 0
    table = reports()
    every = reports(with_full=True)
    states = {name: status(folder(a)) for name, a in table.items()}
    width = max(len(n) for n in table)
    for name, (ok, why) in states.items():
        print(f"{name:<{width}}  {'current' if ok else 'STALE'}  {why}")
    if args.run is None:
        return 0 if all(ok for ok, _ in states.values()) else 1
    unknown = [n for n in args.run if n not in every]
    if unknown:
        print(f"unknown report(s): {', '.join(unknown)} (known: {', '.join(every)})",
              file=sys.stderr)
        return 2
    todo = args.run or [n for n in table if args.all or not states[n][0]]
    failed = [n for n in todo
              if rerun(n, every[n], args.keep, tuple(args.solvers))["exit_status"] not in (0, 1)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
