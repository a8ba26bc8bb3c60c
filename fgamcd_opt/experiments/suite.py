"""Benchmark-suite mode: a fixed, versioned set of instances (``fgamcd_opt/data/suite/*.toml``),
each given solver checked for conformance (:func:`fgamcd_opt.testing.check_solver`, in a process
of its own) and ranked against the built-ins and the certified lower bound in one leaderboard
(Markdown and HTML).

Nothing a plugin reports is trusted: it runs in a sandbox process on its own copy of each
instance; its plan is scored by the evaluator on the pristine instance; its bound is shown as a
claim (and flagged when it is above a delay the evaluator measured); its run is killed past the
time limit plus the grace. Only the suite's ``bound_solver`` (a built-in) supplies the certified
lower bound. Score of a solver on an instance: its total delay over that bound (1.0 would be
provably optimal). Ranking: qualified solvers first (a conformance FAIL, a tampered run or a
crashed run disqualifies, and the board says why), then fewest runs without a comparable plan
(failed, killed, incomplete, structurally infeasible), then fewest runs over the time limit,
then the geometric mean of the ratio, then total solve time (or total oracle calls,
``rank_by = "oracle_calls"``, which a loaded machine does not change).
"""

from __future__ import annotations

import json
import math
import sys
import time
import tomllib
from importlib import resources
from pathlib import Path

from ..errors import FgamcdError
from .reporting import Doc, delay_of, fmt
from .spec import SpecError, _digest
from .store import Store, export_csv

SUITE_KEYS = {"name", "version", "description", "time_limit_s", "oracle", "builtins",
              "bound_solver", "builtin_params", "check_time_limit_s", "oracle_call_budget",
              "rank_by", "instances"}
RANK_BY = ("solve_time", "oracle_calls")
CHECK_RUNS = 6  # solver runs in one conformance check (3 fixture instances x 2 runs)
STRUCTURAL = ("malformed", "storage", "migration_source", "migration_duplicate", "not_holding",
              "spurious_user", "power", "slot_conflict")


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
    validate_suite(data, src)
    return data, src


def validate_suite(data: dict, src: str) -> None:
    from ..generators import SCENARIOS
    from ..params import resolve
    from ..registry import BUILTIN_SOLVERS, get_solver

    def bad(key, msg):
        raise SpecError(src, key, msg)

    unknown = sorted(set(data) - SUITE_KEYS)
    if unknown:
        bad(unknown[0], f"unknown key (known: {', '.join(sorted(SUITE_KEYS))})")
    for key in ("name", "version", "instances", "builtins"):
        if key not in data:
            bad(key, "required")
    builtins = data["builtins"]
    if not isinstance(builtins, list) or not all(isinstance(b, str) for b in builtins):
        bad("builtins", "a list of built-in solver names")
    for i, b in enumerate(builtins):
        if b not in BUILTIN_SOLVERS:
            bad(f"builtins[{i}]", f"{b!r} is not a built-in solver (known: "
                                  f"{', '.join(BUILTIN_SOLVERS)})")
    if len(set(builtins)) != len(builtins):
        bad("builtins", "repeated name")
    bs = data.get("bound_solver")
    if bs is not None and bs not in builtins:
        bad("bound_solver", f"{bs!r} must be one of the suite's builtins")
    bp = data.get("builtin_params", {})
    if not isinstance(bp, dict):
        bad("builtin_params", "a table: solver name -> its parameters")
    for name, params in bp.items():
        if name not in builtins:
            bad(f"builtin_params.{name}", "not one of the suite's builtins")
        try:
            resolve(get_solver(name).params, params, owner=f"solver {name}")
        except FgamcdError as exc:
            bad(f"builtin_params.{name}", str(exc).lstrip(": "))
    for key in ("time_limit_s", "check_time_limit_s"):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
            bad(key, "must be a number > 0")
    b = data.get("oracle_call_budget")
    if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
        bad("oracle_call_budget", "must be an integer >= 1")
    if data.get("rank_by", "solve_time") not in RANK_BY:
        bad("rank_by", f"must be one of {', '.join(RANK_BY)}")
    if not isinstance(data["instances"], list) or not data["instances"]:
        bad("instances", "need at least one [[instances]] entry")
    names = set()
    for i, inst in enumerate(data["instances"]):
        for key in ("name", "scenario", "seed"):
            if key not in inst:
                bad(f"instances[{i}].{key}", "required")
        if inst["scenario"] not in SCENARIOS:
            bad(f"instances[{i}].scenario", f"unknown {inst['scenario']!r}")
        if inst["name"] in names:
            bad(f"instances[{i}].name", "repeated")
        names.add(inst["name"])


