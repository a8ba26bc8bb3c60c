"""Running a solver: resolve parameters, time the solve, score the plan with the evaluator.

The runner (never the solver) measures wall time, and the evaluator (never the solver) computes
the delay. A solver exception becomes status ``error`` with its message; the run record is one
tidy row (benchopt style) that reports are built from.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field

from .evaluator import Evaluation, evaluate
from .instance import Instance
from .jsonio import jsonable
from .oracle import BeamformingOracle, default_oracle
from .params import resolve
from .plan import Plan
from .solver import SolveContext, SolveResult, SolveStatus


@dataclass
class RunRecord:
    """One row of results: one solver on one instance with one seed."""

    instance: str
    instance_fingerprint: str
    solver: str
    params: dict
    seed: int
    solver_status: str
    status: str  # final: the evaluator's verdict, or error / infeasible from the solver
    total_delay_s: float | None
    migration_delay_s: float | None
    broadcast_delay_s: float | None
    qos_violating_users: int | None
    undelivered_users: int | None
    n_violations: int | None
    bound_s: float | None
    gap: float | None
    solve_time_s: float
    eval_time_s: float
    oracle_calls: int
    oracle_cache_hits: int
    message: str = ""
    metadata: dict = field(default_factory=dict)

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


def run_solver(inst: Instance, solver_cls, params: dict | None = None, seed: int = 0,
               time_limit_s: float | None = None, oracle: BeamformingOracle | None = None,
               debug: bool = False) -> Run:
    solver = solver_cls()
    resolved = resolve(solver_cls.params, params, owner=f"solver {solver_cls.name}")
    oracle = oracle or default_oracle()
    calls0, hits0 = oracle.misses + oracle.hits, oracle.hits
    ctx = SolveContext(oracle=oracle, seed=seed, time_limit_s=time_limit_s)
    t0 = time.perf_counter()
    try:
        result = solver.solve(inst, ctx, dict(resolved))
        if not isinstance(result, SolveResult):
            result = SolveResult(None, SolveStatus.ERROR,
                                 f"solve() returned {type(result).__name__}, not SolveResult")
    except Exception as exc:  # a solver bug must not take the run (or a sweep) down
        if debug:
            raise
        result = SolveResult(None, SolveStatus.ERROR, f"{type(exc).__name__}: {exc}",
                             metadata={"traceback": traceback.format_exc()})
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
    calls = oracle.misses + oracle.hits - calls0
    hits = oracle.hits - hits0
    if evaluation is None:
        status = result.status.value if result.status != SolveStatus.FEASIBLE else "error"
    elif result.status == SolveStatus.ERROR:
        status = "error"
    else:
        status = evaluation.status
    ev = evaluation
    gap = None
    if ev is not None and result.bound is not None and ev.total_delay_s > 0:
        gap = (ev.total_delay_s - result.bound) / ev.total_delay_s
    record = RunRecord(
        instance=inst.name, instance_fingerprint=inst.fingerprint, solver=solver_cls.name,
        params={k: (list(v) if isinstance(v, tuple) else v) for k, v in resolved.items()},
        seed=seed, solver_status=result.status.value, status=status,
        total_delay_s=ev.total_delay_s if ev else None,
        migration_delay_s=ev.migration_delay_s if ev else None,
        broadcast_delay_s=ev.broadcast_delay_s if ev else None,
        qos_violating_users=len(ev.qos_violating_users()) if ev else None,
        undelivered_users=len(ev.undelivered_users()) if ev else None,
        n_violations=len(ev.violations) if ev else None,
        bound_s=result.bound, gap=gap, solve_time_s=solve_time,
        eval_time_s=ev.eval_time_s if ev else 0.0, oracle_calls=calls, oracle_cache_hits=hits,
        message=result.message,
        metadata={k: v for k, v in result.metadata.items() if k != "traceback"},
    )
    return Run(record, result, evaluation)
