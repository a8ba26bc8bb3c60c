"""The shared robust CoMP beamforming oracle (docs/model.md sections 3 and 6).

Every solver and the evaluator get beamformers here. For PB k, participating nodes P and served
users V the oracle returns beams that maximise the minimum exact worst-case rate (minimum
broadcast delay) subject to QoS and per-node power, the rates themselves (rates.py, the
evaluator's closed form), QoS status with the users that cannot reach Q_u, and a status.

Flow for the optimising methods (``fast``, ``sdr``, ``nonrobust``):
0. a single user is served optimally in closed form (robust MRT), no solve;
1. users out of every participant's reach (||h~_{n,u}|| <= 1/sqrt(c_{n,u}) for all n in P) have
   worst-case rate 0 for any beam: reported at once (status ``zero_rate``), no solve;
2. maximise the min SNR (delay objective). If that meets every Q_u, done;
3. otherwise search for QoS feasibility: maximise min_u SNR_u / SNR_req_u. If >= 1, maximise the
   min SNR subject to the QoS floors from that point; if < 1 report QoS-infeasible, the users
   below their floor at the best QoS point, and return the delay-optimal beams of step 2.

Results are memoised per (instance fingerprint, PB, participants, users, method, options) in a
bounded LRU, so training loops and sweeps never solve the same subproblem twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from ..errors import FgamcdError
from ..instance import Instance
from ..lru import LRU
from ..rates import rate_from_amplitude, transfer_delay_s
from .methods import MethodOutput, MethodStatus, amplitude_upper_bound, mrt, robust_mrt
from .problem import BeamProblem, project_power

METHODS = ("fast", "sdr", "mrt", "nonrobust")


class OracleStatus(StrEnum):
    OPTIMAL = "optimal"
    CONVERGED = "converged"
    ITERATION_LIMIT = "iteration_limit"
    NUMERICAL_FAILURE = "numerical_failure"  # the method failed; a fallback beam is returned
    ZERO_RATE = "zero_rate"  # some user is out of every participant's reach


@dataclass
class BeamResult:
    """What the oracle returns for one (PB, participants, users) subproblem.

    beams : (p, M) complex, physical units (||w_n||^2 in watts), rows in ``nodes`` order.
    rates_bps : (v,) exact worst-case rates of the served users (``users`` order).
    """

    block: int
    nodes: tuple[int, ...]
    users: tuple[int, ...]
    method: str
    beams: np.ndarray
    rates_bps: np.ndarray
    status: OracleStatus
    qos_feasible: bool
    qos_infeasible_users: tuple[int, ...] = ()
    zero_rate_users: tuple[int, ...] = ()
    power_w: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iterations: int = 0
    time_s: float = 0.0
    fallback_used: bool = False
    message: str = ""

    @property
    def min_rate_bps(self) -> float:
        return float(self.rates_bps.min()) if self.rates_bps.size else float("inf")

    def delay_s(self, size_bytes: int) -> float:
        """Broadcast delay 8 S / min rate (inf when some user has rate 0)."""
        return transfer_delay_s(size_bytes, self.min_rate_bps)

    def summary(self) -> dict:
        return {
            "block": self.block, "nodes": list(self.nodes), "users": list(self.users),
            "method": self.method, "status": self.status.value,
            "min_rate_bps": self.min_rate_bps, "qos_feasible": self.qos_feasible,
            "qos_infeasible_users": list(self.qos_infeasible_users),
            "zero_rate_users": list(self.zero_rate_users), "iterations": self.iterations,
            "time_s": self.time_s, "fallback_used": self.fallback_used,
        }


def normalised_problem(inst: Instance, k: int, nodes, users) -> BeamProblem:
    """BeamProblem of PB k: g = sqrt(P_n) h~ / sigma_u, rho = sqrt(P_n / c) / sigma_u."""
    nodes = np.asarray(nodes, dtype=int)
    users = np.asarray(users, dtype=int)
    h = inst.channel(k, users)[nodes]  # (p, v, M)
    sp = np.sqrt(inst.nodes.power_max_w[nodes])[:, None]
    sigma = np.sqrt(inst.users.noise_w[users])[None, :]
    g = h * (sp / sigma)[..., None]
    rho = inst.error_radius[np.ix_(nodes, users)] * sp / sigma
    return BeamProblem(g, rho, inst.snr_required[users])


# Options each method accepts (passed through to it; ``sdr_budget`` is read by the oracle).
METHOD_OPTIONS: dict[str, frozenset[str]] = {
    "fast": frozenset({"n_random_starts", "seed", "max_iterations", "race_iterations", "tol",
                       "time_limit"}),
    "nonrobust": frozenset({"n_random_starts", "seed", "max_iterations", "race_iterations",
                            "tol", "time_limit"}),
    "sdr": frozenset({"mu", "mu_growth", "max_dc_iterations", "rank_tol", "solver",
                      "time_limit", "sdr_budget"}),
    "mrt": frozenset(),
}


class OracleOptionError(FgamcdError, ValueError):
    """An oracle option the chosen method does not accept."""


def check_options(method: str, options: dict) -> None:
    """Raise :class:`OracleOptionError` naming every option ``method`` does not accept (an
    option silently dropped would still change the memo key and mislead the user)."""
    if method not in METHODS:
        raise OracleOptionError(f"unknown beamforming method {method!r}; known: "
                                f"{', '.join(METHODS)}")
    unknown = sorted(set(options) - METHOD_OPTIONS[method])
    if unknown:
        known = ", ".join(sorted(METHOD_OPTIONS[method])) or "none"
        raise OracleOptionError(f"beamforming method {method!r} does not accept option(s) "
                                f"{', '.join(unknown)} (it accepts: {known})")


def _run_method(method: str, problem: BeamProblem, weights, floors, init, options: dict,
                budget: float) -> MethodOutput:
    opts = {k: v for k, v in options.items() if k != "sdr_budget"}
    if method in ("fast", "nonrobust"):
        from .fast import solve_fast

        return solve_fast(problem, weights, floors, init=init, **opts)
    if method == "sdr":
        from .sdr import solve_sdr

        return solve_sdr(problem, weights, floors, budget=budget, **opts)
    raise ValueError(method)


class BeamformingOracle:
    """Memoised robust beamforming. ``method``: fast (default) | sdr | mrt | nonrobust.

    ``options`` are passed to the method (e.g. ``n_random_starts`` for fast, ``mu`` for sdr);
    ``sdr_budget`` = 'paper' (aggregate error budget N = all nodes, eq. 28) or 'participants'.
    """

    def __init__(self, method: str = "fast", cache_size: int = 200_000, **options):
        check_options(method, options)
        self.method = method
        self.options = options
        self.cache_size = cache_size
        self._cache = LRU(cache_size)
        self.hits = 0
        self.misses = 0
        self.solve_time_s = 0.0

    def clear(self) -> None:
        self._cache.clear()

    def memo_entries(self, fingerprint: str) -> list:
        """The memoised (key, result) pairs of one instance (by fingerprint), e.g. to warm the
        oracle of another process working on the same instance (:meth:`preload`)."""
        return [(k, v) for k, v in self._cache.items() if k[0] == fingerprint]

    def preload(self, entries) -> None:
        """Add memoised results made by an oracle of the same method and options (deterministic:
        a preloaded result is what this oracle would compute; it counts as a hit when used)."""
        for key, result in entries:
            self._cache.put(key, result)

    def solve(self, inst: Instance, k: int, nodes, users, method: str | None = None,
              **options) -> BeamResult:
        """Beams and exact worst-case rates for PB k from ``nodes`` to ``users``."""
        method = method or self.method
        check_options(method, options)
        # the constructor's options belong to its default method; another method asked for by
        # a unit runs with its own defaults plus whatever this call passes
        opts = {**(self.options if method == self.method else {}), **options}
        nodes = tuple(int(n) for n in nodes)
        users = tuple(int(u) for u in users)
        key = (inst.fingerprint, int(k), nodes, users, method, tuple(sorted(opts.items())))
        hit = self._cache.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        t0 = time.perf_counter()
        result = self._solve(inst, int(k), nodes, users, method, opts)
        result.time_s = time.perf_counter() - t0
        self.solve_time_s += result.time_s
        self._cache.put(key, result)
        return result

    # ------------------------------------------------------------------------------------
    def _solve(self, inst, k, nodes, users, method, opts) -> BeamResult:
        m = inst.antennas
        if not nodes or not users:
            return BeamResult(k, nodes, users, method, np.zeros((len(nodes), m), complex),
                              np.zeros(len(users)), OracleStatus.ZERO_RATE, not users,
                              zero_rate_users=users, message="no participating node"
                              if not nodes else "no user")
        problem = normalised_problem(inst, k, nodes, users)
        budget = float(inst.n_nodes if opts.get("sdr_budget", "paper") == "paper"
                       else len(nodes))
        dead = problem.dead_users()
        status = OracleStatus.CONVERGED
        fallback = False
        message = ""
        iterations = 0
        qos_bad_local: np.ndarray = np.zeros(0, dtype=int)
        if dead.size:
            x = robust_mrt(problem, int(dead[0])).x if problem.n_users == 1 else mrt(problem).x
            status = OracleStatus.ZERO_RATE
            message = "user(s) out of every participant's reach"
        elif method == "mrt":
            x = mrt(problem).x
            status = OracleStatus.OPTIMAL if problem.n_users == 1 else OracleStatus.CONVERGED
        elif problem.n_users == 1 and method in ("fast", "nonrobust"):
            # one user: the optimum is known in closed form (methods.robust_mrt); on the
            # estimates alone (nonrobust) it is plain MRT on every node
            x = (robust_mrt(problem) if method == "fast" else mrt(problem)).x
            status = OracleStatus.OPTIMAL
        else:
            solve_on = problem
            if method == "nonrobust":  # optimise on the estimates; rates are still exact
                solve_on = BeamProblem(problem.g, np.zeros_like(problem.rho),
                                       problem.snr_required)
            reduced, bases = solve_on.reduce()
            out = _run_method(method, reduced, None, None, None, opts, budget)
            iterations += out.iterations
            x_red = out.x
            status, fallback, message = _status_of(out)
            req = reduced.snr_required
            snr = reduced.amplitude(x_red) ** 2
            unreachable = np.flatnonzero(amplitude_upper_bound(reduced) ** 2 < req * (1 - 1e-9))
            if unreachable.size and np.any(snr < req * (1 - 1e-9)):
                # some user misses Q_u even served alone at full power: infeasible, no search
                qos_bad_local = unreachable
            elif np.any(snr < req * (1 - 1e-9)):
                t = np.sqrt(np.maximum(req, 1e-12))  # users with Q_u = 0 never bind
                q = _run_method(method, reduced, t, None, x_red if method != "sdr" else None,
                                opts, budget)
                iterations += q.iterations
                if reduced.qos_ratio(q.x) >= 1 - 1e-9:
                    f = _run_method(method, reduced, None, req, q.x, opts, budget)
                    iterations += f.iterations
                    cand = f.x if f.status != MethodStatus.INFEASIBLE else q.x
                    if np.all(reduced.amplitude(cand) ** 2 >= req * (1 - 1e-9)):
                        x_red = cand
                else:
                    qos_bad_local = np.flatnonzero(reduced.amplitude(q.x) ** 2 < req * (1 - 1e-9))
            x = BeamProblem.lift(x_red, bases)
        x = project_power(x)
        if not np.all(np.isfinite(x)):
            x = robust_mrt(problem, 0).x
            status, fallback, message = OracleStatus.NUMERICAL_FAILURE, True, "non-finite beams"
        beams = x * np.sqrt(inst.nodes.power_max_w[list(nodes)])[:, None]
        # normalised amplitude = physical worst-case amplitude / sigma_u (same closed form)
        amp = problem.amplitude(x)
        rates = rate_from_amplitude(amp, 1.0, inst.bandwidth_hz)
        qos_req = inst.users.qos_bps[list(users)]
        below = rates < qos_req * (1 - 1e-9)
        users_arr = np.asarray(users)
        if dead.size:
            infeasible = users_arr[below]
        elif qos_bad_local.size:
            infeasible = users_arr[qos_bad_local]
        else:
            infeasible = users_arr[below]
        return BeamResult(
            block=k, nodes=nodes, users=users, method=method, beams=beams, rates_bps=rates,
            status=status, qos_feasible=not below.any() if not qos_bad_local.size else False,
            qos_infeasible_users=tuple(int(u) for u in infeasible),
            zero_rate_users=tuple(int(u) for u in users_arr[amp <= 0]),
            power_w=np.sum(np.abs(beams) ** 2, axis=1), iterations=iterations,
            fallback_used=fallback, message=message,
        )


def _status_of(out: MethodOutput) -> tuple[OracleStatus, bool, str]:
    if out.status == MethodStatus.NUMERICAL_FAILURE:
        return OracleStatus.NUMERICAL_FAILURE, True, out.message
    if out.status == MethodStatus.ITERATION_LIMIT:
        return OracleStatus.ITERATION_LIMIT, False, out.message
    if out.status == MethodStatus.OPTIMAL:
        return OracleStatus.OPTIMAL, False, out.message
    return OracleStatus.CONVERGED, False, out.message


_DEFAULT: BeamformingOracle | None = None


def default_oracle() -> BeamformingOracle:
    """The process-wide shared oracle (method ``fast``)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = BeamformingOracle("fast")
    return _DEFAULT
