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

**Monotone in the nodes** (optimising methods ``fast``, ``sdr``, ``nonrobust``): beams from a
node set S padded with zero beams for the other nodes of a superset S' are beams from S' with
exactly the same worst-case rates (a silent node adds no signal and no error margin), so the
optimum can only grow with the node set; a local method can still miss it (issue 22: llm-13b,
PB k123 to u0 and u18, nodes (0, 2, 3, 5) reach 2.21 Mbps while adding node 4 returned
2.5e-17 W beams at 0 bps, "converged"). So when a run first asks for S', the best answer the
run got for a subset S of S' (same PB, users, method and options) is compared with the plain
solve of S', by (QoS met, then exact worst-case min rate); if the subset's is better, S' is
also solved with the subset's beams padded with zeros as an extra SCA start (``fast``,
``nonrobust``), and the best of the two solves and the padded beams themselves is the answer.
A superset's answer is therefore never worse than any subset's the run already got (tested
with random node-adding probes). A question asked again in the run gets the same answer. The
memo shared by every run of this oracle holds the plain solves (and the warm-started ones,
functions of the subproblem and the subset's beams), and ``begin_run`` (called by the runner)
forgets the previous run's answers: a run's answers depend on its own questions only, not on
what other solvers sharing the oracle asked before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from ..errors import FgamcdError
from ..instance import Instance
from ..lru import LRU
from ..rates import rate_from_amplitude, transfer_delay_s
from .methods import MethodOutput, MethodStatus, amplitude_upper_bound, mrt, robust_mrt
from .problem import BeamProblem, project_power

METHODS = ("fast", "sdr", "mrt", "nonrobust")
MONOTONE_METHODS = ("fast", "sdr", "nonrobust")  # optimisers: monotone in the node set
KNOWN_GROUPS = 50_000  # (PB, users, method, options) groups whose node sets are remembered


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
                       "time_limit", "first_order", "first_order_users"}),
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

    def __init__(self, method: str = "fast", cache_size: int = 200_000, store=None,
                 **options):
        check_options(method, options)
        self.method = method
        self.options = options
        self.cache_size = cache_size
        self._cache = LRU(cache_size)  # plain solves, shared by every run of this oracle
        # this run's answers (a question asked twice gets the same answer) and, per (instance,
        # PB, users, method, options), the node sets it answered: the subsets a superset is
        # compared with (module docstring, "monotone in the nodes"); both reset by begin_run
        self._answers = LRU(cache_size)
        self._known = LRU(min(KNOWN_GROUPS, cache_size))
        self._warm = LRU(min(KNOWN_GROUPS, cache_size))  # warm-started solves (pure)
        # a persistent memo shared with other processes (oracle/store.py), or None
        self.store = store
        self.hits = 0
        self.misses = 0
        self.store_hits = 0
        self.solve_time_s = 0.0
        self.monotone_repairs = 0  # solves a known subset's beams improved (module docstring)
        # a time.monotonic() instant set by the runner during a time-limited solve (and by the
        # bound for its own oracle): past it the optimising methods return closed-form MRT
        # beams, and a solve running then stops its SCA; such answers are not memoised
        self.deadline: float | None = None

    def clear(self) -> None:
        self._cache.clear()
        self._answers.clear()
        self._known.clear()
        self._warm.clear()

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
              warm: BeamResult | None = None, start: BeamResult | None = None,
              **options) -> BeamResult:
        """Beams and exact worst-case rates for PB k from ``nodes`` to ``users``.

        ``warm``: the result of the same users on a subset of ``nodes`` (the planner's cluster
        before it grows): with method ``fast`` its beams, padded with zeros, start the SCA
        next to one deterministic start instead of three (docs/model.md section 12). The result
        is never below the warm start's min-rate; it is memoised under the warm beams' digest
        (the same inputs, the same result). Ignored when it does not fit or is at rate 0.

        ``start``: the result of a related group of the same PB (other users, e.g. the group a
        partition search move came from; method ``fast``): its beams on the nodes both share,
        zero elsewhere, start the SCA next to one deterministic start instead of three; memoised
        under its digest like ``warm``. Ignored with ``warm``, or when it has no node here or
        is at rate 0."""
        method = method or self.method
        check_options(method, options)
        # the constructor's options belong to its default method; another method asked for by
        # a unit runs with its own defaults plus whatever this call passes
        opts = {**(self.options if method == self.method else {}), **options}
        nodes = tuple(int(n) for n in nodes)
        users = tuple(int(u) for u in users)
        # a warm start at rate 0 would keep SCA where it is stuck: the cold starts are better
        if warm is not None and not (method == "fast" and len(users) > 1 and
                                     warm.users == users and set(warm.nodes) < set(nodes)
                                     and warm.beams.shape[1:] == (inst.antennas,)
                                     and warm.min_rate_bps > 0):
            warm = None
        if start is not None and not (warm is None and method == "fast" and len(users) > 1
                                      and start.block == int(k) and start.min_rate_bps > 0
                                      and start.beams.shape[1:] == (inst.antennas,)
                                      and set(start.nodes) & set(nodes)):
            start = None
        key = (inst.fingerprint, int(k), nodes, users, method, tuple(sorted(opts.items())))
        if warm is not None:
            key += (_digest(warm),)
        elif start is not None:
            key += ("start", _digest(start))
        answer = self._answers.get(key)  # what this run got before: the same answer again
        if answer is not None:
            self.hits += 1
            return answer
        t0 = time.perf_counter()
        plain = self._cache.get(key)  # the plain solve, shared by every run of this oracle
        skey = None
        if plain is None and self.store is not None and nodes and users:
            from .store import beam_fingerprint, store_key

            skey = store_key(beam_fingerprint(inst), k, nodes, users, method,
                             {**opts, "warm": key[6]} if warm is not None else opts)
            got = self.store.get(skey, len(nodes), inst.antennas)
            plain = _from_store(inst, int(k), nodes, users, method, *got) if got else None
            if plain is not None:
                self.store_hits += 1
                self._cache.put(key, plain)
        if plain is not None:
            self.hits += 1
        else:
            self.misses += 1
            plain, memo = self._plain(inst, int(k), nodes, users, method, opts, warm, start)
            if not memo:  # cut by the deadline: valid beams, neither memoised nor compared
                plain.time_s = time.perf_counter() - t0
                self.solve_time_s += plain.time_s
                return plain
            plain.time_s = time.perf_counter() - t0
            self._cache.put(key, plain)
            if skey is not None:
                self.store.put(skey, plain.beams, {
                    "status": plain.status.value, "qos_feasible": bool(plain.qos_feasible),
                    "qos_infeasible_users": list(plain.qos_infeasible_users),
                    "iterations": int(plain.iterations), "fallback_used": plain.fallback_used,
                    "message": plain.message})
        result = plain
        if method in MONOTONE_METHODS:
            group = (inst.fingerprint, int(k), users, method, key[-1])
            result = self._monotone(inst, int(k), nodes, users, method, opts, plain, group, key)
        self.solve_time_s += time.perf_counter() - t0
        self._answers.put(key, result)
        return result

    def begin_run(self) -> None:
        """Start a run (the runner calls it): forget the answers and known subsets of earlier
        runs, so that a run's answers depend only on its own questions, not on what other
        solvers sharing this oracle (a sweep's grid point) asked before. The plain solves stay
        memoised."""
        self._answers.clear()
        self._known.clear()

    def _plain(self, inst, k, nodes, users, method, opts, warm=None, start=None
               ) -> tuple[BeamResult, bool]:
        """A solve of this subproblem alone, and whether it may be memoised (not when the
        deadline cut it: then closed-form MRT past it, or the SCA stopped at it)."""
        if self.deadline is not None and method in MONOTONE_METHODS:
            left = self.deadline - time.monotonic()
            if left <= 0 and len(users) > 1:  # out of time: closed form
                result = self._solve(inst, k, nodes, users, "mrt", {})
                result.message = "time limit passed: closed-form MRT beams"
                return result, False
            if method in ("fast", "nonrobust") and "time_limit" not in opts:
                result = self._solve(inst, k, nodes, users, method, {**opts, "time_limit": left},
                                     warm=warm, start=start)
                cut = result.status == OracleStatus.ITERATION_LIMIT and "time" in result.message
                return result, not cut
        return self._solve(inst, k, nodes, users, method, opts, warm=warm, start=start), True

    def _monotone(self, inst, k, nodes, users, method, opts, plain, group, key) -> BeamResult:
        """The better of the plain solve and what the best subset of ``nodes`` this run knows
        gives (module docstring); remembers the answer for later supersets. The warm-started
        solve is a function of the subproblem and the subset's beams, so it is memoised too."""
        known = self._known.get(group)
        if known is None:
            known = {}
            self._known.put(group, known)
        here = set(nodes)
        best = None
        for sub, res in known.items():
            if len(sub) < len(nodes) and here.issuperset(sub) and (
                    best is None or _rank(res) > _rank(best)):
                best = res
        result = plain
        if best is not None and _rank(best) > _rank(plain):
            candidates = [plain, self._padded(inst, k, nodes, users, method, best)]
            if method in ("fast", "nonrobust"):
                wkey = (key, best.nodes, best.beams.tobytes())
                warm = self._warm.get(wkey)
                if warm is None:
                    warm = self._solve(inst, k, nodes, users, method, opts,
                                       init=_normalised_on(inst, nodes, best))
                    self._warm.put(wkey, warm)
                candidates.append(warm)
            result = max(candidates, key=_rank)  # ties: the first (the plain solve)
            self.monotone_repairs += int(result is not plain)
        known[nodes] = result
        return result

    @staticmethod
    def _padded(inst, k, nodes, users, method, like: BeamResult) -> BeamResult:
        """The subset result ``like`` reported for the superset ``nodes``: its beams padded
        with zero beams, hence exactly its worst-case rates (a silent node adds no signal and
        no error margin; the evaluator recomputes them from the beams)."""
        beams = np.zeros((len(nodes), inst.antennas), dtype=complex)
        beams[[nodes.index(n) for n in like.nodes]] = like.beams
        return BeamResult(
            block=k, nodes=nodes, users=users, method=method, beams=beams,
            rates_bps=like.rates_bps.copy(), status=like.status,
            qos_feasible=like.qos_feasible, qos_infeasible_users=like.qos_infeasible_users,
            zero_rate_users=like.zero_rate_users, power_w=np.sum(np.abs(beams) ** 2, axis=1),
            iterations=0, fallback_used=like.fallback_used,
            message=f"beams of the subset {like.nodes} padded with zeros (better than the "
                    "solve from these nodes)")

    def solve_many(self, inst: Instance, requests, method: str | None = None,
                   **options) -> list[BeamResult]:
        """Beams for several independent subproblems ``(k, nodes, users)``: the same results as
        :meth:`solve` one by one. When the first-order method is active (``first_order`` 'on',
        or 'auto' with a GPU; oracle/batch.py) the large groups among the misses are first
        solved together, one kernel run per shape, for many PBs at once."""
        method = method or self.method
        opts = {**(self.options if method == self.method else {}), **options}
        from .fast import _first_order_active

        mode = opts.get("first_order", "auto")
        if method == "fast" and _first_order_active(mode):
            from .batch import precompute

            size = int(opts.get("first_order_users", 16))
            probs = []
            for k, nodes, users in requests:
                key = (inst.fingerprint, int(k), tuple(int(n) for n in nodes),
                       tuple(int(u) for u in users), method, tuple(sorted(opts.items())))
                if len(users) < size or len(nodes) == 0 or key in self._cache:
                    continue
                pr = normalised_problem(inst, k, nodes, users)
                reach = (np.linalg.norm(pr.g, axis=2) > pr.rho * (1 + 1e-12)).any(axis=1)
                if reach.any() and not reach.all():  # as _solve does: silenced nodes dropped
                    pr = BeamProblem(pr.g[reach], pr.rho[reach], pr.snr_required)
                if not pr.dead_users().size:
                    probs.append(pr.reduce()[0])
            if probs:
                precompute(probs, device="auto" if mode == "auto" else None)
        return [self.solve(inst, k, nodes, users, method, **options)
                for k, nodes, users in requests]

    # ------------------------------------------------------------------------------------
    def _solve(self, inst, k, nodes, users, method, opts, init=None, warm=None,
               start=None) -> BeamResult:
        """One solve; ``init`` (p, M) normalised beams: an extra starting point (fast and
        nonrobust only); ``warm``: a subset's result (:meth:`solve`), padded with zeros, as the
        start racing one deterministic start."""
        m = inst.antennas
        if not nodes or not users:
            return BeamResult(k, nodes, users, method, np.zeros((len(nodes), m), complex),
                              np.zeros(len(users)), OracleStatus.ZERO_RATE, not users,
                              zero_rate_users=users, message="no participating node"
                              if not nodes else "no user")
        problem = normalised_problem(inst, k, nodes, users)
        if method == "fast" and len(users) > 1 and len(nodes) > 1:
            reach = (np.linalg.norm(problem.g, axis=2) > problem.rho * (1 + 1e-12)).any(axis=1)
            if reach.any() and not reach.all():
                # nodes out of reach of every served user can only lower their worst-case
                # amplitudes (fgamcd_opt/locality.py): silenced, the rest solved on its own
                kept = tuple(n for n, r in zip(nodes, reach, strict=True) if r)
                if warm is not None and not set(warm.nodes) < set(kept):
                    warm = None
                sub_init = None if init is None else init[reach]
                return _silence(self._solve(inst, k, kept, users, method, opts, init=sub_init,
                                            warm=warm, start=start), nodes, reach, problem,
                                inst)
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
            related = warm if warm is not None else start
            if related is not None and init is None:
                # a subset's beams (warm) or a related group's (start), zero on the other nodes
                init = _normalised_on(inst, nodes, related)
                if np.any(init):
                    opts = {**opts, "race_starts": 1}
                else:
                    init = None
            init_red = None if init is None else np.stack(
                [q.conj().T @ x for q, x in zip(bases, init, strict=True)])
            out = _run_method(method, reduced, None, None, init_red, opts, budget)
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


