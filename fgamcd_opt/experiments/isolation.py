"""Isolation of solver runs: what runs inside the child processes of a sweep or the suite.

Three kinds of child process (started by :mod:`.pool`, ``python -m
fgamcd_opt.experiments.isolation MODE``, each in its own process group), speaking JSON lines
over two pipes (never pickle: a plugin's process is not trusted, and unpickling its bytes could
run its code in ours):

- ``host``: trusted and long-lived, one per pool slot. It runs the built-in solvers' cells (one
  generated instance and one memoising oracle per instance, shared by the cells of that
  instance, as before) and scores the plans of plugin runs. Instances are frozen
  (:func:`freeze_instance`: read-only arrays) and their fingerprint is recomputed after every
  run (``Instance.fresh_fingerprint``); a run that changed its instance is ``tampered`` and the
  instance and its oracle memo are dropped, so nothing leaks into the next cell.
- ``sandbox``: one fresh process per plugin cell. It generates its own copy of the instance,
  freezes it, imports the plugin and runs it; its plan (JSON, beams included) and its claims
  (status, message, bound, metadata) go to a file that the host reads and scores against its
  own pristine instance with the trusted evaluator. Whatever the plugin does to its process
  (edits the instance, patches the evaluator, prints, crashes, hangs) stays there.
- ``check``: the conformance check (:func:`fgamcd_opt.testing.check_solver`) of one plugin.

Row states (the sweep layer's vocabulary, docs/experiments.md): ``done`` (scored), ``failed``
(the solver raised or reported an error), ``killed`` (over the hard time limit: the time limit
plus :func:`grace_s`), ``crashed`` (its process died), ``tampered`` (it changed its instance).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

GRACE_MIN_S = 5.0  # a run is killed at time_limit_s + max(GRACE_MIN_S, GRACE_FRACTION * limit)
GRACE_FRACTION = 0.25
STARTUP_TIMEOUT_S = 300.0  # a child's trusted set-up (imports, instance generation)
SCORE_TIMEOUT_MIN_S = 120.0  # scoring one plugin plan (its units may lack beams)
MAX_RESULT_BYTES = 256 * 2**20  # a plugin result file larger than this is refused
MAX_MESSAGE_CHARS = 2000
MAX_METADATA_BYTES = 64 * 2**10
STATES = ("done", "failed", "killed", "crashed", "tampered")
READ_ONLY_MARK = "read-only"  # numpy: "assignment destination is read-only"


def grace_s(time_limit_s: float | None) -> float:
    """Seconds a run may take beyond its time limit before it is killed (it finishes its step,
    and the evaluation of its plan counts too)."""
    return 0.0 if time_limit_s is None else max(GRACE_MIN_S, GRACE_FRACTION * time_limit_s)


def hard_limit_s(time_limit_s: float | None) -> float | None:
    return None if time_limit_s is None else time_limit_s + grace_s(time_limit_s)


def is_builtin(ref: str) -> bool:
    """A built-in solver (trusted: runs in the host); anything else is a plugin."""
    from ..registry import BUILTIN_SOLVERS

    return ref in BUILTIN_SOLVERS


# ---- protecting an instance -----------------------------------------------------------------
def _freeze(obj) -> None:
    import numpy as np

    for value in list(vars(obj).values()):
        items = value if isinstance(value, list | tuple) else (value,)
        for v in items:
            if isinstance(v, np.ndarray):
                v.setflags(write=False)


def freeze_instance(inst):
    """Make the instance's arrays read-only (in place; returns it): nodes, users, repository
    sizes, the derived demand tables, explicit channel and backhaul arrays. A solver that writes
    into one gets numpy's "read-only" error, recorded as tampering. Rebinding an attribute is
    not prevented; ``Instance.fresh_fingerprint`` finds it after the run."""
    for name in ("demand", "requested_blocks", "_requesters", "requested_models",
                 "info_exchange", "snr_required"):
        getattr(inst, name)  # computed now, so the cached arrays get frozen too
    for name in ("membership", "model_bytes", "block_degree"):
        getattr(inst.repository, name)
    for obj in (inst, inst.nodes, inst.users, inst.repository, inst.channels, inst.backhaul,
                inst.error):
        _freeze(obj)
    return inst


def tamper_reason(inst, fingerprint: str, message: str) -> str:
    """Why the run counts as tampering ('' if it does not)."""
    if READ_ONLY_MARK in (message or ""):
        return f"tried to modify the instance ({message[:200]})"
    now = inst.fresh_fingerprint()
    if now != fingerprint:
        return f"modified the instance (fingerprint {fingerprint} -> {now})"
    return ""


# ---- the cells' instances and oracles (per process) ---------------------------------------
_INSTANCES: dict = {}
_ORACLES: dict = {}
_KEEP = 3  # instances (and their oracles) kept per process


def _instance_key(cell: dict) -> str:
    return json.dumps([cell["scenario"], cell["generator_params"], cell["instance_seed"]],
                      sort_keys=True)


def cell_instance(cell: dict):
    """The cell's instance, generated once per process and frozen."""
    from ..generators import generate

    key = _instance_key(cell)
    inst = _INSTANCES.pop(key, None)
    if inst is None:
        kw = {k: (tuple(v) if isinstance(v, list) else v)
              for k, v in cell["generator_params"].items()}
        inst = freeze_instance(generate(cell["scenario"], seed=cell["instance_seed"], **kw))
    _INSTANCES[key] = inst  # most recently used last
    while len(_INSTANCES) > _KEEP:
        _INSTANCES.pop(next(iter(_INSTANCES)))
    return inst


