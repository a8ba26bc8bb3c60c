r"""MILP over caching, migration and cluster choice, with a certified lower bound (pyomo + HiGHS).

For every requested PB k the MILP picks one participating cluster S from a candidate set
``S_k`` whose broadcast delay D_k(S) (seconds) is precomputed, and decides caching and migrations
so that every node of S holds k or receives it (eqs. 1-3, 8). Only requested PBs get variables.

Variables (k requested, n != m nodes, S in S_k):

    a[n,k] in {0,1}      node n caches PB k                                   (binary)
    b[n,m,k] in [0,1]    migration of k from n to m                           (continuous)
    x[k,S]  in [0,1]     cluster S broadcasts k                               (continuous)
    y[k], w[m,k] in [0,1]  "overflow" cluster (only when S_k is truncated, see below)

Constraints:

    (1) storage       sum_k S(k) a[n,k] <= C_n                                      for all n
    (2) validity      b[n,m,k] <= a[n,k]                                            for all n,m,k
    (3) participation lam[m,k] := sum_{S in S_k, S contains m} x[k,S] + w[m,k]
                      lam[m,k] <= a[m,k] + sum_{n != m} b[n,m,k]                    for all m,k
    (4) choice        sum_{S in S_k} x[k,S] + y[k] = 1                              for all k
    (5) overflow      w[m,k] <= y[k],  sum_m w[m,k] >= (s_max + 1) y[k]              for all k
    valid cuts        a[m,k] + sum_n b[n,m,k] <= 1,  b[n,m,k] <= lam[m,k],  sum_n a[n,k] >= 1

Objective (eq. 8; the migration term of eq. 7 plus the broadcast of the chosen cluster):

    T = sum_k [ sum_{n != m} b[n,m,k] 8 S(k) / R^bac_{n,m}(k) + sum_S D_k(S) x[k,S]
                + D_k(all) y[k] ]

Only ``a`` needs to be integral: for fixed binary ``a`` each PB's remaining LP is a choice over the
simplex of clusters in which node m costs p_m = 0 if it caches k and min_{n: a[n,k]=1}
8 S(k)/R^bac_{n,m}(k) otherwise, so an optimal vertex is integral (one cluster, one migration
per non-caching participant, from the cheapest holder). The two cuts "at most one copy per node"
and "migrate only to participants" remove only non-optimal solutions (migrations cost > 0), so
they do not change the optimum. :func:`complete` computes that exact completion for any
caching; it is used for MIP starts, to read solutions back and by the brute-force tests.

Rate models for D_k(S):

* ``optimistic`` (the bound): for user u, A_u(S) = sum_{n in S} sqrt(P_n) max(0, ||h~_{n,u}(k)||
  - 1/sqrt(c_{n,u})) (bounds.link_amplitude_bound), a worst-case amplitude no beamformer with
  per-node power P_n can exceed from the nodes S; D_k(S) = 8 S(k) / min_u B log2(1 + A_u(S)^2 /
  sigma_u^2). Every cluster that can matter is represented (see "Validity" below), so the MILP
  optimum, and HiGHS's dual bound whenever it stops, is a lower bound on the delay of every plan.
* ``oracle`` (the primal): D_k(S) is the delay of the robust oracle's beams (memoised), on a
  restricted candidate set, plus ``qos_penalty_s`` for a cluster whose beams miss some user's
  QoS floor; a cluster whose common beam leaves a user at rate 0 or below QoS also gets a
  *split* option (one unicast unit per user, sequential). It is a heuristic primal (its
  candidate sets are restricted), not a bound.

Validity of the optimistic bound. Take any plan the evaluator accepts apart from QoS (storage,
eq. 2, eq. 3 and power hold) and in which every reachable requested (user, PB) pair is in a
delivery unit of finite delay; the format allows CoMP broadcast, TDMA unicast slots, per-model
coarse units, concurrent own-cell slots and hybrids. Let H(k) be the nodes holding k (cached
fine-grained or inside a model copy) and Lam(k) = H(k) plus the migration targets of k.
(i) a[n,k] = [n in H(k)] satisfies (1): a model copy stores each of its PBs, and copies pay
every shared PB again, so sum_k S(k) a[n,k] <= storage used <= C_n; the plan's migrations satisfy
(2) and cost exactly their term of T. (ii) Every unit of k transmits from nodes P in Lam(k); a
requester u is in some unit of finite delay, which lasts at least 8 S(k) / R_u >= 8 S(k) /
ub_u(P) >= 8 S(k) / ub_u(Lam(k)) (bounds.py: the per-user bound, additive and so monotone in the
node set). The broadcast time the evaluator charges for k is a sum over slots of the slot's
longest unit, hence at least its longest unit, hence >= max_u 8 S(k) / ub_u(Lam(k)) =
D_k(Lam(k)). (iii) Pruning: D_k is non-increasing in the set, so repeatedly removing a node whose
removal does not raise D_k ends in a *minimal* set S subset of Lam(k) (every node strictly lowers
D_k) with D_k(S) = D_k(Lam(k)), and (3) holds for S because it holds for Lam(k). A node with zero
bound to every requester is never in a minimal set. Hence enumerating the minimal sets loses
nothing. (iv) Truncation: with more candidate nodes than ``FULL_ENUMERATION_MAX_NODES`` only
sets of up to s_max nodes are enumerated; a larger Lam(k) is represented by the overflow option
(y = 1, w = 1 on Lam(k)) whose cost D_k(all nodes) <= D_k(Lam(k)), so the bound stays valid
(weaker, not invalid). The plan thus maps to a feasible MILP point of objective <= its delay,
and the MILP optimum is a lower bound; HiGHS's dual bound is <= that optimum. QoS is ignored (a
relaxation). Numerical safety: the reported bound is the dual bound reduced by
``BOUND_SAFETY_RTOL`` (relative), which covers HiGHS's feasibility/optimality tolerances (1e-7)
and the evaluator's power tolerance (1e-9).

Unreachable users: a requester with zero bound from every node has worst-case rate 0 for every
beam, so its PB cannot be delivered to it at finite delay by any plan. Such (user, PB) pairs are
*excluded* (listed in :attr:`MilpData.excluded`); the bound then covers the reachable pairs, and
a PB none of whose requesters is reachable gets no variables. Callers decide whether to report
this as infeasible (``solvers/milp/__init__.py``, parameter ``unreachable``).
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from fgamcd_opt.bounds import link_amplitude_bound
from fgamcd_opt.instance import Instance
from fgamcd_opt.oracle import BeamformingOracle, BeamResult
from fgamcd_opt.plan import DeliveryUnit, Migration, Plan
from fgamcd_opt.rates import rate_from_amplitude, transfer_delay_s

RATE_MODELS = ("optimistic", "oracle")
FULL_ENUMERATION_MAX_NODES = 8  # 2^8 - 1 = 255 candidate sets per PB at most
TRUNCATED_MAX_CLUSTER = 4  # s_max when the enumeration is truncated
BOUND_SAFETY_RTOL = 1e-6
# multi-start broadcasts only up to this many users: a 20-start solve of a 30-user group costs
# ~20 s, and such groups are served in partial groups anyway (docs/milp.md section 2.2)
MULTISTART_MAX_USERS = 10
_GB = 1e9


# ---------------------------------------------------------------------------------------------
# data: candidate clusters and their delays
# ---------------------------------------------------------------------------------------------
@dataclass
class BlockOptions:
    """The candidate clusters of one requested PB and their costs.

    clusters : (C, N) bool membership rows; cost_s : (C,) objective coefficient in seconds
    (broadcast delay, plus the QoS penalty in the oracle model); delay_s : (C,) broadcast delay
    in seconds; qos_ok : (C,) bool; migration_s : (N, N) seconds 8 S(k) / R^bac_{n,m}(k)
    (+inf on the diagonal). units (oracle model): per option, its oracle results, one per
    transmission (one broadcast, or one unicast per user for a split option).
    overflow_min_nodes > 0 adds the overflow option "any set of at least that many nodes" at
    cost overflow_cost_s (optimistic model with truncation only).
    """

    block: int
    users: tuple[int, ...]
    size_bytes: int
    clusters: np.ndarray
    cost_s: np.ndarray
    delay_s: np.ndarray
    qos_ok: np.ndarray
    migration_s: np.ndarray
    overflow_min_nodes: int = 0
    overflow_cost_s: float = float("inf")
    units: list[list[BeamResult]] | None = None  # oracle model: the transmissions of an option

    def cluster(self, c: int) -> tuple[int, ...]:
        return tuple(int(n) for n in np.flatnonzero(self.clusters[c]))

    @property
    def n_clusters(self) -> int:
        return int(self.clusters.shape[0])


@dataclass
class MilpData:
    """Everything the MILP needs; built by :func:`optimistic_data` or :func:`oracle_data`."""

    rate_model: str
    n_nodes: int
    capacity_bytes: np.ndarray  # (N,)
    blocks: list[BlockOptions]
    excluded: dict[int, tuple[int, ...]] = field(default_factory=dict)  # PB -> unserved users
    complete: bool = True  # every cluster that can matter is represented (bound validity)
    truncated_blocks: int = 0
    prep_time_s: float = 0.0
    oracle_calls: int = 0
    cut_blocks: int = 0  # oracle_data: PBs left with one candidate by its deadline

    @property
    def n_clusters(self) -> int:
        return sum(b.n_clusters + (b.overflow_min_nodes > 0) for b in self.blocks)

    def excluded_pairs(self) -> list[tuple[int, int]]:
        return sorted((u, k) for k, us in self.excluded.items() for u in us)


def reachable_requesters(inst: Instance, k: int,
                         link: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(reachable, unreachable) requesters of PB k: a user is unreachable when its rate bound is
    0 from every node (then no beam from any node set gives it a positive worst-case rate).
    ``link``: the (N, requesters) link bound if already computed."""
    users = inst.requesters(k)
    link = link_amplitude_bound(inst, k, users) if link is None else link
    alive = link.sum(axis=0) > 0
    return users[alive], users[~alive]


