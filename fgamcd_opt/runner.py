"""Running a solver: resolve parameters, time the solve, score the plan with the evaluator, and
write one run record (v2), the tidy row every report is built from (benchopt style).

The runner (never the solver) measures wall time, and the evaluator (never the solver) computes
the delay. The solver's own claim (``solver_status``, :class:`~fgamcd_opt.solver.SolveStatus`) is
kept apart from the evaluator's ``verdict``, as pyomo keeps solver status and termination
condition apart. A solver exception becomes ``solver_status = error`` with its message.

Solvers may hold state between runs (a loaded policy, a compiled model): the runner keeps one
object per solver class per process (:func:`solver_instance`).
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from . import __version__
from .certificate import block_certificates
from .errors import FgamcdError
from .evaluator import VIOLATION_KINDS, Evaluation, evaluate
from .instance import Instance
from .jsonio import jsonable
from .oracle import BeamformingOracle, default_oracle
from .params import resolve
from .plan import Plan
from .solver import FALLBACK_S, ProgressCallback, SolveContext, SolveResult, SolveStatus

RECORD_SCHEMA_VERSION = 2
VERDICTS = ("feasible", "infeasible", "not_evaluated")


@dataclass
class RunRecord:
    """One row of results: one solver on one instance with one seed (schema: RUN_SCHEMA).

    Delays in seconds. ``total_delay_s`` is None (JSON null) when it is infinite: the plan
    leaves requested (user, PB) pairs unserved or at zero rate, has a transmission with a user
    at rate 0 (it never ends), or breaks a structural constraint; ``delivered_delay_s`` keeps
    the finite part. ``gap`` = (T - bound) / T, only for comparable plans (finite T), never
    negative.
    """

    instance_name: str
    instance_fingerprint: str
    scenario: dict | None
    solver: str
    params: dict
    seed: int
    oracle_method: str
    oracle_options: dict
    time_limit_s: float | None
    solver_status: str
    verdict: str
    complete: bool | None
    total_delay_s: float | None
    delivered_delay_s: float | None
    migration_delay_s: float | None
    broadcast_delay_s: float | None
    violations: dict[str, int]
    qos_violating_users: int | None
    undelivered_users: int | None
    unserved_pairs: int | None
    bound_s: float | None
    bound_source: str | None
    gap: float | None
    solve_time_s: float
    eval_time_s: float
    oracle_time_s: float
    oracle_calls: int
    oracle_cache_hits: int
    message: str = ""
    metadata: dict = field(default_factory=dict)
    code_version: str = __version__
    record_schema_version: int = RECORD_SCHEMA_VERSION

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


@dataclass
class Run:
    record: RunRecord
    result: SolveResult
    evaluation: Evaluation | None

    @property
    def plan(self) -> Plan | None:
        return self.result.plan


_SOLVERS: dict[type, Any] = {}


def solver_instance(solver_cls: type):
    """The process-wide object of ``solver_cls`` (constructed once, reused by every run)."""
    obj = _SOLVERS.get(solver_cls)
    if obj is None:
        obj = _SOLVERS[solver_cls] = solver_cls()
    return obj


def run_solver(inst: Instance, solver_cls, params: dict | None = None, seed: int = 0,
               time_limit_s: float | None = None, oracle: BeamformingOracle | None = None,
               debug: bool = False, bound_s: float | None = None,
               progress: ProgressCallback | None = None,
               certificate_time_s: float = 0.0,
               oracle_call_budget: int | None = None) -> Run:
    """Run one solver on one instance and score its plan.

    bound_s : a certified lower bound on the delay computed outside the solver (e.g. the
        certified bound of ``fgamcd-solve --bound``); when given it is the record's bound
        (``bound_source`` "external"), so every solver is measured against the same number; the
        solver's own bound is then kept in ``metadata["solver_bound_s"]`` (see
        :func:`attach_bound`).
    progress : receives (fraction, message) from the solver (``ctx.progress``).
    certificate_time_s : budget for the group bounds of the per-PB beam certificates the
        record's metadata gets under ``pb_certificates`` (certificate.block_certificates; 0:
        per-user bounds only, closed form).
    oracle_call_budget : a deterministic budget: ``ctx.should_stop()`` turns true after this
        many oracle calls of the run (``SolveContext.oracle_call_budget``).
    """
    resolved = resolve(solver_cls.params, params, owner=f"solver {solver_cls.name}")
    oracle = oracle or default_oracle()
    calls0, hits0, otime0 = oracle.misses + oracle.hits, oracle.hits, oracle.solve_time_s
    ctx = SolveContext(oracle=oracle, seed=seed, time_limit_s=time_limit_s,
                       progress_callback=progress, oracle_call_budget=oracle_call_budget)
    t0 = time.perf_counter()
    oracle.begin_run()  # this run's answers depend on its own questions only
    before = oracle.deadline
    if time_limit_s is not None:  # the oracle stops optimising FALLBACK_S past the limit
        oracle.deadline = ctx.deadline() + FALLBACK_S
    try:
        solver = solver_instance(solver_cls)
        result = solver.solve(inst, ctx, dict(resolved))
        if not isinstance(result, SolveResult):
            result = SolveResult(None, SolveStatus.ERROR,
                                 f"solve() returned {type(result).__name__}, not SolveResult")
    except FgamcdError as exc:  # the solver refuses this instance or its parameters
        if debug:
            raise
        result = SolveResult(None, SolveStatus.ERROR, str(exc), metadata={"refused": True})
    except Exception as exc:  # a solver bug must not take the run (or a sweep) down
        if debug:
            raise
        result = SolveResult(None, SolveStatus.ERROR, f"{type(exc).__name__}: {exc}",
                             metadata={"traceback": traceback.format_exc()})
    finally:
        oracle.deadline = before
    solve_time = time.perf_counter() - t0
    evaluation = None
    if result.plan is not None:
        try:
            evaluation = evaluate(inst, result.plan, oracle)
        except Exception as exc:  # a malformed plan object must not crash the run either
            if debug:
                raise
            result = SolveResult(None, SolveStatus.ERROR, f"the plan could not be evaluated: "
                                 f"{type(exc).__name__}: {exc}", metadata=result.metadata)
    certificates = None
    t_cert = time.perf_counter()
    if evaluation is not None:
        try:
            certificates = block_certificates(inst, result.plan, evaluation,
                                              certificate_time_s)
        except Exception as exc:  # a certificate failure must not lose the run
            if debug:
                raise
            certificates = {"error": f"{type(exc).__name__}: {exc}"}
    record = _record(inst, solver_cls.name, resolved, seed, oracle, time_limit_s, result,
                     evaluation, bound_s, solve_time,
                     calls=oracle.misses + oracle.hits - calls0, hits=oracle.hits - hits0,
                     oracle_time=oracle.solve_time_s - otime0)
    if certificates is not None:
        record.metadata["pb_certificates"] = jsonable(certificates)
        record.metadata["pb_certificates_time_s"] = time.perf_counter() - t_cert
    return Run(record, result, evaluation)


def attach_bound(run: Run, bound_s: float | None, info: dict | None = None) -> Run:
    """``run`` with an external certified bound (``fgamcd-solve --bound``, computed after the
    solve): the record's bound and gap use it, ``metadata["bound_info"]`` says which bound it
    is and whether a stage hit its budget (``info``), the solver's own bound moves to
    ``metadata["solver_bound_s"]``."""
    rec = run.record
    metadata = {k: v for k, v in rec.metadata.items() if k != "bound_warning"}
    if run.result.bound is not None:
        metadata["solver_bound_s"] = run.result.bound
    valid = bound_s is not None and math.isfinite(bound_s)
    if info is not None:
        metadata["bound_info"] = jsonable(info)
    if not valid:  # no external bound: the record keeps the solver's own, if any
        return Run(replace(rec, metadata={**rec.metadata, **metadata}), run.result,
                   run.evaluation)
    gap, note = gap_to_bound(run.evaluation, bound_s)
    if note:
        metadata["bound_warning"] = note
    rec = replace(rec, bound_s=bound_s, bound_source="external", gap=gap, metadata=metadata)
    return Run(rec, run.result, run.evaluation)


def score_result(inst: Instance, solver_name: str, resolved: dict, seed: int,
                 oracle: BeamformingOracle, time_limit_s: float | None, result: SolveResult,
                 solve_time_s: float, calls: int = 0, hits: int = 0,
                 oracle_time_s: float = 0.0) -> Run:
    """Score a :class:`SolveResult` made elsewhere and write its run record: a plugin run in a
    process of its own (``fgamcd_opt.experiments.isolation``) hands over its plan and claims as
    data, and its time and oracle counts as measured outside. The evaluator scores the plan on
    ``inst`` here, as :func:`run_solver` does for a run in this process."""
    evaluation = None
    if result.plan is not None:
        try:
            evaluation = evaluate(inst, result.plan, oracle)
        except Exception as exc:  # a malformed plan object is the solver's failure
            result = SolveResult(None, SolveStatus.ERROR, f"the plan could not be evaluated: "
                                 f"{type(exc).__name__}: {exc}", metadata=result.metadata)
    record = _record(inst, solver_name, resolved, seed, oracle, time_limit_s, result,
                     evaluation, None, solve_time_s, calls=calls, hits=hits,
                     oracle_time=oracle_time_s)
    return Run(record, result, evaluation)


def gap_to_bound(ev: Evaluation | None, bound: float | None) -> tuple[float | None, str]:
    """(gap, note). The gap (T - bound) / T is defined only for a comparable plan (finite T:
    complete, at most QoS violations); a bound above T is reported in the note (it would mean
    an invalid bound) and the gap is clamped at 0."""
    if ev is None or bound is None or not math.isfinite(ev.total_delay_s):
        return None, ""
    t = ev.total_delay_s
    if t <= 0:
        return 0.0, ""
    gap = (t - bound) / t
    if gap < 0:
        note = f"bound {bound:.6g} s exceeds the evaluated delay {t:.6g} s (relative {gap:.2e})"
        return 0.0, note
    return gap, ""


def _record(inst, name, resolved, seed, oracle, time_limit_s, result, ev, bound_s, solve_time,
            calls, hits, oracle_time) -> RunRecord:
    # an external bound, when given, is the record's bound: the same number for every solver
    source = "external" if bound_s is not None else "solver"
    bound = bound_s if bound_s is not None else result.bound
    if bound is None or not math.isfinite(bound):
        source, bound = None, None
    gap, note = gap_to_bound(ev, bound)
    metadata = {k: v for k, v in result.metadata.items() if k != "traceback"}
    if bound_s is not None and result.bound is not None:
        metadata["solver_bound_s"] = result.bound
    if note:
        metadata["bound_warning"] = note
    kinds: dict[str, int] = {}
    if ev is not None:
        for v in ev.violations:
            kinds[v.kind] = kinds.get(v.kind, 0) + 1
    prov = inst.provenance or {}
    scenario = ({"generator": prov.get("generator"), "parameters": prov.get("parameters", {}),
                 "overrides": prov.get("overrides", {})} if prov.get("generator") else None)
    return RunRecord(
        instance_name=inst.name, instance_fingerprint=inst.fingerprint, scenario=scenario,
        solver=name,
        params={k: (list(v) if isinstance(v, tuple) else v) for k, v in resolved.items()},
        seed=seed, oracle_method=oracle.method, oracle_options=dict(oracle.options),
        time_limit_s=time_limit_s, solver_status=result.status.value,
        verdict=ev.status if ev is not None else "not_evaluated",
        complete=ev.complete if ev else None,
        total_delay_s=ev.total_delay_s if ev else None,
        delivered_delay_s=ev.delivered_delay_s if ev else None,
        migration_delay_s=ev.migration_delay_s if ev else None,
        broadcast_delay_s=ev.broadcast_delay_s if ev else None,
        violations=kinds,
        qos_violating_users=len(ev.qos_violating_users()) if ev else None,
        undelivered_users=len(ev.undelivered_users()) if ev else None,
        unserved_pairs=ev.unserved_pairs if ev else None,
        bound_s=bound, bound_source=source, gap=gap, solve_time_s=solve_time,
        eval_time_s=ev.eval_time_s if ev else 0.0, oracle_time_s=oracle_time,
        oracle_calls=calls, oracle_cache_hits=hits, message=result.message, metadata=metadata)


def _num(nullable: bool = True, minimum: float | None = None) -> dict:
    d: dict = {"type": ["number", "null"] if nullable else "number"}
    if minimum is not None:
        d["minimum"] = minimum
    return d


RUN_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://fgamcd-opt/schemas/run-record-v2.json",
    "title": "fgamcd-opt run record v2",
    "description": "One solver on one instance with one seed. Delays in seconds; null delays "
                   "mean infinite (not comparable) or not evaluated.",
    "type": "object",
    "required": [f for f in RunRecord.__dataclass_fields__],
    "additionalProperties": False,
    "properties": {
        "record_schema_version": {"const": RECORD_SCHEMA_VERSION},
        "code_version": {"type": "string"},
        "instance_name": {"type": "string"},
        "instance_fingerprint": {"type": "string", "pattern": "^[0-9a-f]{16,64}$"},
        "scenario": {"type": ["object", "null"],
                     "description": "generator name, its resolved parameters and overrides"},
        "solver": {"type": "string", "minLength": 1},
        "params": {"type": "object", "description": "the solver's resolved parameters"},
        "seed": {"type": "integer"},
        "oracle_method": {"enum": ["fast", "sdr", "mrt", "nonrobust"]},
        "oracle_options": {"type": "object"},
        "time_limit_s": _num(minimum=0),
        "solver_status": {"enum": [s.value for s in SolveStatus],
                          "description": "the solver's own claim"},
        "verdict": {"enum": list(VERDICTS), "description": "the evaluator's verdict"},
        "complete": {"type": ["boolean", "null"],
                     "description": "every requested (user, PB) pair served at a positive rate"},
        "total_delay_s": {**_num(minimum=0), "description": "T (eq. 8); null = infinite"},
        "delivered_delay_s": _num(minimum=0),
        "migration_delay_s": _num(minimum=0),
        "broadcast_delay_s": _num(minimum=0),
        "violations": {"type": "object",
                       "propertyNames": {"enum": list(VIOLATION_KINDS)},
                       "additionalProperties": {"type": "integer", "minimum": 1}},
        "qos_violating_users": {"type": ["integer", "null"], "minimum": 0},
        "undelivered_users": {"type": ["integer", "null"], "minimum": 0},
        "unserved_pairs": {"type": ["integer", "null"], "minimum": 0},
        "bound_s": _num(minimum=0),
        "bound_source": {"enum": ["solver", "external", None]},
        "gap": {**_num(minimum=0), "maximum": 1},
        "solve_time_s": _num(False, 0),
        "eval_time_s": _num(False, 0),
        "oracle_time_s": _num(False, 0),
        "oracle_calls": {"type": "integer", "minimum": 0},
        "oracle_cache_hits": {"type": "integer", "minimum": 0},
        "message": {"type": "string"},
        "metadata": {"type": "object", "properties": {"pb_certificates": {
            "type": "object",
            "description": "written by the runner: per PB, each transmission's achieved min "
                           "worst-case rate over an upper bound on its group's robust max-min "
                           "rate from its nodes (docs/milp.md section 3.6)",
            "properties": {"min_ratio": {"type": ["number", "null"], "minimum": 0,
                                         "maximum": 1},
                           "time_ratio": {"type": ["number", "null"], "minimum": 0,
                                          "maximum": 1},
                           "blocks": {"type": "object"}}}}},
    },
}
