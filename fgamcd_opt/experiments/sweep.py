"""Running a spec: cells to run records, appended to the store as each finishes.

Cells run through an executor (:mod:`.executors`) and its isolation pool (:mod:`.pool`,
:mod:`.isolation`): the built-in cells of one instance run one after another in a trusted host
process that generates the instance once and shares one memoising oracle between them; every
plugin cell runs alone in a sandbox process and its plan is scored by the host. A row is the run
record v2 + the cell's identity + instance statistics (whether storage binds) + provenance (the
code that made it, its checksum). Row states: ``done``, ``failed``, ``killed``, ``crashed``,
``tampered`` (:mod:`.isolation`); a resumed run redoes every cell whose row is not ``done``, and
every cell whose row was made by other code (say so, or keep them with ``other_code="accept"``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .spec import Spec, spec_summary
from .store import Store, StoreError, export_csv

# fields that legitimately differ between two runs of the same cell (timings, which process,
# which code and the checksum that covers them)
VOLATILE = {"solve_time_s", "eval_time_s", "oracle_time_s", "wall_s", "worker", "started",
            "finished", "oracle_cache_hits", "code_version", "code", "row_sha256",
            "self_reported"}
OTHER_CODE = ("rerun", "accept", "refuse")
ORACLE_STORE_NAME = "oracle-memo.sqlite"  # the sweep's shared oracle memo, in its folder


def instance_stats(inst) -> dict:
    """What decides whether storage binds: per node, the unique bytes its own users request
    against its capacity C_n; and the whole requested set against C_n."""
    import numpy as np

    sizes = inst.repository.sizes
    demand = inst.demand  # (U, K) bool
    local = []
    for n in range(inst.n_nodes):
        users = inst.users.node == n
        local.append(int(sizes[demand[users].any(axis=0)].sum()) if users.any() else 0)
    cap = inst.nodes.storage_bytes.astype(float)
    req = int(sizes[inst.requested_blocks].sum())
    local_a = np.asarray(local, dtype=float)
    return {
        "inst_N": inst.n_nodes, "inst_U": inst.n_users, "inst_K": inst.n_blocks,
        "inst_M": inst.antennas, "inst_storage_bytes": float(cap.min()),
        "inst_requested_unique_bytes": req,
        "inst_local_demand_max_bytes": int(local_a.max()) if local else 0,
        # share of nodes whose own users' PBs do not all fit: storage binds there
        "inst_storage_binding_share": float(np.mean(local_a > cap)) if local else 0.0,
        "inst_requested_over_storage": float(req / cap.min()) if cap.size else 0.0,
        # multicast group size: what CoMP broadcast and PB sharing can gain from
        "inst_requesters_per_pb": float(np.mean([len(inst.requesters(k))
                                                 for k in inst.requested_blocks]))
        if len(inst.requested_blocks) else 0.0,
    }


def tasks_of(cells: list[dict]) -> list[list[dict]]:
    """The pool's tasks: the built-in cells of one instance together (they share its generated
    instance and oracle memo in one host), then each plugin cell alone (a sandbox of its own,
    started from the memo its instance's built-ins left)."""
    from .isolation import is_builtin
    from .pool import instance_key

    groups: dict[str, list[dict]] = {}
    alone: list[list[dict]] = []
    for c in cells:
        if not is_builtin(c.get("solver_ref") or c["solver"]):
            alone.append([c])
            continue
        groups.setdefault(instance_key(c), []).append(c)
    return list(groups.values()) + alone


def crash_row(cell: dict, exc: BaseException) -> dict:
    from .isolation import base_row

    row = base_row(cell)
    row.update(state="crashed", message=f"worker lost: {type(exc).__name__}: {exc}",
               verdict="not_evaluated", finished=time.time())
    return row


def with_solver_code(cells: list[dict]) -> list[dict]:
    """A plugin's cells get the identity of its code (file hash or package version) and its
    resolved parameters (from its declaration, read in a child process: the host that scores
    its plans never imports it)."""
    from ..params import resolve
    from .isolation import is_builtin
    from .pool import describe_solver
    from .provenance import solver_code

    codes: dict[str, dict | None] = {}
    for c in cells:
        ref = c.get("solver_ref") or c["solver"]
        if is_builtin(ref):
            continue
        if ref not in codes:
            codes[ref] = solver_code(ref)
        c["solver_code"] = codes[ref]
        c["resolved_params"] = json.loads(json.dumps(resolve(
            describe_solver(ref)[2], c["solver_params"]), default=list))
    return cells


def stale(row: dict, cell: dict) -> bool:
    """The row was made by other code than this process runs (or another plugin file)."""
    from .provenance import code_identity, same_code

    return not same_code(row.get("code"), code_identity()) or \
        row.get("solver_code") != cell.get("solver_code")


def plan_cells(cells: list[dict], store: Store, other_code: str = "rerun",
               retry_failed: bool = True) -> tuple[list[dict], dict]:
    """(cells to run, notes): cells without a usable row. A ``done`` row made by other code is
    rerun (``other_code="rerun"``), kept (``"accept"``) or refused with an error (``"refuse"``).
    """
    from .provenance import code_identity, code_text

    if other_code not in OTHER_CODE:
        raise ValueError(f"other_code must be one of {OTHER_CODE}")
    latest = store.latest()
    todo, old = [], []
    for c in cells:
        row = latest.get(c["cell"])
        if row is None:
            todo.append(c)
        elif stale(row, c) and other_code != "accept":
            old.append((c, row))
        elif row.get("state") != "done" and retry_failed:
            todo.append(c)
    notes = {"other_code": len(old), "rejected": len(store.rejected)}
    if old:
        codes = sorted({code_text(r.get("code")) for _, r in old})
        what = (f"{len(old)} row(s) of {store.path} were made by other code ({'; '.join(codes)}"
                f"; this is {code_text(code_identity())}, or the plugin file changed)")
        if other_code == "refuse":
            raise StoreError(f"{what}: refusing to mix them with new rows (run them again "
                             "with --other-code rerun, or keep them with --accept-other-code)")
        print(f"note: {what}: they are run again (--accept-other-code keeps them)",
              file=sys.stderr)
        todo += [c for c, _ in old]
        order = {c["cell"]: i for i, c in enumerate(cells)}
        todo.sort(key=lambda c: order[c["cell"]])
    if store.rejected:
        lines = ", ".join(f"line {i} ({why})" for i, why in store.rejected[:5])
        print(f"note: {len(store.rejected)} row(s) of {store.path} are not used: {lines}; "
              "their cells run again", file=sys.stderr)
    return todo, notes


def count_states(rows) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r.get("state", "?")] = out.get(r.get("state", "?"), 0) + 1
    return out