def cell_oracle(cell: dict, inst):
    """The memoising oracle of the cell's instance, keyed by its pristine fingerprint."""
    from ..oracle import BeamformingOracle

    opts = cell.get("oracle_options") or {}
    store_path = cell.get("oracle_store") or None
    key = (inst.fingerprint, cell["oracle"], json.dumps(opts, sort_keys=True), store_path)
    oracle = _ORACLES.pop(key, None) or BeamformingOracle(
        cell["oracle"], store=_oracle_store(store_path), **opts)
    _ORACLES[key] = oracle
    while len(_ORACLES) > _KEEP:
        _ORACLES.pop(next(iter(_ORACLES)))
    return oracle


_STORES: dict = {}


def _oracle_store(path: str | None):
    """This process's handle on the sweep's persistent oracle memo (oracle/store.py), or None.
    Only built-in runs in trusted hosts use it, and they write to it only after a run that left
    the instance unchanged (:func:`run_builtin_cell`)."""
    if not path:
        return None
    if path not in _STORES:
        from ..oracle.store import OracleStore

        _STORES[path] = OracleStore(path, flush_every=0)
    return _STORES[path]


def export_memo(cell: dict, path: str) -> int:
    """Write the oracle memo this process holds for the cell's instance to ``path`` (pickle, read
    only by the sandboxes of the same pool), so that a plugin run after the built-ins of its
    instance starts from the memo they left, as a built-in run after them does (its results are
    the same either way: the oracle is deterministic; only its time changes). Returns the number
    of entries."""
    import pickle

    key = _instance_key(cell)
    inst = _INSTANCES.get(key)
    if inst is None:
        return 0
    opts = cell.get("oracle_options") or {}
    oracle = _ORACLES.get((inst.fingerprint, cell["oracle"], json.dumps(opts, sort_keys=True),
                           cell.get("oracle_store") or None))
    if oracle is None:
        return 0
    entries = oracle.memo_entries(inst.fingerprint)
    with open(path, "wb") as fh:
        pickle.dump(entries, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return len(entries)


def forget_instance(cell: dict, inst) -> None:
    """Drop a tampered instance and every oracle memo of it."""
    _INSTANCES.pop(_instance_key(cell), None)
    for key in [k for k in _ORACLES if k[0] == inst.fingerprint]:
        _ORACLES.pop(key)


# ---- rows ---------------------------------------------------------------------------------
IDENTITY = ("cell", "spec", "point", "solver_point", "replicate", "instance_seed",
            "solver_label", "solver", "scenario", "generator_params", "solver_params")


def base_row(cell: dict) -> dict:
    from .provenance import code_identity

    row = {k: cell.get(k) for k in IDENTITY}
    row["solver_origin"] = "builtin" if is_builtin(cell.get("solver_ref") or cell["solver"]) \
        else "plugin"
    row["code"] = code_identity()
    if cell.get("solver_code"):
        row["solver_code"] = cell["solver_code"]
    if cell.get("oracle_call_budget") is not None:
        row["oracle_call_budget"] = cell["oracle_call_budget"]
    return row


def record_fields(record: dict) -> dict:
    """Run record v2 -> row fields (the cell's own names win: 'scenario', 'solver')."""
    rec = dict(record)
    rec["solver_class"] = rec.pop("solver", None)
    rec["scenario_record"] = rec.pop("scenario", None)
    rec.pop("seed", None)  # the solver seed is the instance seed
    return rec


def finish_row(row: dict, started: float) -> dict:
    import socket

    row["wall_s"] = time.time() - started
    row["started"] = started
    row["finished"] = time.time()
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return row


def run_builtin_cell(cell: dict, on_start=None) -> dict:
    """Run one built-in cell in this process: the instance is frozen and its fingerprint checked
    after the run; never raises (a failure is a row)."""
    from .. import registry
    from ..runner import run_solver
    from .sweep import instance_stats

    started = time.time()
    row = base_row(cell)
    try:
        ref = cell.get("solver_ref") or cell["solver"]
        if not is_builtin(ref):  # a plugin's code never runs in a trusted process
            raise ValueError(f"{ref} is not a built-in solver")
        inst = cell_instance(cell)
        oracle = cell_oracle(cell, inst)
        cls = registry.get_solver(ref)
        if on_start is not None:
            on_start()
        run = run_solver(inst, cls, cell["solver_params"], seed=cell["instance_seed"],
                         time_limit_s=cell["time_limit_s"], oracle=oracle,
                         **_budget_kw(cell))
        rec = run.record.to_dict()
        row.update(record_fields(rec))
        row.update(instance_stats(inst))
        tampered = tamper_reason(inst, inst.fingerprint, rec.get("message", ""))
        store = getattr(oracle, "store", None)
        if store is not None:  # shared with later cells only when the run changed nothing
            store.discard() if tampered else store.flush()
        if tampered:
            forget_instance(cell, inst)
            row.update(state="tampered", message=tampered)
        else:
            row["state"] = "failed" if rec.get("solver_status") == "error" else "done"
    except Exception as exc:
        row["state"] = "failed"
        row["message"] = f"{type(exc).__name__}: {exc}"
    return finish_row(row, started)


def _budget_kw(cell: dict) -> dict:
    b = cell.get("oracle_call_budget")
    return {} if b is None else {"oracle_call_budget": int(b)}


# ---- plugin runs: the sandbox side --------------------------------------------------------
def sandbox_solve(cell: dict, result_path: str, on_start, memo_path: str = "") -> None:
    """Run a plugin cell on this process's own copy of the instance and write its plan and
    claims to ``result_path`` (JSON). Runs in the sandbox process; ``memo_path``: the host's
    oracle memo for the instance (:func:`export_memo`), loaded before the clock starts."""
    from .. import registry
    from ..oracle import BeamformingOracle
    from ..plan_io import plan_to_dict
    from ..runner import run_solver

    inst = cell_instance(cell)
    fingerprint = inst.fingerprint
    oracle = BeamformingOracle(cell["oracle"], **(cell.get("oracle_options") or {}))
    if memo_path and os.path.isfile(memo_path):
        import pickle

        with open(memo_path, "rb") as fh:  # written by the trusted host of this pool
            oracle.preload(pickle.load(fh))
    # the shared modules a plugin uses are loaded before its clock starts, as in a host
    from .. import caching, planner  # noqa: F401
    on_start()
    out: dict = {"fingerprint": fingerprint}
    try:
        cls = registry.get_solver(cell.get("solver_ref") or cell["solver"])
        run = run_solver(inst, cls, cell["solver_params"], seed=cell["instance_seed"],
                         time_limit_s=cell["time_limit_s"], oracle=oracle, **_budget_kw(cell))
        res = run.result
        out.update(status=res.status.value, message=str(res.message),
                   bound=res.bound, metadata=res.metadata,
                   params=run.record.params, solve_time_s=run.record.solve_time_s,
                   oracle_calls=run.record.oracle_calls,
                   oracle_cache_hits=run.record.oracle_cache_hits,
                   oracle_time_s=run.record.oracle_time_s)
        if res.plan is not None:
            try:
                out["plan"] = plan_to_dict(res.plan, inst, with_beams=True)
            except Exception as exc:  # indices out of range, wrong types: not a plan
                out["plan_error"] = f"{type(exc).__name__}: {exc}"
        out["tampered"] = tamper_reason(inst, fingerprint, out["message"])
    except Exception as exc:  # e.g. the plugin file does not import
        out.update(status="error", message=f"{type(exc).__name__}: {exc}")
    _write_json(result_path, out)


def _write_json(path: str, obj) -> None:
    from ..jsonio import jsonable

    Path(path).write_text(json.dumps(jsonable(obj), allow_nan=False))


def _clip(text, n: int = MAX_MESSAGE_CHARS) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n] + f"... ({len(text) - n} more characters)"