def _is_file_ref(ref: str) -> bool:
    return ":" in ref and ref.rsplit(":", 1)[0].endswith(".py")


def _solver_identity(ref: str) -> str:
    """Built-in: its name (the code identity is in the row); a file: name + content hash, so an
    edited solver file gets cells of its own instead of reusing old rows."""
    from .provenance import file_sha256

    if _is_file_ref(ref):
        path = Path(ref.rsplit(":", 1)[0])
        digest = file_sha256(path)[:12] if path.is_file() else "?"
        return f"{path.name}:{ref.rsplit(':', 1)[1]}@{digest}"
    return ref


def suite_tag(suite: dict) -> str:
    return f"suite-{suite['name']}-v{suite['version']}"


def suite_cells(suite: dict, solvers: list[tuple[str, str]]) -> list[dict]:
    """solvers: (label, registry reference)."""
    bparams = suite.get("builtin_params", {})
    budget = suite.get("oracle_call_budget")
    cells = []
    for inst in suite["instances"]:
        gen = dict(inst.get("params", {}))
        for label, ref in solvers:
            cell = {"scenario": inst["scenario"], "generator_params": gen,
                    "instance_seed": int(inst["seed"]), "solver": _solver_identity(ref),
                    "solver_params": dict(bparams.get(ref, {})),
                    "time_limit_s": suite.get("time_limit_s"),
                    "oracle": suite.get("oracle", "fast"), "oracle_options": {}}
            if budget is not None:
                cell["oracle_call_budget"] = int(budget)
            cell["cell"] = _digest(cell)
            cell.update({"spec": suite_tag(suite), "point": {"instance": inst["name"]},
                         "solver_point": {}, "replicate": 0, "solver_label": label,
                         "solver_ref": ref})
            cells.append(cell)
    return cells


def check_budget_s(suite: dict) -> float | None:
    """Seconds the conformance check of one plugin may take: ``check_time_limit_s``, or
    CHECK_RUNS runs at the hard time limit each."""
    from .isolation import hard_limit_s

    if suite.get("check_time_limit_s"):
        return float(suite["check_time_limit_s"])
    hard = hard_limit_s(suite.get("time_limit_s"))
    return None if hard is None else CHECK_RUNS * hard + 30.0