def execute(executor, todo: list[dict], store: Store, bar, counts: dict) -> None:
    """Run ``todo``, appending each row to the store as it finishes and counting its state."""

    def emit(row: dict) -> None:
        store.append(row)
        counts["ran"] += 1
        counts[row["state"]] = counts.get(row["state"], 0) + 1
        bar.set_postfix(done=counts.get("done", 0) + counts["resumed_done"],
                        failed=counts["ran"] - counts.get("done", 0), refresh=False)
        bar.update(1)

    executor.run(tasks_of(todo), emit)


def write_log(out: Path, entry: dict) -> None:
    with open(out / "sweep-log.jsonl", "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def comparable(row: dict) -> dict:
    """A row without the fields that may differ between executors (timings, worker)."""
    out = {k: v for k, v in row.items() if k not in VOLATILE}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items()
                           if not (k.endswith("_s") or "time" in k)}
    return out


def open_store(spec: Spec, out_dir, cells: list[dict] | None = None) -> Store:
    from .provenance import code_identity

    cells = cells if cells is not None else spec.cells()
    return Store(Path(out_dir) / "store.jsonl", spec.name, spec.hash,
                 meta={"spec_summary": spec_summary(spec), "code": code_identity(),
                       "solvers_resolved": resolved_params(spec),
                       "cells": sorted(c["cell"] for c in cells)})