def _rank(res: BeamResult) -> tuple[bool, float]:
    """How results of one subproblem compare: QoS met first, then the exact min rate."""
    return (bool(res.qos_feasible), float(res.min_rate_bps))


def _from_store(inst: Instance, k: int, nodes: tuple, users: tuple, method: str,
                beams: np.ndarray, meta: dict) -> BeamResult | None:
    """A stored result checked and re-scored with this instance (oracle/store.py): None when
    the beams break a power budget; rates, zero-rate users and the QoS verdict recomputed from
    the beams (a stored verdict can only add users below QoS, never hide one)."""
    power = inst.nodes.power_max_w[list(nodes)]
    x = beams / np.sqrt(power)[:, None]
    if np.any(np.linalg.norm(x, axis=1) > 1.0 + 1e-9):
        return None
    try:
        status = OracleStatus(meta.get("status"))
        told = {int(u) for u in meta.get("qos_infeasible_users", ())} & set(users)
        iterations = int(meta.get("iterations", 0))
    except (ValueError, TypeError):
        return None
    problem = normalised_problem(inst, k, nodes, users)
    amp = problem.amplitude(x)
    rates = rate_from_amplitude(amp, 1.0, inst.bandwidth_hz)
    below = rates < inst.users.qos_bps[list(users)] * (1 - 1e-9)
    users_arr = np.asarray(users)
    bad = sorted(told | {int(u) for u in users_arr[below]})
    return BeamResult(
        block=k, nodes=nodes, users=users, method=method, beams=beams, rates_bps=rates,
        status=status, qos_feasible=bool(meta.get("qos_feasible")) and not below.any(),
        qos_infeasible_users=tuple(bad),
        zero_rate_users=tuple(int(u) for u in users_arr[amp <= 0]),
        power_w=np.sum(np.abs(beams) ** 2, axis=1), iterations=iterations,
        fallback_used=bool(meta.get("fallback_used")), message=str(meta.get("message", "")))