def _conformance(executor, suite: dict, user: list, out: Path, skip: bool) -> dict:
    """label -> check result; a skipped check reuses an earlier result for the same plugin code
    (``DIR/conformance.json``)."""
    from ..jsonio import write_json_atomic
    from .isolation import is_builtin
    from .provenance import solver_code

    path = out / "conformance.json"
    try:
        earlier = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        earlier = {}
    results = {}
    for label, ref in user:
        if is_builtin(ref):
            continue
        code = solver_code(ref)
        old = earlier.get(label)
        if skip:
            if old and old.get("solver_code") == code:
                results[label] = {**old, "reused": True}
            continue
        rep = executor.check(ref, suite.get("time_limit_s"), check_budget_s(suite))
        results[label] = {**rep, "solver_code": code,
                          "checked": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        status = "passes" if rep["ok"] else f"FAILS ({len(rep['failures'])} problem(s))"
        print(f"conformance check: {label} {status} in {rep['time_s']:.1f} s")
        for f in rep["failures"]:
            print(f"  - {f}")
    if results:
        write_json_atomic(path, {**earlier, **results})
    return results


def run_suite(suite_name: str, solver_refs: list[str], out_dir, executor, check: bool = True,
              progress: bool = True, command: str = "", other_code: str = "rerun") -> Path:
    """Run the suite (resumable) and write the leaderboard (``leaderboard.md``, ``.html`` and
    ``.json``, the last with the ranking and the run states); returns the Markdown path."""
    from tqdm import tqdm

    from .pool import Interrupted, describe_solver
    from .provenance import code_identity
    from .sweep import count_states, execute, plan_cells, with_solver_code, write_log

    suite, src = load_suite(suite_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    user = []
    for ref in solver_refs:
        if _is_file_ref(ref):
            # absolute, so child processes (any cwd) import the same file
            ref = f"{Path(ref.rsplit(':', 1)[0]).resolve()}:{ref.rsplit(':', 1)[1]}"
        cls_name = describe_solver(ref)[0]  # a plugin is imported in a child, never here
        label = cls_name if cls_name not in suite["builtins"] or ref == cls_name else \
            f"{cls_name} (yours)"
        if any(lab == label for lab, _ in user):
            label = f"{label} ({Path(ref.rsplit(':', 1)[0]).name})"
        user.append((label, ref))
    conformance = _conformance(executor, suite, user, out, skip=not check)
    solvers = [(b, b) for b in suite["builtins"] if b not in {r for _, r in user}] + user
    cells = with_solver_code(suite_cells(suite, solvers))
    store = Store(out / "store.jsonl", suite_tag(suite), _digest({"suite": suite}),
                  meta={"suite": src, "code": code_identity(),
                        "cells": sorted(c["cell"] for c in cells),
                        "solvers": {lab: ref if not _is_file_ref(ref) else
                                    _solver_identity(ref) for lab, ref in solvers},
                        "solvers_resolved": _resolved(suite, solvers)})
    counts = {"cells": len(cells), "resumed_done": 0, "ran": 0}
    interrupted: list[dict] = []
    try:
        todo, notes = plan_cells(cells, store, other_code)
        counts["resumed_done"] = len(cells) - len(todo)
        counts.update(notes)
        bar = tqdm(total=len(cells), initial=counts["resumed_done"],
                   desc=f"suite {suite['name']}", unit="run", disable=not progress,
                   file=sys.stderr)
        try:
            execute(executor, todo, store, bar, counts)
        except Interrupted as exc:
            interrupted = exc.running
            raise
        finally:
            bar.close()
            latest = store.latest()
            rows = [latest[c["cell"]] for c in cells if c["cell"] in latest]
            export_csv(rows, out / "results.csv")
            write_log(out, {"command": command, "elapsed_s": round(time.time() - t0, 2),
                            "executor": executor.description,
                            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                            **{k: v for k, v in counts.items()},
                            "states": count_states(rows), "code": code_identity(),
                            "interrupted": [c["cell"] for c in interrupted]})
        ignored = {"checksum mismatch or not a cell of the suite": len(store.rejected),
                   "made by other code, kept (--accept-other-code)":
                       counts.get("other_code", 0) if other_code == "accept" else 0}
    finally:
        store.close()
    elapsed = time.time() - t0
    return write_leaderboard(suite, src, rows, solvers, out, conformance, elapsed, command,
                             counts["ran"], executor.description, ignored,
                             getattr(executor, "grace", None))


def _resolved(suite: dict, solvers: list[tuple[str, str]]) -> dict:
    """label -> the solver's parameters with its defaults filled in."""
    from ..params import resolve
    from .pool import describe_solver

    out = {lab: resolve(describe_solver(ref)[2], suite.get("builtin_params", {}).get(ref, {}))
           for lab, ref in solvers}
    return json.loads(json.dumps(out, default=list))


# ---- the leaderboard ----------------------------------------------------------------------
def verdict_text(row: dict) -> tuple[str, str]:
    """(class, text) of a scored run: feasible | qos | structural | incomplete."""
    kinds = row.get("violations") or {}
    structural = {k: v for k, v in kinds.items() if k in STRUCTURAL}
    if structural:
        return "structural", "infeasible: " + ", ".join(f"{k} x{v}" for k, v in
                                                       sorted(structural.items()))
    if row.get("complete") is False or row.get("total_delay_s") is None:
        n = row.get("undelivered_users") or 0
        return "incomplete", f"incomplete: {n} user(s) not served" if n else "incomplete"
    q = row.get("qos_violating_users") or 0
    if q:
        return "qos", f"QoS: {q} user(s) below"
    return "feasible", "feasible"


def contradicted(row: dict, cls: str) -> bool:
    """The solver's claim (optimal, feasible, time limit) against the evaluator's verdict: a
    structural violation, or unserved users its message does not mention (the conformance
    check's rule)."""
    if row.get("solver_status") not in ("optimal", "feasible", "time_limit"):
        return False
    return cls == "structural" or (cls == "incomplete" and not (row.get("message") or ""))


def _claimed_bound(row: dict, bound_label: str | None) -> float | None:
    if row.get("solver_label") == bound_label:
        return None
    v = row.get("claimed_bound_s") if row.get("solver_origin") == "plugin" else \
        row.get("bound_s")
    return float(v) if isinstance(v, int | float) else None


def leaderboard_rows(suite: dict, rows: list[dict], labels: list[str],
                     conformance: dict | None = None) -> tuple[list, dict]:
    """(board, per-instance facts). Board entries: one per solver label, ranked."""
    conformance = conformance or {}
    bound_label = suite.get("bound_solver")
    rank_by = suite.get("rank_by", "solve_time")
    limit = suite.get("time_limit_s")
    budget = suite.get("oracle_call_budget")
    by = {(r["point"]["instance"], r["solver_label"]): r for r in rows}
    names = [i["name"] for i in suite["instances"]]
    facts = {}
    for name in names:
        b = by.get((name, bound_label))
        bound = b.get("bound_s") if b is not None and b.get("state") == "done" and \
            b.get("solver_origin", "builtin") == "builtin" else None
        delays = [(delay_of(r), lab) for (i, lab), r in by.items()
                  if i == name and r.get("state") == "done" and not math.isinf(delay_of(r))]
        best = min(delays, default=(math.inf, None))
        claims = {}
        for (i, lab), r in by.items():
            c = _claimed_bound(r, bound_label) if i == name else None
            if c is not None:
                claims[lab] = {"value": c, "false": c > best[0] * (1 + 1e-6) + 1e-12}
        facts[name] = {"bound": bound, "best": best[0], "best_by": best[1], "claims": claims,
                       "bound_false": bound is not None and bound > best[0] * (1 + 1e-6) + 1e-12}
    board = []
    for lab in labels:
        e = {"solver": lab, "per": {}, "ratios": [], "not_scored": 0, "incomplete": 0,
             "qos_users": 0, "contradicted": 0, "over_limit": 0, "over_budget": 0,
             "solve_s": 0.0, "oracle_calls": 0, "wins": 0, "reasons": [], "states": {},
             "origin": "builtin"}
        check = conformance.get(lab)
        if check is not None and not check.get("ok"):
            e["reasons"].append("conformance check FAIL")
        for name in names:
            r = by.get((name, lab))
            if r is None:
                e["per"][name] = ("missing", "not run", None)
                e["not_scored"] += 1
                continue
            e["origin"] = r.get("solver_origin", e["origin"])
            state = r.get("state")
            e["states"][state] = e["states"].get(state, 0) + 1
            if state == "killed" or (limit and (r.get("solve_time_s") or 0) > limit):
                e["over_limit"] += 1
            if budget and (r.get("oracle_calls") or 0) > budget:
                e["over_budget"] += 1
            if state != "done":
                e["not_scored"] += 1
                text = f"{state}: {(r.get('message') or '')[:90]}"
                if state == "tampered" and r.get("total_delay_s") is not None:
                    text += f" (its plan on the pristine instance: {r['total_delay_s']:.4g} s)"
                e["per"][name] = (state, text, None)
                continue
            e["solve_s"] += r.get("solve_time_s") or 0.0
            e["oracle_calls"] += r.get("oracle_calls") or 0
            cls, text = verdict_text(r)
            e["qos_users"] += r.get("qos_violating_users") or 0
            if contradicted(r, cls):
                e["contradicted"] += 1
                text += f" (claimed {r['solver_status']})"
            t = delay_of(r)
            if math.isinf(t):
                e["incomplete"] += 1
                e["per"][name] = (cls, text, None)
                continue
            b = facts[name]["bound"]
            ratio = t / b if b else None
            if ratio is not None:
                e["ratios"].append(ratio)
            if t <= facts[name]["best"] * (1 + 1e-9):
                e["wins"] += 1
            e["per"][name] = (cls, text, (t, ratio))
        for st, why in (("tampered", "tampered with its instance"),
                        ("crashed", "its process crashed")):
            if e["states"].get(st):
                e["reasons"].append(f"{why} ({e['states'][st]} run(s))")
        e["gmean_ratio"] = math.exp(sum(math.log(x) for x in e["ratios"]) / len(e["ratios"])) \
            if e["ratios"] else None
        board.append(e)
    tie = "oracle_calls" if rank_by == "oracle_calls" else "solve_s"
    board.sort(key=lambda b: (bool(b["reasons"]), b["not_scored"] + b["incomplete"],
                              b["not_scored"], b["over_limit"] + b["over_budget"],
                              b["gmean_ratio"] if b["gmean_ratio"] is not None else math.inf,
                              b[tie]))
    return board, facts


def _cell_text(v) -> str:
    cls, text, num = v
    if num is None:
        return text
    t, ratio = num
    s = f"{t:.4g}" + (f" ({ratio:.3f})" if ratio is not None else "")
    return s if cls == "feasible" else f"{s}, {text}"


def write_leaderboard(suite, src, rows, solvers, out: Path, conformance: dict, elapsed: float,
                      command: str, ran: int, executor: str, ignored: dict | None = None,
                      grace: float | None = None) -> Path:
    from .isolation import grace_s
    from .provenance import code_identity, code_text

    labels = [lab for lab, _ in solvers]
    board, facts = leaderboard_rows(suite, rows, labels, conformance)
    names = [i["name"] for i in suite["instances"]]
    limit = suite.get("time_limit_s")
    budget = suite.get("oracle_call_budget")
    doc = Doc()
    title = f"fgamcd benchmark suite '{suite['name']}' v{suite['version']}: leaderboard"
    doc.h(1, title)
    doc.p(suite.get("description", ""))
    plugin_codes = []
    for lab, _ref in solvers:
        r = next((x for x in rows if x.get("solver_label") == lab and x.get("solver_code")),
                 None)
        if r is not None:
            sc = r["solver_code"]
            plugin_codes.append(f"`{lab}` = {sc.get('file') or sc.get('entry_point')} "
                                f"sha256 {sc.get('sha256') or sc.get('package_version')}")
    grace = grace if grace is not None else grace_s(limit)
    bound_solver = suite.get("bound_solver")
    doc.p(f"Suite file `{src}`; {len(names)} instances x {len(labels)} solvers; time limit "
          + (f"{limit:g} s per run (a run is killed at {limit:g} + {grace:g} s grace)"
             if limit else "none")
          + (f"; deterministic budget: {budget} oracle calls per run" if budget else "")
          + f"; oracle `{suite.get('oracle', 'fast')}`; "
          + (f"certified lower bound from `{bound_solver}` only" if bound_solver else
             "no certified bound (the suite names no bound_solver)")
          + f". Code: {code_text(code_identity())}"
          + (f"; plugins: {'; '.join(plugin_codes)}" if plugin_codes else "") + ". "
          f"Command `{command}`: {ran} run(s) executed ({executor}), wall time {elapsed:.1f} s "
          "(finished runs of the same code are reused from the store).")
    left = {k: v for k, v in (ignored or {}).items() if v}
    if left:
        doc.p("Rows not used: " + "; ".join(f"{v} {k}" for k, v in left.items()) + ".")
    doc.h(2, "Ranking")
    tie = "oracle calls" if suite.get("rank_by") == "oracle_calls" else "solve time"
    trs: list = []
    rank = 0
    for b in board:
        rank += 0 if b["reasons"] else 1
        trs.append([
            "-" if b["reasons"] else rank, b["solver"],
            "built-in" if b["origin"] == "builtin" else "plugin",
            "DISQUALIFIED: " + "; ".join(b["reasons"]) if b["reasons"] else "qualified",
            f"{len(names) - b['not_scored']}/{len(names)}", b["incomplete"], b["qos_users"],
            b["contradicted"], b["over_limit"] + (b["over_budget"] if budget else 0),
            fmt(b["gmean_ratio"], ".4f"), f"{b['wins']}/{len(names)}", f"{b['solve_s']:.1f}",
            b["oracle_calls"]])
    doc.table(["rank", "solver", "kind", "status", "scored runs", "incomplete or infeasible",
               "users below QoS", "claims contradicted", "over the limit",
               "delay / certified bound (geo. mean)", "best on", "solve s", "oracle calls"],
              trs,
              "Qualified solvers first; then fewest runs without a comparable plan (failed, "
              "killed, incomplete or structurally infeasible); then fewest runs over the limit; "
              "then the geometric mean of total delay over the certified lower bound (1.0 = "
              f"provably optimal); then {tie}. Disqualified (conformance FAIL, tampering, a "
              "crashed run) below, with the reason. 'Claims contradicted': the solver said "
              "optimal or feasible and the evaluator found a structural violation, or unserved "
              "users its message does not mention. 'Over the limit': runs killed, or finished "
              "past the time limit within the grace (or past the oracle-call budget): among "
              "solvers with as many comparable plans, fewer such runs rank first. Oracle calls "
              "of a plugin are counted in its own process.")
    doc.h(2, "Per instance: total delay in s (ratio to the bound), the evaluator's verdict")
    trs = [[b["solver"]] + [_cell_text(b["per"][n]) for n in names] for b in board]
    if bound_solver:
        trs.append([f"certified lower bound ({bound_solver})"]
                   + [fmt(facts[n]["bound"], ".4g") + (" (ABOVE an evaluated delay: invalid)"
                                                       if facts[n]["bound_false"] else "")
                      for n in names])
    doc.table(["solver"] + names, trs,
              "Killed: over the time limit plus the grace; crashed: the solver's process died; "
              "tampered: it modified its instance (its plan was still scored on the pristine "
              "instance, shown for the record).")
    claims = [[lab, n, f"{c['value']:.4g}", "FALSE: above the delay "
               f"{facts[n]['best']:.4g} s the evaluator measured for "
               f"{facts[n]['best_by']}'s plan" if c["false"] else "consistent"]
              for n in names for lab, c in facts[n]["claims"].items()]
    if claims:
        doc.h(2, "Bounds claimed by the solvers (not used for the ratios)")
        doc.table(["solver", "instance", "claimed lower bound s", "check"], claims)
    dq = [b for b in board if b["reasons"]]
    if dq:
        doc.h(2, "Disqualified")
        for b in dq:
            runs = [f"{n}: {b['per'][n][1]}" for n in names if b["per"][n][0] in
                    ("tampered", "crashed")]
            doc.p(f"**{b['solver']}**: " + "; ".join(b["reasons"])
                  + (". " + "; ".join(runs) if runs else ""))
    if conformance:
        doc.h(2, "Conformance check (fgamcd_opt.testing.check_solver, in its own process)")
        doc.table(["solver", "result", "time", "problems"],
                  [[k, ("pass" if v["ok"] else "FAIL") + (" (earlier run)" if v.get("reused")
                                                          else ""),
                    f"{v['time_s']:.1f} s", "; ".join(v["failures"])[:400] or "none"]
                   for k, v in conformance.items()])
    doc.h(2, "Instances")
    doc.table(["name", "scenario", "seed", "parameters"],
              [[i["name"], i["scenario"], i["seed"], f"`{json.dumps(i.get('params', {}))}`"]
               for i in suite["instances"]])
    md = out / "leaderboard.md"
    md.write_text(doc.markdown())
    (out / "leaderboard.html").write_text(doc.html(title))
    from ..jsonio import write_json_atomic

    write_json_atomic(out / "leaderboard.json", board_json(suite, board, rows, conformance))
    return md


def board_json(suite: dict, board: list, rows: list[dict], conformance: dict) -> dict:
    """The leaderboard as data (``leaderboard.json``): what the command's exit status and last
    line report, and what a script reads instead of the Markdown."""
    states: dict[str, int] = {}
    for r in rows:
        states[r.get("state", "?")] = states.get(r.get("state", "?"), 0) + 1
    rank, out = 0, []
    for b in board:
        rank += 0 if b["reasons"] else 1
        out.append({"rank": None if b["reasons"] else rank, "solver": b["solver"],
                    "kind": b["origin"], "disqualified": b["reasons"],
                    "states": b["states"], "incomplete_or_infeasible": b["incomplete"],
                    "users_below_qos": b["qos_users"], "claims_contradicted": b["contradicted"],
                    "over_limit": b["over_limit"], "gmean_ratio": b["gmean_ratio"],
                    "solve_s": b["solve_s"], "oracle_calls": b["oracle_calls"]})
    return {"suite": suite["name"], "version": suite["version"], "board": out,
            "states": states, "cells": sum(states.values()),
            "failed_checks": sorted(k for k, v in conformance.items() if not v.get("ok"))}