# ---- plugin runs: scoring in the host -----------------------------------------------------
def score_plugin_cell(cell: dict, outcome: dict) -> dict:
    """The trusted row of a plugin cell. ``outcome`` comes from the pool: ``result_path`` (the
    sandbox's file), ``solve_time_s`` (measured by the pool, from the sandbox's start signal to
    its result), or ``state`` + ``message`` when the sandbox was killed or died. The plan is
    scored against this process's pristine instance with the trusted evaluator; the plugin's
    bound is kept as a claim (``claimed_bound_s``), never as ``bound_s``."""
    from ..plan_io import plan_from_dict
    from ..runner import score_result
    from ..solver import SolveResult, SolveStatus
    from .sweep import instance_stats

    started = time.time()
    row = base_row(cell)
    try:
        inst = cell_instance(cell)
        row.update(instance_stats(inst))
        row.update(instance_name=inst.name, instance_fingerprint=inst.fingerprint)
        if outcome.get("state"):  # killed or crashed: no result to score
            row.update(state=outcome["state"], message=outcome.get("message", ""),
                       verdict="not_evaluated", solve_time_s=outcome.get("solve_time_s"))
            return finish_row(row, started)
        data = _read_result(outcome["result_path"])
        claim = _claims(data)
        oracle = cell_oracle(cell, inst)
        plan, plan_problem = None, data.get("plan_error")
        if plan_problem is None and data.get("plan") is not None:
            try:
                plan = plan_from_dict(data["plan"], inst, file="<plugin result>")
            except Exception as exc:
                plan_problem = str(exc)
        status = claim["status"]
        message = claim["message"]
        if plan_problem:
            status, message = SolveStatus.ERROR, f"the plan is malformed: {_clip(plan_problem)}"
        result = SolveResult(plan, status, message, None, claim["metadata"])
        # its resolved parameters as the parent resolved them (this process never imports a
        # plugin), else as the sandbox reported them
        resolved = cell.get("resolved_params") or claim["params"]
        run = score_result(inst, cell["solver"], resolved, cell["instance_seed"], oracle,
                           cell["time_limit_s"], result, float(outcome["solve_time_s"]),
                           calls=claim["oracle_calls"], hits=claim["oracle_cache_hits"],
                           oracle_time_s=claim["oracle_time_s"])
        rec = run.record.to_dict()
        row.update(record_fields(rec))
        row["solver"] = cell["solver"]
        row["claimed_bound_s"] = claim["bound"]
        row["self_reported"] = {"solve_time_s": claim["solve_time_s"],
                                "oracle_calls": claim["oracle_calls"]}
        if claim["tampered"]:
            row.update(state="tampered", message=_clip(claim["tampered"]))
        else:
            row["state"] = "failed" if rec.get("solver_status") == "error" else "done"
    except Exception as exc:
        row["state"] = "failed"
        row["message"] = _clip(f"scoring the plugin's result failed: {type(exc).__name__}: {exc}")
    return finish_row(row, started)


