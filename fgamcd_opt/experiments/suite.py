"""Benchmark-suite mode: a fixed, versioned set of instances (``fgamcd_opt/data/suite/*.toml``),
the user's solver checked for conformance (:func:`fgamcd_opt.testing.check_solver`) and ranked
against the built-ins and the certified lower bound in one leaderboard (Markdown and HTML).

Score of a solver on an instance: its total delay over the best certified lower bound any solver
reported there (the MILP's), so 1.0 would be provably optimal; an incomplete plan scores
infinity. Overall rank: fewest incomplete instances first, then the geometric mean of the ratio
over the complete ones, then total solve time.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import tomllib
from importlib import resources
from pathlib import Path

from ..errors import FgamcdError
from .reporting import Doc, delay_of, fmt
from .spec import SpecError, _digest
from .store import Store, export_csv


def load_suite(name_or_path: str) -> tuple[dict, str]:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.is_file():
        if not p.is_file():
            raise SpecError(str(p), "", "suite file not found")
        text, src = p.read_text(), str(p)
    else:
        res = resources.files("fgamcd_opt.data") / "suite" / f"{name_or_path}.toml"
        if not res.is_file():
            known = sorted(x.name[:-5] for x in (resources.files("fgamcd_opt.data") / "suite")
                           .iterdir() if x.name.endswith(".toml"))
            raise FgamcdError(f"unknown suite {name_or_path!r} (known: {', '.join(known)}; or "
                              "give a suite TOML file)")
        text, src = res.read_text(), f"fgamcd_opt/data/suite/{name_or_path}.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(src, "", f"not valid TOML ({exc})") from None
    for key in ("name", "version", "instances", "builtins"):
        if key not in data:
            raise SpecError(src, key, "required")
    if not isinstance(data["instances"], list) or not data["instances"]:
        raise SpecError(src, "instances", "need at least one [[instances]] entry")
    from ..generators import SCENARIOS

    names = set()
    for i, inst in enumerate(data["instances"]):
        for key in ("name", "scenario", "seed"):
            if key not in inst:
                raise SpecError(src, f"instances[{i}].{key}", "required")
        if inst["scenario"] not in SCENARIOS:
            raise SpecError(src, f"instances[{i}].scenario", f"unknown {inst['scenario']!r}")
        if inst["name"] in names:
            raise SpecError(src, f"instances[{i}].name", "repeated")
        names.add(inst["name"])
    return data, src


def _solver_identity(ref: str) -> str:
    """Built-in: its name (code_version is in the row); a file: name + content hash, so an
    edited solver file is run again instead of reusing old rows."""
    if ":" in ref and ref.split(":")[0].endswith(".py"):
        path = Path(ref.rsplit(":", 1)[0])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "?"
        return f"{path.name}:{ref.rsplit(':', 1)[1]}@{digest}"
    return ref


def suite_cells(suite: dict, solvers: list[tuple[str, str]]) -> list[dict]:
    """solvers: (label, registry reference)."""
    cells = []
    for inst in suite["instances"]:
        gen = dict(inst.get("params", {}))
        for label, ref in solvers:
            cell = {"scenario": inst["scenario"], "generator_params": gen,
                    "instance_seed": int(inst["seed"]), "solver": _solver_identity(ref),
                    "solver_params": {}, "time_limit_s": suite.get("time_limit_s"),
                    "oracle": suite.get("oracle", "fast"), "oracle_options": {}}
            cell["cell"] = _digest(cell)
            cell.update({"spec": f"suite-{suite['name']}-v{suite['version']}",
                         "point": {"instance": inst["name"]}, "solver_point": {},
                         "replicate": 0, "solver_label": label, "solver_ref": ref})
            cells.append(cell)
    return cells


def run_suite(suite_name: str, solver_refs: list[str], out_dir, executor, check: bool = True,
              progress: bool = True, command: str = "") -> Path:
    from tqdm import tqdm

    from .. import registry
    from ..testing import check_solver
    from .sweep import crash_rows, group_by_instance, run_cells

    suite, src = load_suite(suite_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    conformance = {}
    user = []
    for ref in solver_refs:
        if ":" in ref and ref.split(":")[0].endswith(".py"):
            # absolute, so worker processes (any cwd) import the same file
            ref = f"{Path(ref.rsplit(':', 1)[0]).resolve()}:{ref.rsplit(':', 1)[1]}"
        cls = registry.get_solver(ref)
        label = cls.name if cls.name not in suite["builtins"] or ref == cls.name else \
            f"{cls.name} (yours)"
        user.append((label, ref))
        if check and ref not in suite["builtins"]:
            tc = time.time()
            rep = check_solver(cls)
            conformance[label] = {"ok": rep.ok, "failures": rep.failures,
                                  "time_s": time.time() - tc}
            status = "passes" if rep.ok else f"FAILS ({len(rep.failures)} problem(s))"
            print(f"conformance check: {label} {status} in {time.time() - tc:.1f} s")
            for f in rep.failures:
                print(f"  - {f}")
    solvers = [(b, b) for b in suite["builtins"] if b not in {r for _, r in user}] + user
    suite_hash = _digest({"suite": suite})
    store = Store(out / "store.jsonl", f"suite-{suite['name']}-v{suite['version']}",
                  suite_hash, meta={"suite": src})
    cells = suite_cells(suite, solvers)
    try:
        latest = store.latest()
        todo = [c for c in cells if latest.get(c["cell"], {}).get("state") != "done"]
        bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc=f"suite {suite['name']}",
                   unit="run", disable=not progress)
        failed = 0
        try:
            for rows in executor.map_unordered(run_cells, group_by_instance(todo), crash_rows):
                for row in rows:
                    store.append(row)
                    failed += row["state"] != "done"
                bar.set_postfix(failed=failed, refresh=False)
                bar.update(len(rows))
        finally:
            bar.close()
        latest = store.latest()
        rows = [latest[c["cell"]] for c in cells if c["cell"] in latest]
        export_csv(rows, out / "results.csv")
    finally:
        store.close()
    elapsed = time.time() - t0
    with open(out / "sweep-log.jsonl", "a") as fh:
        fh.write(json.dumps({"command": command, "elapsed_s": round(elapsed, 2),
                             "executor": executor.description, "ran": len(todo),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                      time.gmtime(t0))}) + "\n")
    return write_leaderboard(suite, src, rows, [lab for lab, _ in solvers], out, conformance,
                             elapsed, command, len(todo), executor.description)


def leaderboard_rows(suite: dict, rows: list[dict], labels: list[str]) -> tuple[list, dict]:
    by = {(r["point"]["instance"], r["solver_label"]): r for r in rows}
    bounds = {}
    for inst in suite["instances"]:
        bs = [r.get("bound_s") for (i, _), r in by.items() if i == inst["name"]
              and r.get("state") == "done" and r.get("bound_s")]
        bounds[inst["name"]] = max(bs) if bs else None
    board = []
    for lab in labels:
        ratios, inc, missing, solve = [], 0, 0, 0.0
        per = {}
        for inst in suite["instances"]:
            r = by.get((inst["name"], lab))
            if r is None or r.get("state") != "done":
                missing += 1
                per[inst["name"]] = None
                continue
            t = delay_of(r)
            solve += r.get("solve_time_s") or 0.0
            b = bounds[inst["name"]]
            if math.isinf(t):
                inc += 1
                per[inst["name"]] = INF_MARK
            else:
                ratio = t / b if b else None
                per[inst["name"]] = (t, ratio)
                if ratio is not None:
                    ratios.append(ratio)
        gmean = math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else None
        board.append({"solver": lab, "incomplete": inc, "failed": missing,
                      "gmean_ratio": gmean, "solve_s": solve, "per": per,
                      "wins": 0})
    for inst in suite["instances"]:
        best = min((delay_of(by[(inst["name"], lab)]) for lab in labels
                    if (inst["name"], lab) in by and by[(inst["name"], lab)].get("state")
                    == "done"), default=math.inf)
        for b in board:
            v = b["per"].get(inst["name"])
            if isinstance(v, tuple) and not math.isinf(best) and v[0] <= best * (1 + 1e-9):
                b["wins"] += 1
    board.sort(key=lambda b: (b["failed"] + b["incomplete"],
                              b["gmean_ratio"] if b["gmean_ratio"] is not None else math.inf,
                              b["solve_s"]))
    return board, bounds


INF_MARK = "incomplete"


def write_leaderboard(suite, src, rows, labels, out: Path, conformance: dict, elapsed: float,
                      command: str, ran: int, executor: str) -> Path:
    board, bounds = leaderboard_rows(suite, rows, labels)
    doc = Doc()
    title = f"fgamcd benchmark suite '{suite['name']}' v{suite['version']}: leaderboard"
    doc.h(1, title)
    doc.p(suite.get("description", ""))
    doc.p(f"Suite file `{src}`; {len(suite['instances'])} instances x {len(labels)} solvers; "
          f"time limit {suite.get('time_limit_s')} s per run; oracle `{suite.get('oracle')}`. "
          f"Command `{command}`: {ran} run(s) executed ({executor}), wall time "
          f"{elapsed:.1f} s (finished runs are reused from the store).")
    if conformance:
        doc.h(2, "Conformance check (fgamcd_opt.testing.check_solver)")
        doc.table(["solver", "result", "time", "problems"],
                  [[k, "pass" if v["ok"] else "FAIL", f"{v['time_s']:.1f} s",
                    "; ".join(v["failures"])[:400] or "none"] for k, v in conformance.items()])
    doc.h(2, "Ranking")
    doc.table(["rank", "solver", "incomplete instances", "failed runs",
               "delay / certified bound (geo. mean over complete)", "best on", "total solve s"],
              [[i, b["solver"], b["incomplete"], b["failed"], fmt(b["gmean_ratio"], ".4f"),
                f"{b['wins']}/{len(suite['instances'])}", f"{b['solve_s']:.1f}"]
               for i, b in enumerate(board, 1)],
              "Fewest incomplete (infinite-delay) instances first, then the geometric mean of "
              "total delay over the best certified lower bound (1.0 = provably optimal)")
    doc.h(2, "Per instance: total delay in s (ratio to the bound)")
    head = ["solver"] + [i["name"] for i in suite["instances"]]
    trs = []
    for b in board:
        row = [b["solver"]]
        for inst in suite["instances"]:
            v = b["per"].get(inst["name"])
            if v is None:
                row.append("failed")
            elif v == INF_MARK:
                row.append("inf (incomplete)")
            else:
                row.append(f"{v[0]:.4g}" + (f" ({v[1]:.3f})" if v[1] is not None else ""))
        trs.append(row)
    trs.append(["certified lower bound"] + [fmt(bounds[i["name"]], ".4g")
                                           for i in suite["instances"]])
    doc.table(head, trs)
    doc.h(2, "Instances")
    doc.table(["name", "scenario", "seed", "parameters"],
              [[i["name"], i["scenario"], i["seed"], f"`{json.dumps(i.get('params', {}))}`"]
               for i in suite["instances"]])
    md = out / "leaderboard.md"
    md.write_text(doc.markdown())
    (out / "leaderboard.html").write_text(doc.html(title))
    return md