def _subset_masks(nodes: np.ndarray, n_nodes: int, max_size: int) -> np.ndarray:
    """(C, N) bool: every non-empty subset of ``nodes`` with at most ``max_size`` elements,
    ordered by size then lexicographically."""
    rows = []
    for size in range(1, min(max_size, len(nodes)) + 1):
        for combo in itertools.combinations(nodes.tolist(), size):
            row = np.zeros(n_nodes, dtype=bool)
            row[list(combo)] = True
            rows.append(row)
    return np.array(rows, dtype=bool).reshape(-1, n_nodes)


def _optimistic_delays(masks: np.ndarray, link: np.ndarray, noise: np.ndarray,
                       bandwidth_hz: float, size_bytes: float) -> np.ndarray:
    """(C,) seconds: 8 S / min_u rate bound of each subset (inf when some user gets 0)."""
    amp = masks.astype(float) @ link  # (C, V) sqrt(W)
    rmin = rate_from_amplitude(amp, noise[None, :], bandwidth_hz).min(axis=1)
    return transfer_delay_s(size_bytes, rmin)


def _minimal(masks: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """(C,) bool: finite-delay subsets from which removing any node strictly raises the delay.

    ``masks`` must be closed under removing one node (all subsets up to some size), so every
    S minus {m} is itself a row (or empty, delay inf)."""
    n_nodes = masks.shape[1]
    weights = 1 << np.arange(n_nodes, dtype=np.int64)
    codes = masks.astype(np.int64) @ weights
    where = {int(c): i for i, c in enumerate(codes)}
    keep = np.isfinite(delay)
    for i, code in enumerate(codes):
        if not keep[i]:
            continue
        for m in np.flatnonzero(masks[i]):
            sub = int(code) ^ (1 << int(m))
            d_sub = delay[where[sub]] if sub else np.inf
            if d_sub <= delay[i]:  # S is dominated by the cheaper-to-serve S \ {m}
                keep[i] = False
                break
    return keep


def optimistic_block(inst: Instance, k: int, max_cluster: int | None = None,
                     full_max_nodes: int = FULL_ENUMERATION_MAX_NODES,
                     ) -> tuple[BlockOptions | None, tuple[int, ...], bool]:
    """Minimal clusters of PB k under the optimistic rate model.

    Returns (options or None when no requester is reachable, unreachable users, truncated).
    max_cluster None: every subset of the useful nodes when there are at most ``full_max_nodes``
    of them, else sets of up to TRUNCATED_MAX_CLUSTER nodes plus the overflow option.
    """
    link_req = link_amplitude_bound(inst, k, inst.requesters(k))  # (N, requesters) sqrt(W)
    live, dead = reachable_requesters(inst, k, link_req)
    dead_t = tuple(int(u) for u in dead)
    if live.size == 0:
        return None, dead_t, False
    link = link_req[:, link_req.sum(axis=0) > 0]
    useful = np.flatnonzero(link.sum(axis=1) > 0)  # nodes with a positive bound to a requester
    if max_cluster is None:
        s_max = len(useful) if len(useful) <= full_max_nodes else TRUNCATED_MAX_CLUSTER
    else:
        s_max = max(1, int(max_cluster))
    truncated = s_max < len(useful)
    size = float(inst.repository.sizes[k])
    noise = inst.users.noise_w[live]
    masks = _subset_masks(useful, inst.n_nodes, s_max)
    delay = _optimistic_delays(masks, link, noise, inst.bandwidth_hz, size)
    keep = _minimal(masks, delay)
    opts = BlockOptions(
        block=int(k), users=tuple(int(u) for u in live), size_bytes=int(inst.repository.sizes[k]),
        clusters=masks[keep], cost_s=delay[keep], delay_s=delay[keep],
        qos_ok=np.ones(int(keep.sum()), dtype=bool),
        migration_s=transfer_delay_s(size, inst.backhaul_rates(k)))
    if truncated:
        full = np.zeros((1, inst.n_nodes), dtype=bool)
        full[0, useful] = True
        opts.overflow_min_nodes = s_max + 1
        opts.overflow_cost_s = float(
            _optimistic_delays(full, link, noise, inst.bandwidth_hz, size)[0])
    return opts, dead_t, truncated


def optimistic_data(inst: Instance, max_cluster: int | None = None) -> MilpData:
    """The bound model: minimal clusters of every requested PB (module docstring)."""
    t0 = time.perf_counter()
    blocks, excluded, n_trunc = [], {}, 0
    largest = int(inst.nodes.storage_bytes.max()) if inst.n_nodes else 0
    for k in inst.requested_blocks:
        if int(inst.repository.sizes[k]) > largest:
            # no node can ever hold it: its requesters are unservable, the rest still is
            excluded[int(k)] = tuple(int(u) for u in inst.requesters(k))
            continue
        opts, dead, truncated = optimistic_block(inst, int(k), max_cluster)
        if dead:
            excluded[int(k)] = dead
        if opts is not None:
            blocks.append(opts)
            n_trunc += truncated
    return MilpData("optimistic", inst.n_nodes, inst.nodes.storage_bytes.copy(), blocks,
                    excluded, complete=True, truncated_blocks=n_trunc,
                    prep_time_s=time.perf_counter() - t0)


def _broadcast(inst: Instance, oracle: BeamformingOracle, k: int, cl, us, method, size: int,
               starts: int) -> BeamResult:
    """The oracle's broadcast of k from ``cl`` to ``us``; with ``starts`` > 0 (local methods
    only) also a multi-start solve, keeping the QoS-feasible one first, then the faster."""
    res = oracle.solve(inst, k, cl, us, method=method)
    if starts <= 0 or (method or oracle.method) not in ("fast", "nonrobust"):
        return res
    alt = oracle.solve(inst, k, cl, us, method=method or oracle.method,
                       n_random_starts=starts, seed=0)
    key = lambda r: (not r.qos_feasible, r.delay_s(size))  # noqa: E731
    return alt if key(alt) < key(res) else res


def oracle_data(inst: Instance, oracle: BeamformingOracle,
                candidates: dict[int, list[tuple[int, ...]]], users: dict[int, tuple[int, ...]],
                qos_penalty_s: float = 10.0, method: str | None = None,
                excluded: dict[int, tuple[int, ...]] | None = None,
                partitions: dict[int, list[list[BeamResult]]] | None = None,
                multistart_users: int = 0, multistart_starts: int = 20,
                deadline: float | None = None,
                preferred: dict[int, tuple[int, ...]] | None = None,
                stop: float | None = None) -> MilpData | None:
    """The primal model: for each PB k in ``candidates`` and each candidate cluster S, the
    oracle's broadcast of k from S to ``users[k]``. When that broadcast gives some user rate 0 or
    misses a QoS floor, the *split* option is added too: one unit per user from S, sent one
    after another (delay = sum of the units' delays), which helps a group whose members cannot
    be served well by one common beam. ``partitions[k]``: further *partial-group* options, each
    a list of transmissions (the oracle results of groups that partition ``users[k]``, each from
    its own cluster, sent in turn); the option's participants are the union of the groups'
    clusters and its delay the sum of the groups' delays (docs/milp.md section 2.2). Options of
    infinite delay are dropped; a PB left with no
    option is excluded with all its served users. A broadcast to at least ``multistart_users``
    users (0: never) and at most MULTISTART_MAX_USERS is also solved with
    ``multistart_starts`` seeded random starts (``fast``
    and ``nonrobust`` methods) and the better beams are kept: the SCA is local and large groups
    have many local optima (docs/milp.md section 7). Past ``deadline`` (``time.monotonic()``
    seconds) each remaining PB gets only one candidate, ``preferred[k]`` when given (e.g. the
    planner's cluster, whose oracle result is memoised) else its first, without multi-start
    (``MilpData.cut_blocks`` counts them); past ``stop`` it gives up and returns None."""
    t0 = time.perf_counter()
    calls0 = oracle.hits + oracle.misses
    blocks = []
    excluded = dict(excluded or {})
    cut = 0
    for k, clusters in candidates.items():
        if stop is not None and time.monotonic() > stop:
            return None
        us = tuple(int(u) for u in users[k])
        size = int(inst.repository.sizes[k])
        rows, delay, qos, units = [], [], [], []
        starts = multistart_starts if 0 < multistart_users <= len(us) <= MULTISTART_MAX_USERS \
            else 0
        if deadline is not None and time.monotonic() > deadline and clusters:
            clusters = [(preferred or {}).get(k, clusters[0])]  # out of time: one candidate
            starts = 0
            cut += 1
        for cl in dict.fromkeys(tuple(sorted(int(n) for n in c)) for c in clusters):
            res = _broadcast(inst, oracle, k, cl, us, method, size, starts)
            d = res.delay_s(size)
            row = np.zeros(inst.n_nodes, dtype=bool)
            row[list(cl)] = True
            options = [([res], d)] if np.isfinite(d) else []
            if len(us) > 1 and (not np.isfinite(d) or not res.qos_feasible):
                split = [oracle.solve(inst, k, cl, (u,), method=method) for u in us]
                d_split = float(sum(r.delay_s(size) for r in split))
                if np.isfinite(d_split):
                    options.append((split, d_split))
            for results, d_opt in options:
                rows.append(row)
                delay.append(d_opt)
                qos.append(all(r.qos_feasible for r in results))
                units.append(results)
        for results in (partitions or {}).get(k, []):
            served = sorted(u for r in results for u in r.users)
            d_opt = float(sum(transfer_delay_s(size, r.min_rate_bps) for r in results))
            if served != sorted(us) or not np.isfinite(d_opt):
                continue  # not a partition of the PB's users, or some group at rate 0
            row = np.zeros(inst.n_nodes, dtype=bool)
            row[[n for r in results for n in r.nodes]] = True
            rows.append(row)
            delay.append(d_opt)
            qos.append(all(r.qos_feasible for r in results))
            units.append(list(results))
        if not rows:
            excluded[k] = tuple(sorted(set(excluded.get(k, ())) | set(us)))
            continue
        delay_a = np.array(delay)
        qos_a = np.array(qos, dtype=bool)
        blocks.append(BlockOptions(
            block=int(k), users=us, size_bytes=size, clusters=np.array(rows),
            cost_s=delay_a + np.where(qos_a, 0.0, qos_penalty_s), delay_s=delay_a,
            qos_ok=qos_a, migration_s=transfer_delay_s(size, inst.backhaul_rates(k)),
            units=units))
    return MilpData("oracle", inst.n_nodes, inst.nodes.storage_bytes.copy(), blocks, excluded,
                    complete=False, prep_time_s=time.perf_counter() - t0,
                    oracle_calls=oracle.hits + oracle.misses - calls0, cut_blocks=cut)


def rank_clusters(inst: Instance, opts: BlockOptions, holds_col: np.ndarray, max_size: int,
                  count: int) -> list[tuple[int, ...]]:
    """The ``count`` best clusters of at most ``max_size`` nodes for PB ``opts.block`` by
    optimistic delay plus the participation cost under the caching ``holds_col`` (N,) (used to
    choose which clusters the oracle evaluates)."""
    k = opts.block
    link = link_amplitude_bound(inst, k, opts.users)
    useful = np.flatnonzero(link.sum(axis=1) > 0)
    masks = _subset_masks(useful, inst.n_nodes, max_size)
    delay = _optimistic_delays(masks, link, inst.users.noise_w[list(opts.users)],
                               inst.bandwidth_hz, opts.size_bytes)
    p = _participation_cost(opts.migration_s, holds_col)
    score = delay + masks.astype(float) @ np.where(np.isfinite(p), p, 0.0)
    order = np.argsort(score, kind="stable")
    return [tuple(int(n) for n in np.flatnonzero(masks[i])) for i in order[:count]
            if np.isfinite(score[i])]


# ---------------------------------------------------------------------------------------------
# the multicast (partition) bound: raise optimistic cluster costs where a group bound is tighter
# ---------------------------------------------------------------------------------------------
@dataclass
class GroupBoundReport:
    """What :func:`refine_group_bounds` did (metadata)."""

    blocks_refined: int = 0
    blocks_raised: int = 0
    blocks_skipped_budget: int = 0  # PBs not (fully) bounded because the time budget ran out
    groups_cut: int = 0  # group bounds stopped by the time budget (valid, weaker)
    blocks_tight: int = 0  # per-user bound already within TIGHT_RTOL of the oracle's beams
    clusters_before: int = 0
    clusters_after: int = 0
    sdp_groups: int = 0  # groups refined (phase branch and bound and/or SDP)
    sdp_evaluations: int = 0
    phase_boxes: int = 0  # SOCPs of the phase branch and bound
    time_s: float = 0.0
    raised_s: float = 0.0  # sum over PBs of the raise of min_S cost(S)

    def summary(self) -> dict:
        return dict(self.__dict__)


def refine_group_bounds(inst: Instance, data: MilpData, oracle: BeamformingOracle | None = None,
                        time_budget_s: float = 60.0, min_users: int = 2, prune: bool = True,
                        workers: int = 1) -> GroupBoundReport:
    """Tighten the optimistic model in place with the partition bound of
    :mod:`fgamcd_opt.group_bound` (docs/milp.md section 3.5).

    For each PB with at least ``min_users`` reachable requesters (largest groups first, while the
    time budget lasts) compute L_k = the lower bound on its broadcast time over every partition of
    its requesters when every useful node may transmit. Every cluster cost becomes
    max(D_k(S), L_k): a plan whose PB-k nodes are Lam(k) takes at least D_k(Lam(k)) (per-user
    bound) and at least L_k (a bound for the larger node set). Clusters then dominated by a kept
    sub-cluster of no higher cost are dropped (the sub-cluster serves every plan the larger one
    did) unless ``prune`` is false (needed before :func:`refine_cluster_bounds`). ``oracle``:
    if given, the oracle's beams from all useful nodes seed the SDP search with an achieved
    amplitude (speed only; the bound does not depend on it). ``workers`` > 1: the group bounds
    are first computed in that many processes (:func:`fgamcd_opt.group_bound.
    refine_concurrently`; the same values, so the same result as ``workers=1``).
    """
    from fgamcd_opt.group_bound import (
        MAX_EXACT_USERS,
        GroupBoundStats,
        partition_bound,
        refine_concurrently,
    )

    rep = GroupBoundReport(clusters_before=data.n_clusters)
    stats = GroupBoundStats()
    t0 = time.perf_counter()
    order = sorted(range(len(data.blocks)), key=lambda i: (-len(data.blocks[i].users), i))

    def job(o, seed: bool = True):
        """(partition bound, useful nodes, cheapest cost) of a PB, or None when the oracle's
        beams show that L_k could not raise any cluster cost by more than TIGHT_RTOL
        (``seed=False``: no oracle call, out of time)."""
        useful = np.flatnonzero(o.clusters.any(axis=0))
        if o.overflow_min_nodes:
            link = link_amplitude_bound(inst, o.block, o.users)
            useful = np.flatnonzero(link.sum(axis=1) > 0)
        pb = partition_bound(inst, o.block, o.users, stats)
        before = min(float(o.cost_s.min()) if o.n_clusters else np.inf,
                     o.overflow_cost_s if o.overflow_min_nodes else np.inf)
        if oracle is not None and seed and len(o.users) <= MAX_EXACT_USERS:
            # (above MAX_EXACT_USERS the partition bound refines nothing: no seed needed, and
            # one broadcast to all requesters costs ~1 s for 30 users)
            res = oracle.solve(inst, o.block, tuple(int(n) for n in useful), o.users)
            pb.seed_achieved(tuple(int(n) for n in useful), res.rates_bps)
            if res.delay_s(o.size_bytes) <= before * (1 + TIGHT_RTOL):
                # L_k <= the delay of these beams: no cluster cost could rise by more
                return None
        return pb, useful, before

    prepared: dict[int, tuple | None] = {}  # block index -> job (its oracle call is done)
    if workers > 1:  # the same jobs as the loop below, their group bounds in parallel first
        for i in order:
            if len(data.blocks[i].users) < min_users:
                continue
            if time.perf_counter() - t0 > time_budget_s:
                break  # the oracle calls that seed the jobs take time too
            prepared[i] = job(data.blocks[i])
        refine_concurrently([(j[0], j[1]) for j in prepared.values() if j is not None],
                            workers, time_budget_s - (time.perf_counter() - t0))
    for i in order:
        o = data.blocks[i]
        if len(o.users) < min_users:
            continue
        left = time_budget_s - (time.perf_counter() - t0)
        # out of time, a PB not prepared still combines the group bounds memoised so far (a
        # valid, weaker bound; no oracle call, no new group bound) when there are any
        j = prepared[i] if i in prepared else job(o, seed=left > 0)
        if j is not None and left <= 0 and i not in prepared and not j[0].has_refined(j[1]):
            rep.blocks_skipped_budget += 1
            continue
        if j is None:
            rep.blocks_tight += 1
            continue
        pb, useful, before = j
        lb, info = pb.delay_lb(useful, time_budget_s=max(left, 0.0))
        if not info.get("exact", True) and len(o.users) <= MAX_EXACT_USERS:
            rep.blocks_skipped_budget += 1  # the budget stopped its partition search
        rep.blocks_refined += 1
        if not np.isfinite(lb) or lb <= before:
            continue
        rep.blocks_raised += 1
        rep.raised_s += lb - before
        cost = np.maximum(o.cost_s, lb)
        keep = _undominated(o.clusters, cost) if prune else np.ones(len(cost), dtype=bool)
        o.clusters, o.cost_s = o.clusters[keep], cost[keep]
        o.delay_s = np.maximum(o.delay_s, lb)[keep]
        o.qos_ok = o.qos_ok[keep]
        if o.overflow_min_nodes:
            o.overflow_cost_s = max(o.overflow_cost_s, lb)
    rep.clusters_after = data.n_clusters
    rep.sdp_groups, rep.sdp_evaluations = stats.sdp_groups, stats.sdp_evaluations
    rep.phase_boxes, rep.groups_cut = stats.phase_boxes, stats.groups_cut
    rep.time_s = time.perf_counter() - t0
    return rep


# a partition bound is not computed when the oracle's beams from its node set are already within
# this of the cost it would raise (the raise is at most their delay minus that cost)
TIGHT_RTOL = 2e-3
SUPERSET_RTOL = 1e-6  # tolerance of "adds nothing to a bottleneck user" in cluster_superset


def cluster_superset(inst: Instance, o: BlockOptions, c: int) -> tuple[int, ...]:
    """The largest node set Lam whose participants' plans the bound MILP may represent by
    cluster row ``c`` (docs/milp.md section 3.5, cluster bounds): S plus every node that adds
    (almost) nothing to the per-user bound of some (near-)bottleneck user of S. A plan with
    participants Lam maps to a minimal S with D_k(S) = D_k(Lam) (section 3.1); the bottleneck u
    of Lam is one of S's and every node of Lam \\ S has zero bound to u, so Lam is inside."""
    link = link_amplitude_bound(inst, o.block, o.users) / np.sqrt(
        inst.users.noise_w[list(o.users)])[None, :]  # (N, V), rate is monotone in it
    mask = o.clusters[c]
    f = link[mask].sum(axis=0)
    fmin = float(f.min())
    near = f <= fmin * (1 + SUPERSET_RTOL) + 1e-300
    extra = (link[:, near] <= SUPERSET_RTOL * max(fmin, 1e-300)).any(axis=1)
    return tuple(int(n) for n in np.flatnonzero(mask | extra))


def refine_cluster_bounds(inst: Instance, data: MilpData, choices, time_budget_s: float,
                          refined: set, stats=None, oracle: BeamformingOracle | None = None,
                          workers: int = 1) -> tuple[int, float]:
    """Raise the cost of each chosen (block, cluster row) not refined before to
    max(cost, L_k(cluster_superset)), the partition bound of :mod:`fgamcd_opt.group_bound` for
    that node set (docs/milp.md section 3.5). Valid only on a model whose clusters were not
    pruned by :func:`refine_group_bounds` (``prune=False``): a pruned cluster's plans would be
    represented by a sub-cluster whose raised cost no longer bounds them. ``refined`` (set of
    (block, cluster code)) is updated. ``oracle``: skips a cluster whose oracle beams from its
    superset are within TIGHT_RTOL of its cost, and seeds the SDP. ``workers`` > 1: the group
    bounds are first computed in that many processes (same values as ``workers=1``). Returns
    (clusters raised, seconds)."""
    from fgamcd_opt.group_bound import GroupBoundStats, partition_bound, refine_concurrently

    t0 = time.perf_counter()
    stats = stats or GroupBoundStats()
    by_block = {o.block: o for o in data.blocks}
    raised = 0
    order = [ch for ch in sorted(choices, key=lambda ch: -len(by_block[ch.block].users))
             if ch.block in by_block]

    def job(ch, o):
        """(partition bound, superset) of a chosen cluster, or None when its superset is all
        useful nodes or the oracle's beams show it cannot be raised by more than TIGHT_RTOL."""
        sup = cluster_superset(inst, o, ch.index)
        if set(sup) >= {int(n) for n in np.flatnonzero(o.clusters.any(axis=0))}:
            return None  # every useful node: L_k(all useful nodes) is already in the cost
        pb = partition_bound(inst, o.block, o.users, stats)
        if oracle is not None:
            res = oracle.solve(inst, o.block, sup, o.users)
            pb.seed_achieved(sup, res.rates_bps)
            if res.delay_s(o.size_bytes) <= o.cost_s[ch.index] * (1 + TIGHT_RTOL):
                return None
        return pb, sup

    def key_of(ch, o):
        if ch.index < 0 or len(o.users) < 2 or o.overflow_min_nodes:
            return None
        return (o.block, tuple(int(n) for n in np.flatnonzero(o.clusters[ch.index])))

    keys = set(refined)  # the clusters whose group bounds the concurrent pass prepared
    if workers > 1:  # the same jobs as the loop below, their group bounds in parallel first
        jobs = []
        for ch in order:
            o = by_block[ch.block]
            key = key_of(ch, o)
            if key is None or key in keys:
                continue
            if time.perf_counter() - t0 > time_budget_s:
                break  # the oracle calls that seed the jobs take time too
            keys.add(key)
            j = job(ch, o)
            if j is not None:
                jobs.append(j)
        refine_concurrently(jobs, workers, time_budget_s - (time.perf_counter() - t0))
    for ch in order:
        o = by_block[ch.block]
        key = key_of(ch, o)
        if key is None or key in refined:
            continue
        left = time_budget_s - (time.perf_counter() - t0)
        if left <= 0 and (workers <= 1 or key not in keys):
            break
        refined.add(key)
        j = job(ch, o)
        if j is None:
            continue
        pb, sup = j
        # no time left (workers > 1): only what the concurrent pass memoised is combined
        lb, _ = pb.delay_lb(sup, time_budget_s=max(left, 0.0))
        if np.isfinite(lb) and lb > o.cost_s[ch.index] * (1 + 1e-12):
            o.cost_s[ch.index] = lb
            o.delay_s[ch.index] = max(o.delay_s[ch.index], lb)
            raised += 1
    return raised, time.perf_counter() - t0


def _undominated(masks: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """(C,) bool: drop a cluster when a strict sub-cluster in the list costs no more."""
    keep = np.ones(len(masks), dtype=bool)
    sizes = masks.sum(axis=1)
    for i in np.argsort(sizes, kind="stable"):
        sub = (masks[keep] & ~masks[i]).sum(axis=1) == 0  # kept rows contained in row i
        sub &= sizes[keep] < sizes[i]
        if np.any(sub & (cost[keep] <= cost[i])):
            keep[i] = False
    return keep


# ---------------------------------------------------------------------------------------------
# exact completion of a caching decision
# ---------------------------------------------------------------------------------------------
@dataclass
class BlockChoice:
    block: int
    cluster: tuple[int, ...]  # chosen cluster (overflow: the cheapest overflow_min_nodes nodes)
    index: int  # row in BlockOptions.clusters; -1 = overflow option
    migrations: list[Migration]
    migration_s: float
    broadcast_s: float
    cost_s: float  # broadcast cost incl. QoS penalty


@dataclass
class Assignment:
    """A caching decision with its exact optimal completion (module docstring)."""

    holds: np.ndarray  # (N, K) bool, instance block indices
    choices: list[BlockChoice]
    feasible: bool  # every PB of the data has a holder
    missing_blocks: tuple[int, ...] = ()  # PBs of the data nobody caches

    @property
    def migration_s(self) -> float:
        return float(sum(c.migration_s for c in self.choices))

    @property
    def broadcast_s(self) -> float:
        return float(sum(c.broadcast_s for c in self.choices))

    @property
    def objective_s(self) -> float:
        if not self.feasible:
            return float("inf")
        return float(sum(c.migration_s + c.cost_s for c in self.choices))

    @property
    def delay_s(self) -> float:
        return self.migration_s + self.broadcast_s if self.feasible else float("inf")


def _participation_cost(migration_s: np.ndarray, holds_col: np.ndarray) -> np.ndarray:
    """(N,) seconds to make each node participate: 0 if it caches, else the cheapest migration
    from a holder (inf without holder)."""
    holders = np.flatnonzero(holds_col)
    if holders.size == 0:
        return np.full(holds_col.shape[0], np.inf)
    p = migration_s[holders].min(axis=0)
    p[holders] = 0.0
    return p


def complete(data: MilpData, holds: np.ndarray) -> Assignment:
    """Best clusters and migrations for the caching ``holds`` (N, K): per PB the candidate
    minimising cost + participation costs, each non-caching participant fed by its cheapest
    holder. This is the exact optimum of the MILP with ``a`` fixed to ``holds``."""
    holds = np.asarray(holds, dtype=bool)
    choices, missing = [], []
    for opts in data.blocks:
        k = opts.block
        col = holds[:, k]
        if not col.any():
            missing.append(k)
            continue
        p = _participation_cost(opts.migration_s, col)
        total = opts.cost_s + opts.clusters.astype(float) @ p
        best = int(np.argmin(total)) if total.size else -1
        over = float("inf")
        if opts.overflow_min_nodes:
            cheapest = np.sort(p)[: opts.overflow_min_nodes]
            over = opts.overflow_cost_s + float(cheapest.sum())
        if best >= 0 and total[best] <= over:
            nodes = opts.cluster(best)
            cost, bcast = float(opts.cost_s[best]), float(opts.delay_s[best])
        else:
            nodes = tuple(sorted(int(n) for n in np.argsort(p, kind="stable")[
                : opts.overflow_min_nodes]))
            best, cost, bcast = -1, opts.overflow_cost_s, opts.overflow_cost_s
        holders = np.flatnonzero(col)
        migs = []
        for m in nodes:
            if not col[m]:
                src = int(holders[np.argmin(opts.migration_s[holders, m])])
                migs.append(Migration(src, m, k))
        mig_s = float(sum(opts.migration_s[mg.src, mg.dst] for mg in migs))
        choices.append(BlockChoice(k, nodes, best, migs, mig_s, bcast, cost))
    return Assignment(holds, choices, not missing, tuple(missing))


# ---------------------------------------------------------------------------------------------
# the pyomo model and HiGHS
# ---------------------------------------------------------------------------------------------
@dataclass
class MilpOutcome:
    """Result of one MILP solve. Times in seconds, objective and bound in seconds of delay."""

    rate_model: str
    status: str  # optimal | time_limit | infeasible | no_solution | error
    termination: str  # pyomo's termination condition
    objective_s: float | None  # HiGHS incumbent
    dual_bound_s: float | None  # HiGHS best dual bound (<= optimum)
    assignment: Assignment | None  # exact completion of the incumbent caching
    build_time_s: float = 0.0  # pyomo model construction
    load_time_s: float = 0.0  # pyomo -> HiGHS translation
    solve_time_s: float = 0.0  # HiGHS run
    n_variables: int = 0
    n_binaries: int = 0
    n_constraints: int = 0
    warm_start: bool = False
    warm_start_objective_s: float | None = None
    message: str = ""
    # HiGHS reported an incumbent objective that the solution it returned does not have (seen
    # with a MIP start: "optimal" at 0.1743 s while the returned values were the start's
    # 0.1786 s and the true optimum 0.1782 s); solve_milp then re-solves without the start
    inconsistent: bool = False

    @property
    def gap(self) -> float | None:
        """Relative MIP gap (incumbent - dual bound) / incumbent."""
        if self.objective_s is None or self.dual_bound_s is None or self.objective_s <= 0:
            return None
        return max(0.0, (self.objective_s - self.dual_bound_s) / self.objective_s)

    def summary(self) -> dict:
        return {"rate_model": self.rate_model, "status": self.status,
                "termination": self.termination, "objective_s": self.objective_s,
                "dual_bound_s": self.dual_bound_s, "gap": self.gap,
                "build_time_s": self.build_time_s, "load_time_s": self.load_time_s,
                "solve_time_s": self.solve_time_s, "n_variables": self.n_variables,
                "n_binaries": self.n_binaries, "n_constraints": self.n_constraints,
                "inconsistent": self.inconsistent, "warm_start": self.warm_start,
                "warm_start_objective_s": self.warm_start_objective_s, "message": self.message}


def build_model(data: MilpData, capacity_slack_bytes: float = 0.0):
    """The pyomo ConcreteModel of the module docstring. ``capacity_slack_bytes`` tightens every
    storage row (primal models, so that HiGHS's row tolerance cannot overfill a node)."""
    import pyomo.environ as pyo

    n_nodes = data.n_nodes
    nb = len(data.blocks)
    mdl = pyo.ConcreteModel(name=f"fgamcd-milp-{data.rate_model}")
    a_idx = [(n, i) for i in range(nb) for n in range(n_nodes)]
    # nodes that can participate in PB i (in some candidate cluster, or any with overflow)
    part = []
    for o in data.blocks:
        p = o.clusters.any(axis=0) if o.n_clusters else np.zeros(n_nodes, dtype=bool)
        if o.overflow_min_nodes:
            p[:] = True
        part.append(np.flatnonzero(p))
    b_idx = [(n, m, i) for i in range(nb) for m in part[i] for n in range(n_nodes) if n != m]
    x_idx = [(i, c) for i in range(nb) for c in range(data.blocks[i].n_clusters)]
    y_idx = [i for i in range(nb) if data.blocks[i].overflow_min_nodes]
    w_idx = [(m, i) for i in y_idx for m in range(n_nodes)]

    mdl.A = pyo.Var(a_idx, domain=pyo.Binary)
    mdl.B = pyo.Var(b_idx, bounds=(0, 1))
    mdl.X = pyo.Var(x_idx, bounds=(0, 1))
    mdl.Y = pyo.Var(y_idx, bounds=(0, 1))
    mdl.W = pyo.Var(w_idx, bounds=(0, 1))
    A, B, X, Y, W = mdl.A, mdl.B, mdl.X, mdl.Y, mdl.W
    qs = pyo.quicksum

    mdl.obj = pyo.Objective(expr=qs(
        [float(data.blocks[i].cost_s[c]) * X[i, c] for i, c in x_idx]
        + [float(data.blocks[i].migration_s[n, m]) * B[n, m, i] for n, m, i in b_idx]
        + [float(data.blocks[i].overflow_cost_s) * Y[i] for i in y_idx]))

    sizes_gb = [o.size_bytes / _GB for o in data.blocks]
    cap_gb = [(float(c) - capacity_slack_bytes) / _GB for c in data.capacity_bytes]
    mdl.storage = pyo.Constraint(range(n_nodes), rule=lambda _, n: qs(
        [sizes_gb[i] * A[n, i] for i in range(nb)]) <= cap_gb[n])
    mdl.validity = pyo.Constraint(b_idx, rule=lambda _, n, m, i: B[n, m, i] <= A[n, i])
    mdl.choice = pyo.Constraint(range(nb), rule=lambda _, i: qs(
        [X[i, c] for c in range(data.blocks[i].n_clusters)]
        + ([Y[i]] if i in mdl.Y else [])) == 1)
    mdl.holder = pyo.Constraint(range(nb), rule=lambda _, i: qs(
        [A[n, i] for n in range(n_nodes)]) >= 1)

    lam = {}
    for i, o in enumerate(data.blocks):
        for m in part[i]:
            terms = [X[i, c] for c in np.flatnonzero(o.clusters[:, m])]
            if o.overflow_min_nodes:
                terms.append(W[m, i])
            lam[m, i] = qs(terms)
    pm_idx = [(m, i) for i in range(nb) for m in part[i]]

    def incoming(m, i):
        return qs([B[n, m, i] for n in range(n_nodes) if n != m])

    mdl.participation = pyo.Constraint(
        pm_idx, rule=lambda _, m, i: lam[m, i] <= A[m, i] + incoming(m, i))
    mdl.one_copy = pyo.Constraint(pm_idx, rule=lambda _, m, i: A[m, i] + incoming(m, i) <= 1)
    mdl.useful_migration = pyo.Constraint(b_idx, rule=lambda _, n, m, i: B[n, m, i] <= lam[m, i])
    mdl.overflow_member = pyo.Constraint(w_idx, rule=lambda _, m, i: W[m, i] <= Y[i])
    mdl.overflow_size = pyo.Constraint(y_idx, rule=lambda _, i: qs(
        [W[m, i] for m in range(n_nodes)])
        >= data.blocks[i].overflow_min_nodes * Y[i])
    mdl._part = part
    return mdl


def _set_start(mdl, data: MilpData, asg: Assignment) -> None:
    """Load an assignment as variable values (HiGHS MIP start)."""
    for var in (mdl.A, mdl.B, mdl.X, mdl.Y, mdl.W):
        for idx in var:
            var[idx].set_value(0)
    by_block = {c.block: c for c in asg.choices}
    for i, o in enumerate(data.blocks):
        for n in range(data.n_nodes):
            mdl.A[n, i].set_value(int(asg.holds[n, o.block]))
        ch = by_block.get(o.block)
        if ch is None:
            continue
        if ch.index >= 0:
            mdl.X[i, ch.index].set_value(1)
        else:
            mdl.Y[i].set_value(1)
            for m in ch.cluster:
                mdl.W[m, i].set_value(1)
        for mg in ch.migrations:
            mdl.B[mg.src, mg.dst, i].set_value(1)


def _read_holds(mdl, data: MilpData, n_blocks: int) -> np.ndarray:
    holds = np.zeros((data.n_nodes, n_blocks), dtype=bool)
    for (n, i), var in mdl.A.items():
        if var.value is not None and var.value > 0.5:
            holds[n, data.blocks[i].block] = True
    return holds


INCONSISTENT_RTOL = 1e-6  # HiGHS's incumbent objective vs the objective of the values returned
MILP_KILL_GRACE_S = 3.0  # a solver process still running this long after its deadline is killed
_FORKED_CALL: tuple | None = None  # the call a forked solver process runs (inherited, not pickled)


def solve_milp(data: MilpData, n_blocks: int, time_limit_s: float = 120.0,
               mip_gap: float = 0.01, threads: int = 2, warm_start: Assignment | None = None,
               capacity_slack_bytes: float = 0.0, seed: int = 0,
               deadline: float | None = None) -> MilpOutcome:
    """Build the model, solve it with HiGHS (pyomo appsi) and complete the incumbent exactly.

    Never loses the incumbent: on a time limit the best solution found (or the MIP start) is
    read back; the dual bound is HiGHS's best bound whatever the termination. HiGHS gets
    ``time_limit_s``, or less when ``deadline`` (``time.monotonic()`` seconds) comes first
    (counted after the model is built).

    The model is built and solved in a forked process (fgamcd_opt/workers.py: it dies with
    this one): building and translating a large pyomo model is not interruptible (N = 8,
    U = 48: a minute), so a solve still running ``MILP_KILL_GRACE_S`` after ``deadline`` is
    killed and reported as ``time_limit`` without a solution (the callers then keep their MIP
    start and the no-storage-limit bound). HiGHS also never runs in this process, so its
    global thread scheduler is never inherited by a fork.
    """
    global _FORKED_CALL
    if deadline is not None and deadline <= time.monotonic():
        return MilpOutcome(data.rate_model, "time_limit", "no time left", None, None, None,
                           message="not solved: its deadline had passed")
    import pyomo.environ  # noqa: F401  (imported once here, shared with the forked process)
    from pyomo.contrib.appsi.solvers import Highs  # noqa: F401

    from fgamcd_opt.workers import process_pool, terminate_pool

    t0 = time.perf_counter()
    _FORKED_CALL = (data, n_blocks, time_limit_s, mip_gap, threads, warm_start,
                    capacity_slack_bytes, seed, deadline)
    pool = process_pool(1, "fork")
    try:
        fut = pool.submit(_forked_solve)
        _FORKED_CALL = None
        timeout = None if deadline is None else max(
            0.0, deadline - time.monotonic()) + MILP_KILL_GRACE_S
        try:
            out = fut.result(timeout=timeout)
        except FutureTimeout:
            terminate_pool(pool)
            out = MilpOutcome(data.rate_model, "time_limit", "killed", None, None, None,
                              message="stopped at its deadline while building or solving "
                                      "(solver process killed)")
            out.build_time_s = time.perf_counter() - t0
        except Exception as exc:  # the solver process died: reported, not raised
            out = MilpOutcome(data.rate_model, "error", "", None, None, None,
                              message=f"solver process failed: {type(exc).__name__}: {exc}")
    finally:
        _FORKED_CALL = None
        pool.shutdown(wait=True, cancel_futures=True)
    if out.assignment is not None:  # rebuilt here: the caller's data, not the child's copy
        out.assignment = complete(data, out.assignment.holds)
    if out.inconsistent and warm_start is not None and warm_start.feasible:
        # HiGHS's incumbent is not the solution it returned: solve again without the start;
        # the better completion is kept, and the re-solve's dual bound if that run is
        # consistent (else the lower of the two)
        again = solve_milp(data, n_blocks, time_limit_s, mip_gap, threads, None,
                           capacity_slack_bytes, seed, deadline)
        if again.inconsistent or again.dual_bound_s is None:
            duals = [d for d in (out.dual_bound_s, again.dual_bound_s) if d is not None]
            again.dual_bound_s = min(duals) if len(duals) == 2 else None
        again.inconsistent = True
        again.message = "; ".join(filter(None, [again.message, (
            f"re-solved without the MIP start: HiGHS reported {out.objective_s:.6g} s with "
            f"it but returned a solution of another value")]))
        if again.assignment is None or (out.assignment is not None and
                                        out.assignment.objective_s < again.assignment.objective_s):
            again.assignment = out.assignment
        if again.assignment is not None:
            again.objective_s = again.assignment.objective_s
        again.build_time_s += out.build_time_s
        again.load_time_s += out.load_time_s
        again.solve_time_s += out.solve_time_s
        return again
    return out


def _forked_solve() -> MilpOutcome:
    return _solve_milp_here(*_FORKED_CALL)


def _solve_milp_here(data: MilpData, n_blocks: int, time_limit_s: float, mip_gap: float,
                     threads: int, warm_start: Assignment | None, capacity_slack_bytes: float,
                     seed: int, deadline: float | None) -> MilpOutcome:
    """:func:`solve_milp`'s work, in the solver process."""
    import pyomo.environ as pyo
    from pyomo.common.timing import HierarchicalTimer
    from pyomo.contrib.appsi.base import TerminationCondition as TC
    from pyomo.contrib.appsi.solvers import Highs

    t0 = time.perf_counter()
    mdl = build_model(data, capacity_slack_bytes)
    build_time = time.perf_counter() - t0
    out = MilpOutcome(data.rate_model, "error", "", None, None, None, build_time_s=build_time)
    out.n_binaries = len(mdl.A)
    out.n_variables = sum(len(v) for v in (mdl.A, mdl.B, mdl.X, mdl.Y, mdl.W))
    out.n_constraints = sum(len(c) for c in (
        mdl.storage, mdl.validity, mdl.choice, mdl.holder, mdl.participation, mdl.one_copy,
        mdl.useful_migration, mdl.overflow_member, mdl.overflow_size))
    if not data.blocks:
        out.status, out.termination = "optimal", "empty"
        out.objective_s = out.dual_bound_s = 0.0
        out.assignment = complete(data, np.zeros((data.n_nodes, n_blocks), dtype=bool))
        return out

    opt = Highs()
    if not opt.available():
        out.message = "HiGHS (highspy) is not available"
        return out
    opt.config.load_solution = False
    opt.config.stream_solver = False
    limit = float(time_limit_s)
    if deadline is not None:
        limit = min(limit, deadline - time.monotonic())
    opt.config.time_limit = max(limit, 0.01)
    opt.config.mip_gap = float(mip_gap)
    _use_threads(int(threads))
    opt.highs_options = {"threads": int(threads), "random_seed": int(seed)}
    if warm_start is not None and warm_start.feasible:
        _set_start(mdl, data, warm_start)
        opt.config.warmstart = True
        out.warm_start = True
        out.warm_start_objective_s = warm_start.objective_s
    timer = HierarchicalTimer()
    try:
        res = opt.solve(mdl, timer=timer)
        if res.termination_condition == TC.unknown and res.best_feasible_objective is None:
            # another HiGHS user in this process sized the thread scheduler differently
            import highspy

            highspy.Highs.resetGlobalScheduler(True)
            res = opt.solve(mdl, timer=timer)
    except Exception as exc:  # a HiGHS/pyomo failure is reported, not raised
        out.message = f"{type(exc).__name__}: {exc}"
        return out
    out.load_time_s = _timer_total(timer, "set_instance")
    out.solve_time_s = _timer_total(timer, "optimize")
    tc = res.termination_condition
    out.termination = tc.name
    out.dual_bound_s = _finite(res.best_objective_bound)
    has_sol = res.best_feasible_objective is not None
    if has_sol:
        opt.load_vars()
        out.objective_s = float(res.best_feasible_objective)
        loaded = pyo.value(mdl.obj, exception=False)
        out.inconsistent = loaded is None or abs(float(loaded) - out.objective_s) > \
            INCONSISTENT_RTOL * max(abs(out.objective_s), 1e-12)
        holds = _read_holds(mdl, data, n_blocks)
        out.assignment = complete(data, holds)
    if tc == TC.optimal:
        out.status = "optimal"
    elif tc == TC.maxTimeLimit:
        out.status = "time_limit"
    elif tc in (TC.infeasible, TC.infeasibleOrUnbounded):
        out.status = "infeasible"
    elif has_sol:
        out.status = "time_limit" if tc in (TC.maxIterations, TC.objectiveLimit) else "error"
    else:
        out.status = "no_solution"
    if out.status in ("optimal",) and out.dual_bound_s is None and out.objective_s is not None:
        out.dual_bound_s = out.objective_s
    return out


_SCHEDULER_THREADS: int | None = None


def _use_threads(threads: int) -> None:
    """HiGHS keeps one global thread scheduler per process, sized by the first run: a later run
    asking for another thread count fails at once (model status 'not set'). Reset it then."""
    global _SCHEDULER_THREADS
    if _SCHEDULER_THREADS is not None and _SCHEDULER_THREADS != threads:
        import highspy

        highspy.Highs.resetGlobalScheduler(True)
    _SCHEDULER_THREADS = threads


def _timer_total(timer, name: str) -> float:
    try:
        return float(timer.get_total_time(name))
    except (KeyError, AttributeError, RuntimeError):
        return 0.0


def _finite(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def certified_bound(outcome: MilpOutcome | None, data: MilpData) -> float | None:
    """Certified lower bound on the total delay (seconds) from the optimistic model: the larger
    of HiGHS's dual bound and :func:`trivial_bound` (valid even when HiGHS stops before its
    root bound), minus the numerical safety margin. None for a non-optimistic model."""
    if data.rate_model != "optimistic":
        return None
    lb = trivial_bound(data)
    if outcome is not None and outcome.dual_bound_s is not None:
        lb = max(lb, outcome.dual_bound_s)
    if not np.isfinite(lb):
        return None
    return max(0.0, lb - BOUND_SAFETY_RTOL * abs(lb))


def trivial_bound(data: MilpData) -> float:
    """sum_k min_S D_k(S) in seconds: the MILP without storage limits (every node holds every
    PB, no migration). With optimistic data a valid bound, never stronger than the MILP's."""
    total = 0.0
    for o in data.blocks:
        best = float(o.cost_s.min()) if o.n_clusters else np.inf
        if o.overflow_min_nodes:
            best = min(best, o.overflow_cost_s)
        total += best
    return total


def storage_infeasibility(inst: Instance, data: MilpData) -> str:
    """A human reason why the PBs of ``data`` cannot each be cached at least once ('' if no
    simple reason is found)."""
    sizes = np.array([o.size_bytes for o in data.blocks], dtype=np.int64)
    cap = inst.nodes.storage_bytes
    if sizes.sum() > cap.sum():
        return (f"requested PBs need {int(sizes.sum())} B to be cached once, total storage is "
                f"{int(cap.sum())} B; some requested PB cannot be held by any node")
    return ""


def assignment_plan(inst: Instance, data: MilpData, asg: Assignment, solver: str = "milp"
                    ) -> Plan:
    """A plan from an oracle-model assignment: cache, migrations, and per PB the chosen option's
    transmissions with the oracle's beams (one broadcast unit, or one unicast unit per user)."""
    if data.rate_model != "oracle":
        raise ValueError("only oracle-model assignments carry beams")
    by_block = {o.block: o for o in data.blocks}
    cache = [set(int(k) for k in np.flatnonzero(asg.holds[n])) for n in range(inst.n_nodes)]
    migrations, units = [], []
    for ch in asg.choices:
        o = by_block[ch.block]
        migrations.extend(ch.migrations)
        results = o.units[ch.index]
        for res in results:
            mode = "unicast" if len(results) > 1 and len(res.users) == 1 else "broadcast"
            units.append(DeliveryUnit(ch.block, res.users, res.nodes, mode=mode,
                                      beams=res.beams, beamforming=res.method))
    return Plan(cache=cache, migrations=migrations, units=units, solver=solver)
