"""The solver extension point: instance + shared services in, plan + status out.

A solver is any class with a ``name``, a ``description``, declared ``params`` and a
``solve(instance, ctx, params)`` method returning a :class:`SolveResult`. Solvers decide caching,
migration and delivery units; they never compute rates or delays themselves (they ask
``ctx.oracle`` and, for comparisons, :func:`fgamcd_opt.evaluator.evaluate`), and the runner, not
the solver, measures wall time and scores the plan. Minimal example::

    class Nearest:
        name = "nearest"
        description = "cache every requested PB at the requesters' own nodes"
        params = [Param("cap", int, 1, "max nodes per broadcast")]

        def solve(self, instance, ctx, params):
            ...
            return SolveResult(plan, SolveStatus.FEASIBLE)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from .instance import Instance
from .oracle import BeamformingOracle, default_oracle
from .params import Param
from .plan import Plan

# A solve given a time limit T returns within T + GRACE_S seconds (README "time limits"): past T
# the solvers switch to quick closed-form fallbacks for at most FALLBACK_S seconds, then stop and
# return the partial plan built so far (status ``time_limit``); the rest of the grace covers
# the last uninterruptible step (one oracle call, a model build).
GRACE_S = 5.0
FALLBACK_S = 2.0


class SolveStatus(StrEnum):
    """The solver's own claim about its plan (the evaluator has the last word on feasibility)."""

    OPTIMAL = "optimal"  # proven optimal for the solver's model
    FEASIBLE = "feasible"  # a plan is returned; no optimality claim
    TIME_LIMIT = "time_limit"  # stopped by the time limit; the best plan so far is returned
    INFEASIBLE = "infeasible"  # no plan satisfies the constraints; ``message`` says why
    ERROR = "error"  # the solver failed; ``plan`` may be a fallback or None


@dataclass
class SolveResult:
    plan: Plan | None
    status: SolveStatus
    message: str = ""
    bound: float | None = None  # certified lower bound on the total delay (s), if any
    metadata: dict = field(default_factory=dict)


ProgressCallback = Callable[[float, str], None]


@dataclass
class SolveContext:
    """Shared services handed to every solver.

    oracle : the shared beamforming oracle (beams and exact rates; never compute them yourself).
    seed : the run seed; :meth:`rng` derives independent generators from it.
    time_limit_s : wall-clock budget of ``solve`` (None: none); poll :meth:`should_stop`.
    progress_callback : receives (fraction done in [0, 1], message); the CLI draws a bar.
    stop_event : set by the caller (e.g. Ctrl-C in a sweep) to ask the solver to stop early.
    oracle_call_budget : a deterministic budget (None: none): :meth:`should_stop` turns true
        once the run has made this many oracle calls (memo hits included), so where a solver
        stops does not depend on how loaded the machine is.
    """

    oracle: BeamformingOracle = field(default_factory=default_oracle)
    seed: int = 0
    time_limit_s: float | None = None
    started: float = field(default_factory=time.perf_counter)
    progress_callback: ProgressCallback | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    oracle_call_budget: int | None = None
    _calls0: int = field(default=0, init=False, repr=False)

    def __post_init__(self):
        self._calls0 = self.oracle.hits + self.oracle.misses

    def oracle_calls(self) -> int:
        """Oracle calls of this run so far (memo hits included)."""
        return self.oracle.hits + self.oracle.misses - self._calls0

    def rng(self, *stream: int) -> np.random.Generator:
        """A generator derived from the run seed (and an optional stream id)."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, *stream]))

    def time_left(self) -> float:
        if self.time_limit_s is None:
            return float("inf")
        return self.time_limit_s - (time.perf_counter() - self.started)

    def should_stop(self) -> bool:
        """True once the time limit has passed, the oracle-call budget is spent or a stop was
        requested: return the best plan so far with status ``time_limit`` (quick fallbacks for
        what is left are fine for ``FALLBACK_S`` more seconds, see :meth:`must_stop`)."""
        return self.stop_event.is_set() or self.time_left() <= 0 or (
            self.oracle_call_budget is not None
            and self.oracle_calls() >= self.oracle_call_budget)

    def must_stop(self) -> bool:
        """True ``FALLBACK_S`` seconds after the time limit (or once a stop was requested):
        plan nothing more, return the partial plan so far with status ``time_limit``."""
        return self.stop_event.is_set() or self.time_left() <= -FALLBACK_S

    def deadline(self, share: float = 1.0) -> float | None:
        """The ``time.monotonic()`` instant at ``share`` of the time limit (None without a
        limit): hand it to a stage that checks the clock itself (a worker pool, HiGHS)."""
        if self.time_limit_s is None:
            return None
        elapsed = time.perf_counter() - self.started
        return time.monotonic() + share * self.time_limit_s - elapsed

    def step(self, done: int, total: int, what: str = "") -> bool:
        """Report that ``done`` of ``total`` work items are finished and return
        :meth:`should_stop`: the loop helper of long solvers (past the limit they switch to a
        quick fallback for the remaining items and report status ``time_limit``)."""
        if self.progress_callback is not None:
            self.progress(done / total if total else 1.0,
                          f"{what} {done}/{total}" if what else f"{done}/{total}")
        return self.should_stop()

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress (fraction of the work done, 0..1); cheap when nobody listens."""
        if self.progress_callback is not None:
            self.progress_callback(min(max(float(fraction), 0.0), 1.0), message)


@runtime_checkable
class Solver(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[Sequence[Param]]

    def solve(self, instance: Instance, ctx: SolveContext, params: dict[str, Any]) -> SolveResult:
        ...


def missing_members(cls) -> list[str]:
    """Members of the :class:`Solver` protocol that ``cls`` lacks (``issubclass`` cannot check a
    protocol with data members, so the registry and the conformance check use this)."""
    members = [*Solver.__annotations__, "solve"]
    return [m for m in members if not hasattr(cls, m)] + (
        [] if callable(getattr(cls, "solve", None)) else ["a callable solve"])