def _read_result(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ValueError("the solver's process wrote no result")
    if p.stat().st_size > MAX_RESULT_BYTES:
        raise ValueError(f"the solver's result is larger than {MAX_RESULT_BYTES} bytes")
    data = json.loads(p.read_text())
    if not isinstance(data, dict):
        raise ValueError("the solver's result is not a JSON object")
    return data


def _claims(data: dict) -> dict:
    """The plugin's claims, type-checked (anything odd becomes an error claim)."""
    import math

    from ..solver import SolveStatus

    def num(key, default=0.0):
        v = data.get(key, default)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) \
            and math.isfinite(v) else default

    try:
        status = SolveStatus(data.get("status"))
    except ValueError:
        status = SolveStatus.ERROR
    meta = data.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    if len(json.dumps(meta)) > MAX_METADATA_BYTES:
        meta = {"truncated": f"the solver's metadata exceeded {MAX_METADATA_BYTES} bytes"}
    bound = data.get("bound")
    params = data.get("params")
    return {
        "status": status, "message": _clip(data.get("message", "")),
        "bound": num("bound", None) if bound is not None else None, "metadata": meta,
        "params": params if isinstance(params, dict) else {},
        "solve_time_s": num("solve_time_s"),
        "oracle_calls": int(num("oracle_calls")), "oracle_cache_hits": int(num(
            "oracle_cache_hits")), "oracle_time_s": num("oracle_time_s"),
        "tampered": str(data.get("tampered") or ""),
    }


# ---- describing a plugin (its name and declared parameters, as data) ----------------------
PARAM_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple": tuple}


def describe(ref: str) -> dict:
    """The solver's name, description and declared parameters as JSON data (run in a child:
    importing a plugin runs its code)."""
    from .. import registry

    try:
        cls = registry.get_solver(ref)
    except Exception as exc:
        return {"error": str(exc)}
    params = []
    for p in cls.params:
        tname = next((k for k, v in PARAM_TYPES.items() if p.type is v), None)
        if tname is None:
            return {"error": f"{ref}: parameter {p.name!r} has type {p.type!r} (expected one "
                             f"of {', '.join(PARAM_TYPES)})"}
        params.append({"name": p.name, "type": tname, "default": p.default, "help": p.help,
                       "choices": list(p.choices) if p.choices is not None else None})
    return {"name": str(cls.name), "description": str(getattr(cls, "description", "")),
            "params": params}


