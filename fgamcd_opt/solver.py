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

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from .instance import Instance
from .oracle import BeamformingOracle, default_oracle
from .params import Param
from .plan import Plan


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


@dataclass
class SolveContext:
    """Shared services handed to every solver."""

    oracle: BeamformingOracle = field(default_factory=default_oracle)
    seed: int = 0
    time_limit_s: float | None = None
    started: float = field(default_factory=time.perf_counter)

    def rng(self, *stream: int) -> np.random.Generator:
        """A generator derived from the run seed (and an optional stream id)."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, *stream]))

    def time_left(self) -> float:
        if self.time_limit_s is None:
            return float("inf")
        return self.time_limit_s - (time.perf_counter() - self.started)


@runtime_checkable
class Solver(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[Sequence[Param]]

    def solve(self, instance: Instance, ctx: SolveContext, params: dict[str, Any]) -> SolveResult:
        ...
