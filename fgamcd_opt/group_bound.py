r"""Certified lower bounds on the delay of one PB over every partition of its requesters
(docs/milp.md section 3.5; docs/model.md sections 3-4).

Two ingredients.

1. **Group bound** ``amplitude_bound(problem)``: an upper bound on the best robust max-min
   amplitude max_x min_u a_u(x) of a multicast group G from a node set S (normalised units of
   ``oracle/problem.py``: ||x_n|| <= 1, a_u(x) = |g_u^H x| - rho_u^T t(x), t_n(x) = ||x_n||).
   It is the smaller of the per-user (Cauchy-Schwarz) bound and a lifted semidefinite
   relaxation of the exact margin. For a trial amplitude s let

       F(s) = max_{W, t, T} min_u  g_u^H W g_u - 2 s rho_u^T t - rho_u^T T rho_u
       s.t.  W >= 0 (Hermitian, pd x pd), T_nn = tr W_nn <= 1, ||W_nm||_F <= T_nm <= 1 (n != m),
             T >= 0, T_nm <= t_n <= 1, [[T, t], [t^T, 1]] >= 0.

   Every beam x gives a feasible point (W = x x^H, t = t(x), T = t t^T: each constraint holds
   with equality or because ||x_n|| <= 1), and if a_u(x) >= s for every u then the objective
   there is >= (s + rho^T t)^2 - 2 s rho^T t - (rho^T t)^2 = s^2. Hence if s is achievable,
   F(s) >= s^2. F is non-increasing in s (t >= 0), so with r = sup{s : F(s) >= s^2} >= the
   optimum s*: (i) F(s) < s^2 proves s* < s; (ii) F(s) >= s^2 gives r >= s and
   r^2 <= F(r) <= F(s), so s* <= sqrt(F(s)). Each evaluation therefore yields an upper bound;
   a few evaluations (secant steps) tighten it. The reduction to each node's channel span
   (``BeamProblem.reduce``) is exact (the optimum lies in that span), so the SDP works in
   p |G| instead of p M complex dimensions. Numerical safety: F is taken from the solver's
   objective times (1 + ``SAFETY_RTOL``) plus an absolute slack, and an evaluation whose solver
   status is not optimal contributes nothing (the per-user bound remains).

2. **Partition bound** ``PartitionBound.delay_lb(nodes)``: any plan delivers PB k in
   transmissions (a unit, or the units of a slot, whose users all hear the union of its nodes:
   evaluator), each from a node set inside Lam(k) to a user set; the transmissions' user sets
   cover the requesters V. A transmission to G lasts 8 S / min_{u in G} R_u >= D(G) :=
   8 S / (B log2(1 + ub(G, Lam)^2)), and D is non-decreasing in G. So the PB's broadcast time
   is >= min over covers of V of sum D(G_i) = min over *partitions* of V (shrinking groups of a
   cover to a partition never raises D). This minimum is computed exactly by a DP over subsets
   with lazily refined group bounds: start from the per-user bound of every group (cheap, valid),
   solve the DP, refine (SDP) the groups of the optimal partition, repeat until the optimal
   partition's groups are all refined. Every intermediate value is itself a valid bound, so a
   time budget only weakens the bound, never invalidates it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .instance import Instance
from .oracle.core import normalised_problem
from .oracle.methods import amplitude_upper_bound
from .oracle.problem import BeamProblem
from .phase_bound import phase_bound
from .rates import rate_from_amplitude, transfer_delay_s

SCS_EPS = 1e-5  # SCS's primal/dual residual and gap tolerances
# slack added to SCS's objective before it is used as an upper bound on F(s): the problem is
# scaled so that F is O(0.01-1), and measured SCS objectives agree with Clarabel's to ~1e-6
SAFETY_RTOL = 1e-3
SAFETY_ATOL = 1e-4
MAX_EXACT_USERS = 10  # partition DP over subsets up to this many requesters
SECANT_STEPS = 3
START_FRACTION = 0.35  # first trial amplitude, as a share of the per-user bound
# phase branch and bound (phase_bound.py): box budget by group size (0: SDP only) and its
# stopping tolerance in rate (delay) terms; the SDP also runs when the search stops unconverged
PHASE_MAX_BOXES = {2: 2000, 3: 3000, 4: 4000, 5: 6000}
PHASE_RTOL = 0.005
GRACE_S = 1.0  # refine_concurrently: a worker still busy this long after the deadline is killed
# groups of 6+ users: also the phase bound of one hard subgroup of this many users (a group
# does no better than any of its subgroups), chosen greedily by SCA beams; its box budget
SUBGROUP_SIZE = 4
SUBGROUP_BOXES = 4000


# ---------------------------------------------------------------------------------------------
# 1. the SDP group bound
# ---------------------------------------------------------------------------------------------
class _LiftedSdp:
    """The parametrised SDP F(s) of the module docstring for one reduced problem (cvxpy DPP:
    compiled once, re-solved per s)."""

    def __init__(self, problem: BeamProblem):
        import cvxpy as cp

        p, v, d = problem.g.shape
        self.p, self.v, self.d = p, v, d
        dim = p * d
        self.W = W = cp.Variable((dim, dim), hermitian=True)
        self.t = t = cp.Variable(p)
        self.T = T = cp.Variable((p, p), symmetric=True)
        self.z = z = cp.Variable()
        self.s = cp.Parameter(nonneg=True)
        cons = [W >> 0, T >= 0, t <= 1]
        blk = [slice(n * d, (n + 1) * d) for n in range(p)]
        for n in range(p):
            cons.append(T[n, n] == cp.real(cp.trace(W[blk[n], blk[n]])))
            cons.append(T[n, n] <= 1)
            for m in range(p):
                cons.append(t[n] >= T[n, m])
                if m > n:
                    cons.append(cp.norm(W[blk[n], blk[m]], "fro") <= T[n, m])
        cons.append(cp.bmat([[T, cp.reshape(t, (p, 1), order="F")],
                             [cp.reshape(t, (1, p), order="F"), np.ones((1, 1))]]) >> 0)
        gs = problem.g.transpose(1, 0, 2).reshape(v, dim)  # stacked g_u (v, pd)
        rho = problem.rho.T  # (v, p)
        for u in range(v):
            gu = gs[u][:, None]
            quad = cp.real(cp.sum(cp.multiply(np.conj(gu) @ gu.T, W)))  # g^H W g
            cons.append(z <= quad - 2 * self.s * (rho[u] @ t) - rho[u] @ T @ rho[u])
        self.prob = cp.Problem(cp.Maximize(z), cons)

    def F(self, s: float, time_limit_s: float | None = None) -> float | None:
        """Upper estimate of the optimal objective at s, or None when SCS does not report an
        optimum (then the caller keeps the bounds it has; also when SCS stops at
        ``time_limit_s``)."""
        import cvxpy as cp

        self.s.value = float(s)
        extra = {} if time_limit_s is None else {"time_limit_secs": max(float(time_limit_s),
                                                                        1e-3)}
        try:
            self.prob.solve(solver=cp.SCS, eps_abs=SCS_EPS, eps_rel=SCS_EPS, max_iters=20000,
                            **extra)
        except Exception:  # a solver failure only means no refinement
            return None
        if self.prob.status != cp.OPTIMAL or self.prob.value is None:
            return None
        val = float(self.prob.value)
        return val + SAFETY_RTOL * abs(val) + SAFETY_ATOL


def _subgroup_bound(problem: BeamProblem, size: int, max_boxes: int,
                    deadline: float | None = None) -> tuple[float, dict]:
    """The phase bound of one subgroup of ``size`` users: an upper bound on the group's best
    max-min amplitude, since a beam serving the group serves the subgroup at least as well
    (docs/milp.md section 3.5, subgroups). The subgroup is built greedily: the user with the
    lowest per-user bound, then repeatedly the user whose addition gives the lowest max-min
    amplitude of the SCA's beams (``oracle/fast.py``; a converged phase bound is within its
    tolerance of the subgroup's optimum, so the weakest subgroup found by SCA is the one whose
    bound is lowest). Returns (bound, info: users, SCA amplitude, boxes, converged)."""
    from .oracle.fast import solve_fast

    def sub(idx) -> BeamProblem:
        return BeamProblem(problem.g[:, idx], problem.rho[:, idx],
                           problem.snr_required[idx]).reduce()[0]

    chosen = [int(np.argmin(amplitude_upper_bound(problem)))]
    amp = np.inf
    while len(chosen) < size:
        best = None
        for u in range(problem.n_users):
            if u in chosen:
                continue
            pr = sub([*chosen, u])
            x = solve_fast(pr).x
            a = float(pr.amplitude(x).min()) if x is not None else np.inf
            if best is None or a < best[0]:
                best = (a, u)
        amp = best[0]
        chosen.append(best[1])
    res = phase_bound(sub(chosen), achieved=max(amp, 0.0) if np.isfinite(amp) else 0.0,
                      rtol=PHASE_RTOL, max_boxes=max_boxes, time_budget_s=_left(deadline))
    return res.bound, {"users": sorted(chosen), "sca_amplitude": amp, "boxes": res.boxes,
                       "converged": res.converged}


def amplitude_bound(problem: BeamProblem, achieved: float = 0.0, rtol: float = 0.02,
                    steps: int = SECANT_STEPS, phase_boxes: int | None = None,
                    deadline: float | None = None, subgroup: bool = True
                    ) -> tuple[float, dict]:
    """Upper bound on max_x min_u a_u(x) (normalised amplitude) for ``problem`` (any shape):
    the least of the per-user bound, the phase branch and bound (``phase_boxes`` SOCPs at
    most; default by group size, PHASE_MAX_BOXES), for groups too large for it the phase
    bound of a hard subgroup of SUBGROUP_SIZE users (``subgroup``), and, unless the branch and
    bound converged, the lifted SDP.

    ``achieved``: an amplitude some beam reaches (only speeds up the search). Returns
    (bound, info) with info = {"per_user": ..., "sdp_evaluations": ..., "phase_boxes": ...,
    "source": ..., "achieved": the best amplitude a beam is known to reach, "cut": whether
    ``deadline`` (``time.monotonic()`` seconds) stopped the search}. Past the deadline the
    bound found so far is returned (valid, only weaker).
    """
    per_user = float(amplitude_upper_bound(problem).min()) if problem.n_users else np.inf
    info = {"per_user": per_user, "sdp_evaluations": 0, "phase_boxes": 0, "source": "per-user",
            "achieved": float(achieved), "cut": False}
    if problem.n_users <= 1 or per_user <= 0:
        return per_user, info  # a single user: robust MRT attains the per-user bound
    # A node weaker than its error radius to every user of the group never raises anyone's
    # worst-case amplitude (|g^H x_n| - rho ||x_n|| <= 0 for each u, triangle inequality), so
    # the optimum silences it: dropping it is exact and shrinks the SDP.
    live = np.flatnonzero((np.linalg.norm(problem.g, axis=2) > problem.rho).any(axis=1))
    problem = BeamProblem(problem.g[live], problem.rho[live], problem.snr_required)
    reduced, _ = problem.reduce()
    bound = per_user
    boxes = PHASE_MAX_BOXES.get(problem.n_users, 0) if phase_boxes is None else phase_boxes
    if boxes > 0:
        res = phase_bound(reduced, achieved=achieved, rtol=PHASE_RTOL, max_boxes=boxes,
                          time_budget_s=_left(deadline))
        info["phase_boxes"] = res.boxes
        info["phase_converged"] = res.converged
        achieved = max(float(achieved), res.incumbent)
        info["achieved"] = achieved
        if res.bound < bound:
            bound, info["source"] = res.bound, "phase"
        if res.converged:
            return bound, info
    if _left(deadline) <= 0:
        info["cut"] = True  # the search stopped at the deadline: no subgroup or SDP either
        return bound, info
    if boxes == 0 and subgroup and problem.n_users > SUBGROUP_SIZE:
        sub, info["subgroup"] = _subgroup_bound(reduced, SUBGROUP_SIZE, SUBGROUP_BOXES,
                                                deadline)
        if sub < bound:
            bound, info["source"] = sub, "subgroup"
        info["phase_boxes"] += info["subgroup"]["boxes"]
    if steps <= 0 or _left(deadline) <= 0:
        info["cut"] = info["cut"] or _left(deadline) <= 0
        return bound, info
    # F is homogeneous of degree 2 in (g, rho, s): solve at O(1) scale (conditioning)
    sc = per_user
    sdp = _LiftedSdp(BeamProblem(reduced.g / sc, reduced.rho / sc, reduced.snr_required))
    best = min(1.0, bound / sc)
    lo = max(0.0, min(float(achieved) / sc, 1.0))
    s = lo if lo > 0 else START_FRACTION
    for _ in range(steps):
        if _left(deadline) <= 0:
            info["cut"] = True
            break
        val = sdp.F(s, None if deadline is None else _left(deadline))
        info["sdp_evaluations"] += 1
        if val is None:
            info["cut"] = info["cut"] or _left(deadline) <= 0
            break
        if val < s * s:  # s is not achievable (case i)
            best = min(best, s)
            s = 0.5 * (lo + s) if lo > 0 else 0.5 * s
        else:  # case ii
            lo = s
            best = min(best, float(np.sqrt(max(val, 0.0))))
            s = lo + 0.9 * (best - lo)
        if best - lo <= rtol * best:
            break
    best *= sc
    # relabel only on a real improvement: the search starts from ``bound`` rescaled, and the
    # round trip bound / sc * sc can come back lower by an ulp without the SDP doing anything
    if best < bound * (1 - 1e-12):
        bound, info["source"] = best, "sdp"
    return bound, info


def _left(deadline: float | None) -> float:
    """Seconds to ``deadline`` (``time.monotonic()`` clock: one clock for every process of the
    machine, so a worker can be handed its parent's deadline); inf without one."""
    return np.inf if deadline is None else deadline - time.monotonic()


# ---------------------------------------------------------------------------------------------
# 2. the partition bound of one PB
# ---------------------------------------------------------------------------------------------
def best_partition(n: int, cost) -> tuple[float, list[int]]:
    """min over the partitions of {0..n-1} of sum cost(group bit mask), by a DP over subsets in
    which each partition is enumerated once (the group holding the lowest remaining element is
    chosen first); O(3^n). Returns (value, group masks)."""
    full = (1 << n) - 1
    best = [0.0] + [np.inf] * full
    choice = [0] * (full + 1)
    for mask in range(1, full + 1):
        low = mask & -mask
        rest = mask ^ low
        sub = rest
        while True:
            g = sub | low
            val = cost(g) + best[mask ^ g]
            if val < best[mask]:
                best[mask], choice[mask] = val, g
            if sub == 0:
                break
            sub = (sub - 1) & rest
    groups, m = [], full
    while m and choice[m]:
        groups.append(choice[m])
        m ^= choice[m]
    return best[full], groups


@dataclass
class GroupBoundStats:
    sdp_groups: int = 0
    sdp_evaluations: int = 0
    phase_boxes: int = 0
    time_s: float = 0.0
    groups_cut: int = 0  # group bounds stopped by a deadline (valid, weaker)


class PartitionBound:
    """Lower bounds on the broadcast time of PB k (seconds) over every partition of its
    (reachable) requesters ``users``, for any node set. Memoised per (node set, group)."""

    def __init__(self, inst: Instance, k: int, users, stats: GroupBoundStats | None = None):
        self.inst = inst
        self.k = int(k)
        self.users = tuple(int(u) for u in users)
        self.size_bytes = float(inst.repository.sizes[k])
        self._amp: dict[tuple[tuple[int, ...], int], float] = {}  # (nodes, group mask) -> amp
        self._refined: set[tuple[tuple[int, ...], int]] = set()
        self._problem: dict[tuple[int, ...], BeamProblem] = {}
        self._achieved: dict[tuple[int, ...], np.ndarray] = {}  # nodes -> per-user amplitude
        self.stats = stats or GroupBoundStats()

    def seed_achieved(self, nodes, rates_bps) -> None:
        """Record worst-case rates some beam from ``nodes`` gives every user (self.users order);
        they only speed up the SDP search (a starting amplitude), never enter the bound."""
        nodes = tuple(sorted(int(n) for n in nodes))
        r = np.asarray(rates_bps, dtype=float) / self.inst.bandwidth_hz
        self._achieved[nodes] = np.sqrt(np.maximum(np.expm1(r * np.log(2.0)), 0.0))

    def _full_problem(self, nodes: tuple[int, ...]) -> BeamProblem:
        pr = self._problem.get(nodes)
        if pr is None:
            pr = normalised_problem(self.inst, self.k, nodes, self.users)
            self._problem[nodes] = pr
        return pr

    def _members(self, mask: int) -> list[int]:
        return [i for i in range(len(self.users)) if mask >> i & 1]

    def _sub(self, nodes, mask: int) -> BeamProblem:
        pr = self._full_problem(nodes)
        idx = self._members(mask)
        return BeamProblem(pr.g[:, idx], pr.rho[:, idx], pr.snr_required[idx])

    def _per_user_amp(self, nodes, mask: int) -> float:
        key = (nodes, mask)
        if key not in self._amp:
            self._amp[key] = float(amplitude_upper_bound(self._sub(nodes, mask)).min())
        return self._amp[key]

    def _refine(self, nodes, mask: int, deadline: float | None = None) -> None:
        key = (nodes, mask)
        if key in self._refined:
            return
        if bin(mask).count("1") < 2:
            self._refined.add(key)
            return
        t0 = time.perf_counter()
        amp, info = amplitude_bound(*self._task(nodes, mask), deadline=deadline)
        self._store(nodes, mask, amp, info, time.perf_counter() - t0)

    def _task(self, nodes, mask: int) -> tuple[BeamProblem, float]:
        """The arguments of ``amplitude_bound`` for one group (everything its value depends
        on, so a worker process computes the same value as this one)."""
        ach = self._achieved.get(nodes)
        start = float(ach[self._members(mask)].min()) if ach is not None else 0.0
        return self._sub(nodes, mask), start

    def _store(self, nodes, mask: int, amp: float, info: dict, secs: float) -> None:
        key = (nodes, mask)
        if not info.get("cut", False):  # a bound cut by a deadline is kept (valid) but is
            self._refined.add(key)      # computed again when a later call has the time
        self.stats.sdp_groups += 1
        self.stats.sdp_evaluations += info["sdp_evaluations"]
        self.stats.phase_boxes += info["phase_boxes"]
        self.stats.groups_cut += int(info.get("cut", False))
        self.stats.time_s += secs
        self._amp[key] = min(self._amp.get(key, np.inf), amp)

    def has_refined(self, nodes) -> bool:
        """Whether some group bound for ``nodes`` is memoised (else :meth:`delay_lb` without
        time could only repeat the per-user bound)."""
        nodes = tuple(sorted(int(n) for n in nodes))
        return any(key[0] == nodes for key in self._amp if key in self._refined)

    def group_delay_lb(self, nodes, group_mask: int) -> float:
        """Lower bound (s) on one transmission of k to the users of ``group_mask`` (bit i =
        self.users[i]) from any subset of ``nodes``."""
        nodes = tuple(sorted(int(n) for n in nodes))
        amp = self._amp.get((nodes, group_mask))
        if amp is None:
            amp = self._per_user_amp(nodes, group_mask)
        rate = float(rate_from_amplitude(amp, 1.0, self.inst.bandwidth_hz))
        return transfer_delay_s(self.size_bytes, rate)

    def _dp(self, nodes) -> tuple[float, list[int]]:
        """min over partitions of the sum of the current group bounds: (value, groups)."""
        return best_partition(len(self.users), lambda m: self.group_delay_lb(nodes, m))

    def delay_lb(self, nodes, time_budget_s: float = np.inf) -> tuple[float, dict]:
        """Lower bound (s) on the broadcast time of PB k over every partition of its requesters
        when the PB's transmitting nodes lie in ``nodes``. Returns (bound, info). The group
        bounds stop at ``time_budget_s`` too (a cut one is valid, only weaker)."""
        nodes = tuple(sorted(int(n) for n in nodes))
        n = len(self.users)
        if n == 0:
            return 0.0, {"groups": []}
        if n > MAX_EXACT_USERS:
            # too many partitions: the per-user bound of the whole group (its worst user) is
            # still valid (every partition has a group containing that user)
            full = (1 << n) - 1
            return self.group_delay_lb(nodes, full), {"groups": [full], "exact": False}
        t0 = time.perf_counter()
        deadline = time.monotonic() + time_budget_s if np.isfinite(time_budget_s) else None
        while True:
            val, groups = self._dp(nodes)
            todo = [g for g in groups if (nodes, g) not in self._refined]
            if not todo or not np.isfinite(val) or time.perf_counter() - t0 > time_budget_s:
                break
            for g in todo:
                self._refine(nodes, g, deadline)
        return val, {"groups": groups, "exact": not todo}


def _amplitude_task(problem: BeamProblem, achieved: float,
                    deadline: float | None = None) -> tuple[float, dict, float]:
    """Worker-process side of :func:`refine_concurrently`: (bound, info, seconds)."""
    t0 = time.perf_counter()
    amp, info = amplitude_bound(problem, achieved=achieved, deadline=deadline)
    return amp, info, time.perf_counter() - t0


def refine_concurrently(jobs, workers: int = 2, time_budget_s: float = np.inf) -> int:
    """Run the lazy refinement of :meth:`PartitionBound.delay_lb` for several (PartitionBound,
    node set) ``jobs`` at once, the group bounds in ``workers`` processes (fork: a task carries
    its sub-problem and starting amplitude, a result is a float and a small dict).

    Each job follows exactly the sequential rounds (DP over the current costs, refine the
    optimal partition's unrefined groups, repeat); a group bound depends only on its
    sub-problem and start, so the memo ends up with the same values as the sequential code,
    which the caller then runs and finds memoised. No new group is submitted after
    ``time_budget_s``; the running tasks get the same deadline (they return their bound so far),
    and workers still busy ``GRACE_S`` after it are killed; a job left unfinished only means
    fewer refined (valid) costs, i.e. a weaker bound. Returns the number of groups refined here.
    The pool's processes die with this process (fgamcd_opt/workers.py) and are gone before
    this returns."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from .workers import process_pool, terminate_pool

    t0 = time.perf_counter()
    deadline = time.monotonic() + time_budget_s if np.isfinite(time_budget_s) else None
    seen, state = set(), []
    for pb, nodes in jobs:
        nodes = tuple(sorted(int(n) for n in nodes))
        if (id(pb), nodes) in seen or not 0 < len(pb.users) <= MAX_EXACT_USERS:
            continue
        seen.add((id(pb), nodes))
        state.append((pb, nodes))
    if not state:
        return 0
    done = 0
    pending: dict = {}  # future -> (job index, group mask)
    waiting = [0] * len(state)  # a job's groups in flight: its next DP round waits for them

    def advance(j: int, pool) -> None:
        pb, nodes = state[j]
        while True:
            val, groups = pb._dp(nodes)
            todo = [g for g in groups if (nodes, g) not in pb._refined]
            if not todo or not np.isfinite(val) or time.perf_counter() - t0 > time_budget_s:
                return
            big = []
            for g in todo:
                if bin(g).count("1") < 2:
                    pb._refine(nodes, g)  # a single user: nothing to compute
                else:
                    big.append(g)
            if big:
                for g in big:
                    pending[pool.submit(_amplitude_task, *pb._task(nodes, g), deadline)] = (j, g)
                waiting[j] = len(big)
                return

    pool = process_pool(workers, "fork")
    try:
        for j in range(len(state)):
            advance(j, pool)
        while pending:
            # a task returns at the deadline by itself (amplitude_bound checks the clock); one
            # stuck in a single long solve is abandoned GRACE_S later and its worker killed
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED,
                               timeout=None if deadline is None else max(
                                   0.0, deadline + GRACE_S - time.monotonic()))
            if not finished:
                break
            for fut in finished:
                j, g = pending.pop(fut)
                try:
                    amp, info, secs = fut.result()
                except Exception:  # a lost worker: the caller's sequential pass computes it
                    waiting[j] = -1  # the job stops here (its group stays unrefined)
                    continue
                if waiting[j] < 0:
                    continue
                pb, nodes = state[j]
                pb._store(nodes, g, amp, info, secs)
                done += 1
                waiting[j] -= 1
                if waiting[j] == 0:
                    advance(j, pool)
    finally:
        if pending:  # abandoned groups stay unrefined: their costs are still valid
            for j, _ in pending.values():
                state[j][0].stats.groups_cut += 1
            terminate_pool(pool)
        else:
            pool.shutdown(wait=True)
    return done


_MEMO: OrderedDict = OrderedDict()
_MEMO_SIZE = 4096


def partition_bound(inst: Instance, k: int, users, stats: GroupBoundStats | None = None
                    ) -> PartitionBound:
    """The memoised :class:`PartitionBound` of (instance, PB, users) in this process."""
    key = (inst.fingerprint, int(k), tuple(int(u) for u in users))
    pb = _MEMO.get(key)
    if pb is None:
        pb = PartitionBound(inst, k, users, stats)
        _MEMO[key] = pb
        if len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    else:
        _MEMO.move_to_end(key)
        if stats is not None:
            pb.stats = stats
    return pb


def set_partitions(items):
    """Every partition of ``items`` into non-empty groups (lists of lists; Bell(n) of them,
    877 for 7 items): the exhaustive references of the tests and bench_bound.py."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in set_partitions(rest):
        for i in range(len(part)):
            yield part[:i] + [[first, *part[i]]] + part[i + 1:]
        yield [[first], *part]
