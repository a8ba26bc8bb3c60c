"""Conformance check for solvers (after PettingZoo's ``parallel_api_test``).

``check_solver(MySolver)`` runs a solver on tiny fixture instances and checks that

- the class has the interface (name, description, declared ``Param`` parameters, ``solve``);
- ``solve`` returns a :class:`SolveResult` with a plan of the right shape (indices in range);
- the same seed gives the same plan (determinism);
- statuses are honest: a plan claimed ``feasible``/``optimal`` has no structural violation
  (storage, migration source, participation, power, malformed units), and anything the evaluator
  finds missing (undelivered users, QoS) is explained in the result's message or is inherent to
  the instance; ``infeasible``/``error`` carry a message; a claimed bound is <= the evaluated
  delay of the returned feasible plan;
- the instance is not modified.

It returns a :class:`ConformanceReport`; ``assert_conforms`` raises ``AssertionError`` listing
every failure. Built-in solvers pass it in the test suite; a plugin author can call it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jsonschema

from .errors import SolverNotFound
from .evaluator import STRUCTURAL_KINDS
from .generators import generate
from .instance import Instance
from .oracle import BeamformingOracle
from .params import Param
from .plan import Plan
from .plan_io import plan_to_dict
from .registry import check_solver_class
from .runner import RUN_SCHEMA, run_solver
from .solver import SolveResult, SolveStatus

STRUCTURAL = STRUCTURAL_KINDS


def fixture_instances() -> list[Instance]:
    """Small named fixtures: the tiny scenario, a storage-starved variant, a single user."""
    return [
        generate("tiny", seed=0),
        generate("tiny", seed=1, storage_gb=0.01, n_users=5),
        generate("tiny", seed=2, n_users=1, n_nodes=2),
    ]


@dataclass
class ConformanceReport:
    solver: str
    failures: list[str] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _plan_shape_problems(plan: Plan, inst: Instance) -> list[str]:
    out = []
    if len(plan.cache) != inst.n_nodes:
        out.append(f"plan.cache has {len(plan.cache)} entries for {inst.n_nodes} nodes")
        return out
    for n, blocks in enumerate(plan.cache):
        if any(not 0 <= k < inst.n_blocks for k in blocks):
            out.append(f"plan.cache[{n}] has PB indices out of range")
    for u in plan.units:
        if not 0 <= u.block < inst.n_blocks or any(not 0 <= x < inst.n_nodes for x in u.nodes) \
                or any(not 0 <= x < inst.n_users for x in u.users):
            out.append(f"unit {u} has indices out of range")
    return out


def check_solver(solver_cls, instances: list[Instance] | None = None, seeds=(0,),
                 params: dict | None = None,
                 time_limit_s: float | None = None) -> ConformanceReport:
    """Run the checks above; ``time_limit_s`` is handed to every run (``ctx.time_limit_s``).
    The benchmark suite runs this in a process of its own, with a hard time limit."""
    name = getattr(solver_cls, "name", repr(solver_cls))
    report = ConformanceReport(str(name))
    fail = report.failures.append
    if not isinstance(getattr(solver_cls, "name", None), str) or not solver_cls.name:
        fail("solver class needs a non-empty string attribute 'name'")
    if not callable(getattr(solver_cls, "solve", None)):
        fail("solver class needs a solve(instance, ctx, params) method")
        return report
    declared = getattr(solver_cls, "params", ())
    if any(not isinstance(p, Param) for p in declared):
        fail("every entry of 'params' must be a fgamcd_opt.params.Param")
    if not getattr(solver_cls, "description", ""):
        fail("solver class needs a 'description'")
    try:
        check_solver_class(solver_cls, name)
    except SolverNotFound as exc:
        fail(str(exc))
        return report
    instances = instances if instances is not None else fixture_instances()
    for inst in instances:
        fp = inst.fresh_fingerprint()
        for seed in seeds:
            oracle = BeamformingOracle()
            runs = [run_solver(inst, solver_cls, params, seed=seed, oracle=oracle,
                               time_limit_s=time_limit_s) for _ in range(2)]
            first, second = runs
            res: SolveResult = first.result
            where = f"{inst.name} seed {seed}"
            row = first.record.to_dict()
            report.runs.append({"instance": inst.name, "seed": seed, **row})
            try:
                jsonschema.validate(row, RUN_SCHEMA)
            except jsonschema.ValidationError as exc:
                fail(f"{where}: run record breaks its schema: {exc.message}")
            if res.status == SolveStatus.ERROR and "returned" in res.message:
                fail(f"{where}: {res.message}")
                continue
            if res.status == SolveStatus.ERROR:
                fail(f"{where}: solver raised or reported an error: {res.message}")
                continue
            if res.status in (SolveStatus.INFEASIBLE,) and not res.message:
                fail(f"{where}: status infeasible without a message saying why")
            if res.plan is None:
                if res.status not in (SolveStatus.INFEASIBLE, SolveStatus.ERROR):
                    fail(f"{where}: no plan but status {res.status.value}")
                continue
            shape = _plan_shape_problems(res.plan, inst)
            if shape:
                report.failures.extend(f"{where}: {s}" for s in shape)
                continue
            d1 = plan_to_dict(res.plan, inst, with_beams=True)
            d2 = plan_to_dict(second.result.plan, inst, with_beams=True) \
                if second.result.plan is not None else None
            for d in (d1, d2):
                if d is not None:
                    d.pop("metadata", None)
            if d1 != d2:
                fail(f"{where}: two runs with the same seed gave different plans")
            ev = first.evaluation
            if res.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.TIME_LIMIT):
                structural = [v for v in ev.violations if v.kind in STRUCTURAL]
                if structural:
                    fail(f"{where}: status {res.status.value} but the evaluator finds "
                         f"{structural[0].kind}: {structural[0].message}")
                if not ev.complete and not res.message:
                    fail(f"{where}: {len(ev.undelivered_users())} user(s) undelivered and the "
                         "result's message does not say so")
            if res.bound is not None and ev.complete and \
                    res.bound > ev.delivered_delay_s * (1 + 1e-6) + 1e-12:
                fail(f"{where}: claimed bound {res.bound} exceeds the evaluated delay "
                     f"{ev.delivered_delay_s} of its own complete plan")
            if inst.fresh_fingerprint() != fp:
                fail(f"{where}: the solver modified the instance")
                break
    return report


def assert_conforms(solver_cls, **kwargs) -> ConformanceReport:
    report = check_solver(solver_cls, **kwargs)
    if not report.ok:
        raise AssertionError(f"solver {report.solver} fails the conformance check:\n  - "
                             + "\n  - ".join(report.failures))
    return report