def params_from_description(info: dict) -> tuple:
    """Param objects from :func:`describe`'s data (type-checked: it came from a plugin)."""
    from ..params import Param

    out = []
    for d in info.get("params") or []:
        if not isinstance(d, dict) or d.get("type") not in PARAM_TYPES or \
                not isinstance(d.get("name"), str):
            raise ValueError(f"a malformed parameter declaration: {str(d)[:200]}")
        typ = PARAM_TYPES[d["type"]]
        default = tuple(d["default"]) if typ is tuple and isinstance(d["default"], list) \
            else d["default"]
        choices = tuple(d["choices"]) if isinstance(d.get("choices"), list) else None
        out.append(Param(d["name"], typ, default, str(d.get("help", "")), choices))
    return tuple(out)


# ---- the conformance check ----------------------------------------------------------------
def conformance(ref: str, time_limit_s: float | None) -> dict:
    from .. import registry
    from ..testing import check_solver

    t0 = time.perf_counter()
    try:
        rep = check_solver(registry.get_solver(ref), time_limit_s=time_limit_s)
        failures = [_clip(f, 400) for f in rep.failures[:20]]
        ok = rep.ok
    except Exception as exc:
        ok, failures = False, [_clip(f"the check could not run: {type(exc).__name__}: {exc}")]
    return {"ok": ok, "failures": failures, "time_s": time.perf_counter() - t0}


# ---- the child's main loop ----------------------------------------------------------------
class Channel:
    """JSON lines over two file descriptors (requests in, events out)."""

    def __init__(self, rfd: int, wfd: int):
        self._in = os.fdopen(rfd, "rb", buffering=0)
        self._wfd = wfd
        self._buf = b""

    def send(self, obj) -> None:
        blob = (json.dumps(obj, allow_nan=False) + "\n").encode()
        while blob:
            n = os.write(self._wfd, blob)
            blob = blob[n:]

    def recv(self) -> dict | None:
        while b"\n" not in self._buf:
            chunk = self._in.read(1 << 16)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)


def _watch_parent() -> None:
    """Kill this process group when the parent goes away (killed with -9, say), so that no
    solver keeps running unseen."""
    parent = os.getppid()

    def loop():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.killpg(os.getpgid(0), 9)

    threading.Thread(target=loop, daemon=True, name="fgamcd-parent-watch").start()


def main(argv: list[str]) -> int:
    mode, rfd, wfd = argv[0], int(argv[1]), int(argv[2])
    _watch_parent()
    ch = Channel(rfd, wfd)
    # the protocol owns wfd; what solvers print goes to stderr (the pool's terminal)
    os.dup2(2, 1)
    while True:
        req = ch.recv()
        if req is None or req.get("op") == "exit":
            return 0
        op = req.get("op")
        try:
            if mode == "host" and op == "run":
                row = run_builtin_cell(req["cell"], on_start=lambda: ch.send(
                    {"event": "started"}))
                if req.get("export_memo"):  # the instance's last built-in: its memo for plugins
                    export_memo(req["cell"], req["export_memo"])
                ch.send({"event": "row", "row": _jsonable(row)})
            elif mode == "host" and op == "score":
                ch.send({"event": "row", "row": _jsonable(score_plugin_cell(
                    req["cell"], req["outcome"]))})
            elif mode == "sandbox" and op == "solve":
                sandbox_solve(req["cell"], req["result_path"],
                              on_start=lambda: ch.send({"event": "started"}),
                              memo_path=req.get("memo_path", ""))
                ch.send({"event": "result"})
                return 0
            elif mode == "describe" and op == "describe":
                ch.send({"event": "started"})
                ch.send({"event": "report", "report": _jsonable(describe(req["ref"]))})
                return 0
            elif mode == "check" and op == "check":
                ch.send({"event": "started"})
                ch.send({"event": "report", "report": conformance(req["ref"],
                                                                 req.get("time_limit_s"))})
                return 0
            else:
                ch.send({"event": "error", "message": f"{mode}: unknown request {op!r}"})
        except Exception as exc:  # a bug in this module: say so, do not hang the pool
            ch.send({"event": "error", "message": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()})


def _jsonable(obj):
    from ..jsonio import jsonable

    return jsonable(obj)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