def _digest(result: BeamResult) -> str:
    """A digest of a result's nodes and beams (the identity of a warm start)."""
    import hashlib

    h = hashlib.sha256(repr(result.nodes).encode())
    h.update(np.ascontiguousarray(result.beams, dtype=complex).tobytes())
    return h.hexdigest()[:24]


def _normalised_on(inst: Instance, nodes: tuple, res: BeamResult) -> np.ndarray:
    """``res``'s beams in normalised units (||x_n|| <= 1) on ``nodes``: its rows for the nodes
    it shares with them, zero for the others."""
    x = np.zeros((len(nodes), inst.antennas), dtype=complex)
    rows = {n: i for i, n in enumerate(res.nodes)}
    for i, n in enumerate(nodes):
        if n in rows:
            x[i] = res.beams[rows[n]] / np.sqrt(inst.nodes.power_max_w[n])
    return x


def _silence(sub: BeamResult, nodes: tuple, reach: np.ndarray, problem: BeamProblem,
             inst: Instance) -> BeamResult:
    """``sub`` (solved on the nodes where ``reach``) as a result for all ``nodes``: zero beams
    on the others, rates recomputed on the full problem (the same: a zero beam adds nothing)."""
    beams = np.zeros((len(nodes), inst.antennas), dtype=complex)
    beams[reach] = sub.beams
    x = beams / np.sqrt(inst.nodes.power_max_w[list(nodes)])[:, None]
    rates = rate_from_amplitude(problem.amplitude(x), 1.0, inst.bandwidth_hz)
    return replace(sub, nodes=nodes, beams=beams, rates_bps=rates,
                   power_w=np.sum(np.abs(beams) ** 2, axis=1))


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
