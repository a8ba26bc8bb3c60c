"""What every beamforming method returns, and the two closed-form methods (MRT, robust MRT).

Methods work on a (usually reduced) :class:`BeamProblem` and return normalised beams x (p, d) with
||x_n|` <= 1. They maximise a weighted max-min of the worst-case amplitudes,

    maximise  min_u a_u(x) / t_u     subject to  a_u(x)^2 >= floor_u,  ||x_n|| <= 1,

with t_u = 1 for the delay objective (max-min SNR = min broadcast delay) and
t_u = sqrt(SNR_req_u) for the QoS feasibility search (max min_u SNR_u / SNR_req_u).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from ..rates import link_gain_bound
from .problem import BeamProblem


class MethodStatus(StrEnum):
    OPTIMAL = "optimal"  # a certified optimum of the method's own (convex) model
    CONVERGED = "converged"  # a local method met its stopping rule
    ITERATION_LIMIT = "iteration_limit"  # stopped by the iteration/time cap; beams still valid
    NUMERICAL_FAILURE = "numerical_failure"  # the solver failed; a fallback beam was returned
    INFEASIBLE = "infeasible"  # the requested floors cannot be met (method's own model)


@dataclass
class MethodOutput:
    x: np.ndarray  # (p, d) complex normalised beams, ||x_n|| <= 1
    status: MethodStatus
    iterations: int = 0
    message: str = ""
    extra: dict = field(default_factory=dict)


def mrt(problem: BeamProblem, weights: np.ndarray | None = None) -> MethodOutput:
    """Maximum ratio transmission at full power toward the served users.

    One user: x_n = g_{n,u} / ||g_{n,u}|| on every node (the classic MRT of TDMA unicasting).
    Several users: each node points at the sum of the unit channel directions, weighted by
    ``weights`` (a cheap multicast baseline, not an optimiser).
    """
    g = problem.g
    norms = np.linalg.norm(g, axis=2, keepdims=True)
    unit = np.divide(g, norms, out=np.zeros_like(g), where=norms > 0)
    w = np.ones(problem.n_users) if weights is None else np.asarray(weights, dtype=float)
    x = np.einsum("v,nvd->nd", w, unit)
    nx = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, nx, out=np.zeros_like(x), where=nx > 0)
    return MethodOutput(x=x, status=MethodStatus.OPTIMAL if problem.n_users == 1 else
                        MethodStatus.CONVERGED, message="mrt")


def robust_mrt(problem: BeamProblem, user: int = 0) -> MethodOutput:
    """The exact robust optimum for a single user: MRT at full power on the nodes whose channel
    is stronger than their error radius, silence elsewhere.

    Optimality: a(x) <= sum_n (||g_n|| - rho_n) ||x_n|| <= sum_n max(0, ||g_n|| - rho_n), and this
    beam attains the bound (all terms add in phase, every active node at ||x_n|| = 1).
    """
    g = problem.g[:, user, :]
    norms = np.linalg.norm(g, axis=1)
    active = norms > problem.rho[:, user]
    x = np.zeros_like(g)
    x[active] = g[active] / norms[active, None]
    return MethodOutput(x=x, status=MethodStatus.OPTIMAL, message="robust-mrt")


def amplitude_upper_bound(problem: BeamProblem) -> np.ndarray:
    """Per-user bound no beam can beat: sum_n max(0, ||g_{n,u}|| - rho_{n,u}) (the single-user
    optimum; a group does no better than each of its members alone)."""
    return link_gain_bound(np.linalg.norm(problem.g, axis=2), problem.rho).sum(axis=0)