def resolved_params(spec: Spec) -> dict:
    """label -> the solver's parameters with its defaults filled in (solver axes vary)."""
    from ..params import resolve
    from .pool import describe_solver

    out = {}
    for e in spec.solvers:
        try:
            out[e.label] = resolve(describe_solver(e.ref or e.name)[2], e.params)
        except Exception:  # the spec was validated; a plugin file may have changed since
            out[e.label] = dict(e.params)
    return json.loads(json.dumps(out, default=list))


def run_sweep(spec: Spec, out_dir, executor, progress: bool = True, command: str = "",
              retry_failed: bool = True, other_code: str = "rerun",
              oracle_store: bool = True) -> dict:
    """Run the cells of ``spec`` not yet done in ``out_dir/store.jsonl``; returns counts
    (``not_done``: cells whose latest row is not ``done`` after this run). Ctrl-C or SIGTERM
    raises :class:`.pool.Interrupted` after the finished rows are stored and the stopped
    cells are written to the sweep log. ``oracle_store``: the built-in cells share oracle
    results through ``out_dir/oracle-memo.sqlite`` (oracle/store.py; the results are the same,
    the subproblems are solved once)."""
    from tqdm import tqdm

    from ..jsonio import write_json_atomic
    from .pool import Interrupted
    from .provenance import code_identity

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells = with_solver_code(spec.cells())
    store = open_store(spec, out, cells)
    t0 = time.time()
    counts = {"cells": len(cells), "resumed_done": 0, "ran": 0, "done": 0, "failed": 0}
    interrupted: list[dict] = []
    try:
        if store.torn_line_moved_to is not None:
            print(f"note: a torn last line of {store.path} (killed mid-write) was moved to "
                  f"{store.torn_line_moved_to}", file=sys.stderr)
        write_json_atomic(out / "spec.json", {**spec_summary(spec), "report": spec.report,
                                              "paper": spec.paper, "title": spec.title,
                                              "description": spec.description,
                                              "path": spec.path})
        todo, notes = plan_cells(cells, store, other_code, retry_failed)
        if oracle_store:
            todo = [{**c, "oracle_store": str((out / ORACLE_STORE_NAME).resolve())}
                    for c in todo]
        counts["resumed_done"] = len(cells) - len(todo)
        counts.update(notes)
        bar = tqdm(total=len(cells), initial=counts["resumed_done"], desc=spec.name,
                   unit="cell", disable=not progress, dynamic_ncols=True, file=sys.stderr)
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
            final = count_states(rows)
            counts["not_done"] = len(cells) - final.get("done", 0)
            counts["elapsed_s"] = time.time() - t0
            write_log(out, {
                "command": command,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                "elapsed_s": round(counts["elapsed_s"], 2), "executor": executor.description,
                "size": spec.size, **{k: v for k, v in counts.items() if k != "elapsed_s"},
                "interrupted": [c["cell"] for c in interrupted], "code": code_identity()})
    finally:
        store.close()
    return counts


def same_value(a, b, rtol: float = 0.0) -> bool:
    """Equal, numbers within a relative tolerance: |a - b| <= rtol * max(|a|, |b|)."""
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y, rtol) for x, y in zip(a, b,
                                                                             strict=True))
    return a == b


def compare_stores(a, b, rtol: float = 0.0) -> dict:
    """Rows of two stores of the same spec, field by field, timings, worker and code identity
    aside; numbers equal within the relative tolerance ``rtol``."""
    from .store import read_store

    ha, ra = read_store(a)
    hb, rb = read_store(b)
    da = {r["cell"]: comparable(r) for r in ra}
    db = {r["cell"]: comparable(r) for r in rb}
    diff = {}
    for c in sorted(set(da) & set(db)):
        fields = sorted(k for k in set(da[c]) | set(db[c])
                        if not same_value(da[c].get(k), db[c].get(k), rtol))
        if fields:
            diff[c] = fields
    return {"same_spec": ha.get("spec_hash") == hb.get("spec_hash"), "cells_a": len(da),
            "cells_b": len(db), "common": len(set(da) & set(db)), "differing": diff,
            "rtol": rtol}
