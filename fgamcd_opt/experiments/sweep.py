"""Running a spec: cells to run records, appended to the store as each finishes.

``run_cell`` is what a worker executes: it generates the cell's instance (cached per process, so
the solvers of one grid point share it and one memoising oracle), runs the solver through
:func:`fgamcd_opt.runner.run_solver` (the runner times it, the evaluator scores it) and returns
one flat row = the run record v2 + the cell's identity + instance statistics (whether storage
binds). A solver error or any exception is a row with ``state = "failed"`` and the message;
failed cells are redone on resume, finished ones never.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections import OrderedDict
from pathlib import Path

from .spec import Spec, spec_summary
from .store import Store, export_csv

# fields that legitimately differ between two runs of the same cell (timings, which process)
VOLATILE = {"solve_time_s", "eval_time_s", "oracle_time_s", "wall_s", "worker", "started",
            "finished", "oracle_cache_hits", "code_version"}

_INSTANCES: OrderedDict = OrderedDict()
_ORACLES: OrderedDict = OrderedDict()
_SOLVERS: dict = {}
_STORES: dict = {}
ORACLE_STORE_NAME = "oracle-memo.sqlite"  # the sweep's shared oracle memo, in its folder


def _oracle_store(path: str | None):
    """This process's handle on the sweep's oracle store (oracle/store.py), or None. Written
    only by :func:`run_cell`, after a run that may share its results (never automatically)."""
    if not path:
        return None
    if path not in _STORES:
        from ..oracle.store import OracleStore

        _STORES[path] = OracleStore(path, flush_every=0)
    return _STORES[path]


def _share_results(oracle, inst, solver_ref: str) -> None:
    """Write the run's new oracle results to the sweep's store when they can be trusted: a
    built-in solver, and the instance unchanged by the run (its fingerprint recomputed, not
    the cached one); else drop them (a plugin or an altered instance must not steer the
    beams of later cells)."""
    store = getattr(oracle, "store", None)
    if store is None:
        return
    from .. import registry

    unchanged = type(inst).fingerprint.func(inst) == inst.fingerprint
    if unchanged and solver_ref in registry.BUILTIN_SOLVERS:
        store.flush()
    else:
        store.discard()


def _lru_get(cache: OrderedDict, key, make, size: int = 3):
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
    return value


def _generator_kwargs(params: dict) -> dict:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()}


def cell_instance(cell: dict):
    from ..generators import generate

    key = json.dumps([cell["scenario"], cell["generator_params"], cell["instance_seed"]],
                     sort_keys=True)
    return _lru_get(_INSTANCES, key, lambda: generate(
        cell["scenario"], seed=cell["instance_seed"],
        **_generator_kwargs(cell["generator_params"])))


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


def normalise_record(d: dict) -> dict:
    """Run record v2 as-is; a v1 record (before the runner's v2) mapped to v2 names, with
    ``total_delay_s`` null when some user is undelivered (infinite delay, never 0)."""
    if d.get("record_schema_version", 1) >= 2:
        return d
    out = dict(d)
    out["record_schema_version"] = 1
    out["instance_name"] = out.pop("instance", None)
    status = out.pop("status", None)
    out["verdict"] = status if status in ("feasible", "infeasible") else "not_evaluated"
    undelivered = out.get("undelivered_users")
    total = out.get("total_delay_s")
    complete = total is not None and not undelivered
    out["complete"] = bool(complete)
    out["delivered_delay_s"] = total
    if not complete:
        out["total_delay_s"] = None
    return out


def run_cell(cell: dict) -> dict:
    """Run one cell; never raises (a failure is a row)."""
    started = time.time()
    row = {k: cell[k] for k in ("cell", "spec", "point", "solver_point", "replicate",
                                "instance_seed", "solver_label", "solver", "scenario",
                                "generator_params", "solver_params")}
    try:
        from .. import registry
        from ..oracle import BeamformingOracle
        from ..runner import run_solver

        inst = cell_instance(cell)
        ref = cell.get("solver_ref") or cell["solver"]
        if ref not in _SOLVERS:
            _SOLVERS[ref] = registry.get_solver(ref)
        cls = _SOLVERS[ref]
        store_path = cell.get("oracle_store")
        okey = (inst.fingerprint, cell["oracle"],
                json.dumps(cell.get("oracle_options") or {}, sort_keys=True), store_path)
        oracle = _lru_get(_ORACLES, okey, lambda: BeamformingOracle(
            cell["oracle"], store=_oracle_store(store_path), **(cell.get("oracle_options") or {})))
        try:
            run = run_solver(inst, cls, cell["solver_params"], seed=cell["instance_seed"],
                             time_limit_s=cell["time_limit_s"], oracle=oracle)
        finally:
            _share_results(oracle, inst, ref)
        rec = normalise_record(run.record.to_dict())
        rec["solver_class"] = rec.pop("solver", None)
        rec["scenario_record"] = rec.pop("scenario", None)  # the cell's name stays 'scenario'
        rec.pop("seed", None)  # the solver seed is the instance seed (below)
        row.update(rec)
        row.update(instance_stats(inst))
        row["state"] = "failed" if rec.get("solver_status") == "error" else "done"
    except Exception as exc:
        row["state"] = "failed"
        row["message"] = f"{type(exc).__name__}: {exc}"
    row["wall_s"] = time.time() - started
    row["started"] = started
    row["finished"] = time.time()
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return row


def run_cells(cells: list[dict]) -> list[dict]:
    """Run the cells of one instance in one worker, so its solvers share the generated instance
    and the memoised oracle (splitting them over workers would solve the same beamforming
    subproblems once per worker)."""
    return [run_cell(c) for c in cells]


def group_by_instance(cells: list[dict]) -> list[list[dict]]:
    groups: dict[str, list[dict]] = {}
    for c in cells:
        key = json.dumps([c["scenario"], c["generator_params"], c["instance_seed"],
                          c["oracle"], c.get("oracle_options")], sort_keys=True)
        groups.setdefault(key, []).append(c)
    return list(groups.values())


def crash_rows(cells: list[dict], exc: BaseException) -> list[dict]:
    return [crash_row(c, exc) for c in cells]


def crash_row(cell: dict, exc: BaseException) -> dict:
    row = {k: cell[k] for k in ("cell", "spec", "point", "solver_point", "replicate",
                                "instance_seed", "solver_label", "solver")}
    row.update(state="failed", message=f"worker lost: {type(exc).__name__}: {exc}",
               finished=time.time())
    return row


def comparable(row: dict) -> dict:
    """A row without the fields that may differ between executors (timings, worker)."""
    out = {k: v for k, v in row.items() if k not in VOLATILE}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items()
                           if not (k.endswith("_s") or "time" in k)}
    return out


def open_store(spec: Spec, out_dir) -> Store:
    return Store(Path(out_dir) / "store.jsonl", spec.name, spec.hash,
                 meta={"spec_summary": spec_summary(spec)})


def run_sweep(spec: Spec, out_dir, executor, progress: bool = True, command: str = "",
              retry_failed: bool = True, oracle_store: bool = True) -> dict:
    """Run the cells of ``spec`` not yet done in ``out_dir/store.jsonl``; returns counts.
    ``oracle_store``: the cells share oracle results through ``out_dir/oracle-memo.sqlite``
    (oracle/store.py; the results are the same, the subproblems are solved once)."""
    from tqdm import tqdm

    from ..jsonio import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = open_store(spec, out)
    t0 = time.time()
    counts = {"cells": 0, "resumed_done": 0, "ran": 0, "done": 0, "failed": 0}
    try:
        if store.torn_line_moved_to is not None:
            print(f"note: a torn last line of {store.path} (killed mid-write) was moved to "
                  f"{store.torn_line_moved_to}", file=sys.stderr)
        write_json_atomic(out / "spec.json", {**spec_summary(spec), "report": spec.report,
                                              "paper": spec.paper, "title": spec.title,
                                              "description": spec.description,
                                              "path": spec.path})
        cells = spec.cells()
        latest = store.latest()
        todo = [c for c in cells if latest.get(c["cell"], {}).get("state") != "done"
                and (retry_failed or c["cell"] not in latest)]
        if oracle_store:
            todo = [{**c, "oracle_store": str((out / ORACLE_STORE_NAME).resolve())}
                    for c in todo]
        counts["cells"] = len(cells)
        counts["resumed_done"] = len(cells) - len(todo)
        bar = tqdm(total=len(cells), initial=counts["resumed_done"], desc=spec.name,
                   unit="cell", disable=not progress, dynamic_ncols=True, file=sys.stderr)
        try:
            for rows in executor.map_unordered(run_cells, group_by_instance(todo), crash_rows):
                for row in rows:
                    store.append(row)
                    counts["ran"] += 1
                    counts[row["state"]] = counts.get(row["state"], 0) + 1
                bar.set_postfix(done=counts["done"] + counts["resumed_done"],
                                failed=counts["failed"], refresh=False)
                bar.update(len(rows))
        finally:
            bar.close()
        elapsed = time.time() - t0
        latest = store.latest()
        rows = [latest[c["cell"]] for c in cells if c["cell"] in latest]
        export_csv(rows, out / "results.csv")
    finally:
        store.close()
    counts["elapsed_s"] = elapsed
    log = {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                        time.gmtime(t0)),
           "elapsed_s": round(elapsed, 2), "executor": executor.description,
           "size": spec.size, **{k: v for k, v in counts.items() if k != "elapsed_s"}}
    with open(out / "sweep-log.jsonl", "a") as fh:
        fh.write(json.dumps(log) + "\n")
    return counts


def compare_stores(a, b) -> dict:
    """Rows of two stores of the same spec, field by field, timings and worker aside."""
    from .store import read_store

    ha, ra = read_store(a)
    hb, rb = read_store(b)
    da = {r["cell"]: comparable(r) for r in ra}
    db = {r["cell"]: comparable(r) for r in rb}
    diff = {}
    for c in sorted(set(da) & set(db)):
        fields = sorted(k for k in set(da[c]) | set(db[c]) if da[c].get(k) != db[c].get(k))
        if fields:
            diff[c] = fields
    return {"same_spec": ha.get("spec_hash") == hb.get("spec_hash"), "cells_a": len(da),
            "cells_b": len(db), "common": len(set(da) & set(db)), "differing": diff}
