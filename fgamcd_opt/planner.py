"""The shared delivery planner: given what nodes cache, choose for each requested PB its
participating nodes (cached or migrated in) and beams from the oracle.

The paper optimises TrimCaching's and TDMA's "migration and beamforming through our proposed
approach"; this is the common, non-learned version of that stage, so that solvers which only
decide caching get a strong, identical delivery.

Cluster growth for one transmission of PB k to users V (deterministic):
1. evaluate the best single holders (ranked by the rate bound of bounds.py, the top
   ``screen`` of them with the oracle) and keep the best;
2. repeatedly try to add a node m: free if m caches k (or already received it), else migrated from
   the holder with the fastest backhaul (8 S / R^bac_{s,m}(k)). Candidates are ranked by a lower
   bound on the resulting delay (migration + 8 S / rate bound of the enlarged cluster); those that
   cannot beat the current delay (nor newly meet QoS) are skipped without an oracle call. Add the
   best candidate if it improves (QoS met first, then delay); stop otherwise or at ``max_cluster``.
The comparison key is (QoS violated, users at rate 0, migration + broadcast delay): the paper's
QoS is a hard constraint, delay the objective. There is no fixed cap on the cluster size by
default (``max_cluster=0``): growth stops when no node can lower the delay, judged first by the
rate bound (no oracle call for a node that cannot help).

Partial groups (``plan_partition``, used by ``plan_transmissions``): the requesters of a PB are
partitioned into groups sent one after another, each with its own cluster and beams (the PB's
delay is the sum of the groups' delays, docs/model.md eq. 7 with several transmissions). For up
to ``PlannerOptions.exact_users`` requesters the search is exact over partitions with respect to
the per-group planner: a DP over subsets whose group costs are lower bounds (per-user rate bound
from every node that can get the PB, no migration) until a group is planned; the DP's optimal
partition is re-solved after planning its unplanned groups, until all its groups are planned (then
no other partition can be better: every other one costs at least its lower bound). Costs order
QoS first (a group that misses a floor costs ``QOS_PENALTY_S`` more), then zero-rate users, then
delay.

Large groups (more than ``exact_users`` requesters, ``_PartitionSearch``): the best of the
obvious partitions (one group; one group per requested model, as coarse delivers; one per
serving cell, as the no-cooperation baseline delivers; singletons; ``hints``, e.g. the partition
chosen for an earlier PB with the same requesters; up to 10 requesters also the bottleneck-move
heuristic ``_greedy_partition``), each evaluated group by group and dropped as soon as the rate
lower bounds prove it no better than the incumbent; then a local search (merge two groups, move
a group's bottleneck user elsewhere or alone, tried in order of a saving estimate, first
improvement kept, within ``search_plans`` new groups) and finally the cheapest exact cover of the
requesters by all groups scored (set partitioning). The result never costs more than any of the
obvious partitions. On llm-7b-calibrated seed 0, where 29 frozen PBs have all 30 users as
requesters, trimcaching's plan had 672 units, 564 of them to a single user, under the previous
heuristic (one group, bottleneck users peeled off); now 141 units, 24 to a single user, and
two groups of ~15 users per frozen PB (delay 4.10 -> 1.16 s; docs/milp.md section 7).

Second pass (``second_pass``, in ``plan_broadcast`` and milp's primal): the local search ends in
different splits of the same requesters from one PB to the next, so each PB of a requester set
above SEARCH_GREEDY_MAX_USERS is planned again with the set's SECOND_PASS_HINTS cheapest
first-pass partitions as candidates (no new local search), and the cheaper plan is kept per PB;
the first pass searches those PBs without the previous PB's partition as a seed
(``PartitionHints``), so the pool is diverse. The MAASN-DA rollout's delivery has the same
second pass (``FgamcdParallelEnv.deliver_pending``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from .bounds import link_amplitude_bound
from .group_bound import best_partition
from .instance import Instance
from .locality import useful
from .oracle import BeamformingOracle, BeamResult
from .plan import DeliveryUnit, Migration
from .rates import rate_from_amplitude, transfer_delay_s
from .solver import SolveStatus
from .workers import map_blocks

MESSAGE_USERS = 50  # users named in a message (the rest counted)
QOS_PENALTY_S = 1e6  # partition search: a group that misses QoS costs this much more (QoS first)
SEARCH_GREEDY_MAX_USERS = 10  # large-group search: also the bottleneck-move heuristic up to here
SECOND_PASS_HINTS = 6  # second_pass: the cheapest distinct partitions of a requester set offered


@dataclass(frozen=True)
class PlannerOptions:
    max_cluster: int = 0  # most nodes in one transmission (0: no cap, growth stops by bound)
    migration: bool = True  # allow migrating PBs to non-holders
    method: str | None = None  # oracle method (None: the oracle's default)
    screen: int = 2  # single holders solved with the oracle (best by rate bound)
    candidates_per_round: int = 3  # growth candidates solved with the oracle per round
    split_zero_rate: bool = True  # serve users a common beam cannot reach in separate units
    partition: bool = True  # plan_transmissions: best partition into sequential groups
    exact_users: int = 4  # partition search exact (DP with bounds) up to this many requesters
    max_group_plans: int = 16  # most groups planned with the oracle per PB (exact search)
    # larger groups (_PartitionSearch): most new groups scored by its local search per PB
    # (0: 2 x requesters + 16)
    search_plans: int = 0
    # every transmission uses all nodes that hold or received the PB, no growth (full-comp's rule)
    use_all_free: bool = False
    # migrations a caller offers for this PB, as (destination, source) pairs: MAASN-DA's
    # b_{n,m}. The planner adds such a node only where its copy's migration delay
    # 8 S / R^bac_{src,dst} pays for itself, like any migration; with ``migration`` on, the
    # general rule (fastest holder) applies to every node instead.
    offered: tuple[tuple[int, int], ...] = ()
    # requester sets above this size are planned in neighbourhoods of at most this many users
    # (locality.neighbourhoods; 0: never split)
    local_group: int = 64
    # large-group search: a group scored by the free-node broadcast starts its SCA from the
    # beams of the scored group sharing the most users (oracle ``start``), racing one
    # deterministic start instead of three (docs/model.md section 12)
    parent_start: bool = True


@dataclass
class GroupDelivery:
    block: int
    users: tuple[int, ...]
    nodes: tuple[int, ...]
    migrations: list[Migration]
    beam: BeamResult
    migration_s: float
    broadcast_s: float

    @property
    def total_s(self) -> float:
        return self.migration_s + self.broadcast_s

    @property
    def key(self) -> tuple:
        # QoS first, then fewer users at rate 0 (whose delay is infinite), then delay
        return (not self.beam.qos_feasible, len(self.beam.zero_rate_users), self.total_s)


class BlockData:
    """Per-PB quantities shared by every group of that PB (bounds over its requesters,
    backhaul)."""

    def __init__(self, inst: Instance, k: int):
        self.k = k
        self.size_bytes = int(inst.repository.sizes[k])
        req = inst.requesters(k)
        self.column = {int(u): i for i, u in enumerate(req)}
        self.link = link_amplitude_bound(inst, k, req)  # (N, requesters) sqrt(W)
        self.backhaul = inst.backhaul_rates(k)


def plan_group(inst: Instance, k: int, users, holders, oracle: BeamformingOracle,
               options: PlannerOptions = PlannerOptions(), received=(), sources=None,
               block_data: BlockData | None = None) -> GroupDelivery | None:
    """Participating nodes, migrations and beams for one transmission of PB k to ``users``.

    holders: nodes that cache k; received: nodes that already got k by migration (free, but not
    migration sources); sources: allowed migration sources (default: holders). Returns None when
    no node can transmit k.
    """
    users = tuple(int(u) for u in users)
    holders = tuple(int(n) for n in holders)
    free = set(holders) | {int(n) for n in received}
    sources = holders if sources is None else tuple(int(n) for n in sources)
    offered = {int(d): int(s) for d, s in options.offered if int(d) not in free}
    if not free:
        return None
    bd = block_data or BlockData(inst, k)
    noise = inst.users.noise_w[list(users)]
    qos = inst.users.qos_bps[list(users)]
    link = bd.link[:, [bd.column[u] for u in users]]

    def rate_bound(cluster) -> np.ndarray:
        return rate_from_amplitude(link[list(cluster)].sum(axis=0), noise, inst.bandwidth_hz)

    def solve(cluster, migs, mig_s, warm=None) -> GroupDelivery:
        cluster = tuple(sorted(cluster))
        res = oracle.solve(inst, k, cluster, users, method=options.method, warm=warm)
        return GroupDelivery(k, users, cluster, list(migs), res, mig_s,
                             transfer_delay_s(bd.size_bytes, res.min_rate_bps))

    if options.use_all_free:
        return solve(tuple(free), [], 0.0)

    # 1. best single node among the free ones (solved in the order of their rate bounds; the
    # rest are skipped once one is found that no later one can beat, by the bounds)
    bounds = {n: rate_bound((n,)) for n in free}
    singles = sorted(free, key=lambda n: -bounds[n].min())[: max(options.screen, 1)]
    best = None
    for i, n in enumerate(singles):
        g = solve((n,), [], 0.0)
        if best is None or g.key < best.key:
            best = g
        if i + 1 < len(singles):
            nxt = bounds[singles[i + 1]]
            if _unbeatable(best, bool(np.all(nxt >= qos * (1 - 1e-9))),
                           transfer_delay_s(bd.size_bytes, nxt.min())):
                break

    # 2. growth, over the nodes within reach: a node whose link bound is zero for every user of
    # the group can only lower their worst-case rates (locality.py), so it is never a candidate;
    # not past the oracle's deadline (each call on a huge group draws its channels)
    cap = inst.n_nodes if options.max_cluster <= 0 else min(options.max_cluster, inst.n_nodes)
    reach = useful(link)
    can_migrate = bool(options.migration and sources)
    mig_cost = np.full(inst.n_nodes, np.inf)
    mig_src = np.zeros(inst.n_nodes, dtype=np.int64)
    if can_migrate:
        # fastest source per destination and its migration delay, for every node at once
        src_rates = bd.backhaul[list(sources)]  # (S, N)
        mig_src = np.asarray(sources, dtype=np.int64)[np.argmax(src_rates, axis=0)]
        mig_cost = transfer_delay_s(bd.size_bytes, src_rates.max(axis=0))
    else:
        for d, src in offered.items():  # MAASN-DA's offered copies, priced like migrations
            mig_src[d] = src
            mig_cost[d] = transfer_delay_s(bd.size_bytes, float(bd.backhaul[src, d]))
    while len(best.nodes) < cap and not _late(oracle):
        ms = [m for m in np.flatnonzero(reach).tolist() if m not in best.nodes
              and (m in free or can_migrate or m in offered)]
        cands = []
        if ms:
            # rate bounds of every enlarged cluster (best.nodes, m): the cluster's rows summed
            # in that order, then row m (the same sums as for the cluster tuple)
            base = link[list(best.nodes)].sum(axis=0)
            ub = rate_from_amplitude(base[None, :] + link[ms], noise[None, :],
                                     inst.bandwidth_hz)  # (C, v)
            cost = np.array([0.0 if m in free else mig_cost[m] for m in ms])
            lb = best.migration_s + cost + transfer_delay_s(bd.size_bytes, ub.min(axis=1))
            meets = np.all(ub >= qos[None, :] * (1 - 1e-9), axis=1)
            qos_now = best.beam.qos_feasible
            for i, m in enumerate(ms):
                if (qos_now and (lb[i] >= best.total_s or not meets[i])) or (
                        not qos_now and not meets[i] and lb[i] >= best.total_s):
                    continue
                mig = None if m in free else Migration(int(mig_src[m]), m, k)
                cands.append((not bool(meets[i]), float(lb[i]), m, float(cost[i]), mig))
        if not cands:
            break
        cands.sort()
        cands = cands[: options.candidates_per_round]
        cand = None
        for i, (_, _, m, cost, mig) in enumerate(cands):
            migs = best.migrations + ([mig] if mig else [])
            # warm-started from the current cluster's beams: never below its rate
            g = solve((*best.nodes, m), migs, best.migration_s + cost, warm=best.beam)
            if cand is None or g.key < cand.key:
                cand = g
            # candidates come in the order of their lower bounds: stop once none left can win
            if i + 1 < len(cands) and _unbeatable(cand, not cands[i + 1][0], cands[i + 1][1]):
                break
        if _improves(cand, best):
            best = cand
        else:
            break
    return best


def _improves(g: GroupDelivery, than: GroupDelivery) -> bool:
    """``g``'s key is smaller than ``than``'s, its delay by more than rounding (1e-9 relative):
    a node that adds nothing (its beam silent, the subset's beams padded) is not kept for a
    last-bit difference, which the BLAS threads of the process could flip (the same plan on
    every executor)."""
    if g.key[:2] != than.key[:2]:
        return g.key[:2] < than.key[:2]
    return g.total_s < than.total_s * (1 - 1e-9)


def _unbeatable(g: GroupDelivery, could_meet_qos: bool, lower_s: float) -> bool:
    """True when a transmission whose rate bound allows ``could_meet_qos`` and whose delay is at
    least ``lower_s`` cannot have a smaller key than ``g`` (QoS met, nobody at rate 0, and a
    delay no larger than that lower bound; or QoS met where the other cannot meet it), so
    solving it with the oracle is useless."""
    if g.beam.qos_feasible and not g.beam.zero_rate_users:
        return not could_meet_qos or g.total_s <= lower_s
    return False


@dataclass
class DeliveryResult:
    units: list[DeliveryUnit] = field(default_factory=list)
    migrations: list[Migration] = field(default_factory=list)
    undeliverable: dict[int, tuple[int, ...]] = field(default_factory=dict)  # PB -> users
    # PB -> (users below their QoS floor in the chosen groups, why no choice meets it)
    qos_unmet: dict[int, tuple[tuple[int, ...], str]] = field(default_factory=dict)
    # PBs planned with the quick fallback because the time limit had passed (ctx.should_stop)
    hurried: list[int] = field(default_factory=list)
    # PBs not planned at all: FALLBACK_S past the time limit (ctx.must_stop), left undelivered
    skipped: list[int] = field(default_factory=list)

    @property
    def solve_status(self) -> SolveStatus:
        """``time_limit`` when the limit cut the search short, else ``feasible``."""
        return SolveStatus.TIME_LIMIT if self.hurried or self.skipped else SolveStatus.FEASIBLE

    def time_limit_message(self) -> str:
        """'' unless the time limit cut the search short, else how many PBs it affected."""
        if not self.hurried and not self.skipped:
            return ""
        text = (f"time limit reached: {len(self.hurried)} PB(s) planned with the quick fallback "
                "(one node, MRT beams, no partition search)")
        if self.skipped:
            text += f", {len(self.skipped)} PB(s) not planned (left undelivered)"
        return text

    def skip(self, k: int, users) -> None:
        """Leave PB k unplanned (out of time): its requesters are undelivered (kept as an
        array: a huge instance skips 1.6e7 (user, PB) pairs)."""
        if int(k) not in self.skipped:
            self.skipped.append(int(k))
        self.undeliverable[int(k)] = np.asarray(users, dtype=np.int64)

    def qos_message(self, inst: Instance) -> str:
        """'' when every planned group meets QoS, else which users miss it and why."""
        if not self.qos_unmet:
            return ""
        parts = [f"PB {inst.repository.blocks[k].id}: "
                 + ", ".join(inst.users.ids[u] for u in us) + f" ({why})"
                 for k, (us, why) in sorted(self.qos_unmet.items())]
        return "QoS not met: " + "; ".join(parts)

    def note_qos(self, inst: Instance, k: int, parts, holders, migration: bool = True) -> None:
        """Record the users of ``parts`` (groups of PB k) below QoS, with the reason: either
        their rate bound from every node that can get k is below Q_u (no plan can meet it), or
        the planner's search found no group/cluster meeting it (a heuristic's limit)."""
        bad = {u for g in parts for u in g.beam.qos_infeasible_users}
        if not bad:
            return
        bad = sorted(bad | set(self.qos_unmet.get(int(k), ((), ""))[0]))
        nodes = np.arange(inst.n_nodes) if migration else np.asarray(holders, dtype=int)
        link = link_amplitude_bound(inst, k, bad)[nodes].sum(axis=0)
        ub = rate_from_amplitude(link, inst.users.noise_w[bad], inst.bandwidth_hz)
        hopeless = [u for u, r in zip(bad, ub, strict=True)
                    if r < inst.users.qos_bps[u] * (1 - 1e-9)]
        why = ("rate bound below Q_u even alone from every node that can get the PB: no plan "
               "meets it" if len(hopeless) == len(bad) else
               "no group/cluster choice the planner tried meets it")
        self.qos_unmet[int(k)] = (tuple(bad), why)

    def message(self, inst: Instance) -> str:
        """Undelivered users, QoS shortfalls and a time-limit cut, for a solver's result
        message."""
        return "; ".join(filter(None, [self.undelivered_message(inst), self.qos_message(inst),
                                       self.time_limit_message()]))

    def undelivered_message(self, inst: Instance) -> str:
        """'' when every requester is served, else which PBs and users are not (for the
        solver's result message: undelivered users are reported, never dropped silently)."""
        users = np.unique(np.concatenate([np.asarray(us, dtype=np.int64).ravel()
                                          for us in self.undeliverable.values()]
                                         or [np.zeros(0, dtype=np.int64)])).tolist()
        if not users:
            return ""
        nowhere = len(set(self.undeliverable) - set(self.skipped))
        what = "; ".join(filter(None, [
            f"{nowhere} requested PB(s) cached nowhere" if nowhere else "",
            f"{len(self.skipped)} PB(s) not planned in time" if self.skipped else ""]))
        listed = ", ".join(inst.users.ids[u] for u in users[:MESSAGE_USERS])
        more = f" and {len(users) - MESSAGE_USERS} more" if len(users) > MESSAGE_USERS else ""
        return f"{what}; users not fully served: {listed}{more}"

    def add(self, g: GroupDelivery, mode: str = "broadcast", slot=None, model=None,
            beamforming=None):
        self.units.append(DeliveryUnit(g.block, g.users, g.nodes, mode=mode, slot=slot,
                                       model=model, beams=g.beam.beams, beamforming=beamforming))
        have = {(m.src, m.dst, m.block) for m in self.migrations}
        for m in g.migrations:
            if (m.src, m.dst, m.block) not in have:
                self.migrations.append(m)


def _partition_cost(g: GroupDelivery | None) -> float:
    """Scalar version of GroupDelivery.key for the partition DP: QoS first, then users at rate 0,
    then delay (a group at rate 0 costs its zero-rate users, not an infinite delay, so that the
    DP still compares partitions that all contain one)."""
    if g is None:
        return np.inf
    t = g.total_s if np.isfinite(g.total_s) else 0.0
    return t + QOS_PENALTY_S * (not g.beam.qos_feasible) \
        + 1e3 * QOS_PENALTY_S * len(g.beam.zero_rate_users)


def plan_partition(inst: Instance, k: int, users, holders, oracle: BeamformingOracle,
                   options: PlannerOptions = PlannerOptions(), received=(), sources=None,
                   block_data: BlockData | None = None, hints=None,
                   report: dict | None = None) -> list[GroupDelivery]:
    """The requesters ``users`` of PB k split into groups sent one after another, each planned
    by :func:`plan_group` (module docstring: exact DP with bounds up to ``options.exact_users``
    requesters, :class:`_PartitionSearch` above). ``hints``: partitions (lists of user groups)
    worth trying first, e.g. the one chosen for an earlier PB with the same requesters (only
    the large-group search uses them). ``report``: a dict that receives, under
    ``"candidates"``, every candidate partition the large-group search scored completely (lists
    of GroupDelivery; the MILP offers them as options). Returns the groups ([] when no node can
    transmit k)."""
    users = tuple(int(u) for u in users)
    bd = block_data or BlockData(inst, k)
    received = {int(n) for n in received}
    n = len(users)
    plans: dict[int, GroupDelivery | None] = {}

    def members(mask: int) -> tuple[int, ...]:
        return tuple(users[i] for i in range(n) if mask >> i & 1)

    def plan(mask: int) -> GroupDelivery | None:
        if mask not in plans:
            plans[mask] = plan_group(inst, k, members(mask), holders, oracle, options,
                                     received=received, sources=sources, block_data=bd)
        return plans[mask]

    full = (1 << n) - 1
    if n > options.exact_users:
        # the search scores groups itself (one oracle call per group when every useful node
        # is free) and plans the whole group only as one of its candidates
        search = _PartitionSearch(inst, k, users, holders, oracle, options, received, sources,
                                  bd, plans, plan)
        groups = search.run(hints)
        if report is not None:
            report["candidates"] = [[search.best[m] for m in c] for c in search.complete
                                    if all(search.best.get(m) is not None for m in c)]
        if not groups:
            return []
        parts = [search.best[g] for g in groups]
        plans.update({g: search.best[g] for g in groups})
        replan = not search.cheap
    else:
        whole = plan(full)
        if whole is None:
            return []
        if n == 1:
            return [whole]
        # per-user lower bound on any group's delay: every node that can get the PB, no
        # migration
        single_lb = _single_lower_bounds(inst, bd, users, holders, received, sources,
                                         options)

        def lower(mask: int) -> float:
            return float(max(single_lb[i] for i in range(n) if mask >> i & 1))

        while True:
            _, groups = best_partition(
                n, lambda m: _partition_cost(plans[m]) if m in plans else lower(m))
            todo = [g for g in groups if g not in plans]
            if not todo or len(plans) + len(todo) > options.max_group_plans:
                break
            for g in todo:
                plan(g)
        _, groups = best_partition(n, lambda m: _partition_cost(plans.get(m)))
        parts = [plans[g] for g in groups]
        replan = False
    if len(parts) > 1 and (replan or any(p.migrations for p in parts)):
        # send the groups in turn, a later group reusing copies migrated for an earlier one
        # (without migrations, and with every node free or plan_group's own groups, re-planning
        # gives the same groups: skipped, it costs ~12 oracle calls per large group)
        seq, got = [], set(received)
        for g in sorted(groups, key=lambda m: -bin(m).count("1")):
            p = plan_group(inst, k, members(g), holders, oracle, options, received=got,
                           sources=sources, block_data=bd)
            seq.append(p)
            got |= {m.dst for m in p.migrations}
        if sum(map(_partition_cost, seq)) < sum(map(_partition_cost, parts)):
            parts = seq
    return _split_unreachable(inst, k, parts, holders, oracle, options, received, sources, bd)


def _late(oracle) -> bool:
    """Past the oracle's deadline (a time-limited solve's hard stop, set by the runner): stop
    splitting and improving groups; the users not covered yet are left undelivered."""
    deadline = getattr(oracle, "deadline", None)
    return deadline is not None and time.monotonic() > deadline


def _single_lower_bounds(inst, bd, users, holders, received, sources, options) -> np.ndarray:
    """(len(users),) seconds: each user's delay alone at its rate bound from every node that
    can get the PB (no migration cost): a lower bound on any group holding it (QoS_PENALTY
    scale where the bound is 0)."""
    can = set(int(h) for h in holders) | set(received) | {int(d) for d, _ in options.offered}
    if options.migration and (sources is None or len(sources)):
        can = set(range(inst.n_nodes))
    link = bd.link[np.ix_(sorted(can), [bd.column[u] for u in users])]
    lb = transfer_delay_s(bd.size_bytes, rate_from_amplitude(
        link.sum(axis=0), inst.users.noise_w[list(users)], inst.bandwidth_hz))
    return np.where(np.isfinite(lb), lb, 1e3 * QOS_PENALTY_S)


def _split_unreachable(inst, k, parts, holders, oracle, options, received, sources, bd):
    """Users a group's common beam leaves at worst-case rate 0 are served alone (robust MRT,
    the single-user optimum) and the rest of the group re-planned, as without partitions; kept
    where that lowers the partition cost. The greedy partition search (large groups) can miss
    such splits; a zero-rate member makes the whole plan incomplete."""
    if not options.split_zero_rate:
        return parts
    out = []
    for p in parts:
        dead = set(p.beam.zero_rate_users) if p is not None else set()
        if not dead or len(p.users) == 1 or _late(oracle):
            out.append(p)
            continue
        alive = tuple(u for u in p.users if u not in dead)
        pieces = []
        if alive:
            pieces += plan_partition(inst, k, alive, holders, oracle, options, received,
                                     sources, bd)
        for u in sorted(dead):
            if _late(oracle):
                pieces.append(None)  # out of time: keep the common group
                break
            pieces.append(plan_group(inst, k, (u,), holders, oracle, options,
                                     received=received, sources=sources, block_data=bd))
        if not pieces or any(q is None for q in pieces):
            out.append(p)
            continue
        # copies p migrated that the other groups use stay (they are sent in turn)
        others = [q for q in parts if q is not p]
        needed = ({n for q in others for n in q.nodes} - {int(h) for h in holders}
                  - {int(n) for n in received} - {m.dst for q in others for m in q.migrations}
                  - {m.dst for q in pieces for m in q.migrations})
        keep = [m for m in p.migrations if m.dst in needed]
        if keep:
            pieces[0].migrations = [*pieces[0].migrations, *keep]
            pieces[0].migration_s += float(sum(
                transfer_delay_s(bd.size_bytes, bd.backhaul[m.src, m.dst]) for m in keep))
        if sum(map(_partition_cost, pieces)) < _partition_cost(p):
            out.extend(pieces)
        else:
            out.append(p)
    return out


class _PartitionSearch:
    """The partition search for more than ``PlannerOptions.exact_users`` requesters (module
    docstring, "Large groups").

    Groups are scored by the oracle: the better of plan_group's delivery and the broadcast from
    every free node (holding the PB or having received it) useful to the group, one more
    oracle call that needs no migration and that plan_group's growth from one node can miss
    (a group spread over several cells leaves users at rate 0 from any single node). When
    every node useful to the PB is free, the search scores a group by that broadcast alone
    (one oracle call instead of ~12: beams from a subset are beams of that set with some nodes
    silent, so growth only finds local optima the SCA missed; on llm-7b-calibrated seed 1 it
    never gained more than 0.01% on the chosen groups of 6-15 users and lost on 37 of 69), and
    plans with plan_group as well the chosen groups of at most SEARCH_GREEDY_MAX_USERS users
    and the groups of the bottleneck-move heuristic (there growth does gain: up to 12% on
    7-user groups of paper-default). Then:

    1. candidates: one group; per requested model (coarse's delivery); per serving cell (the
       no-cooperation delivery); singletons; ``hints``; the bottleneck-move heuristic from one
       group (up to SEARCH_GREEDY_MAX_USERS requesters). A candidate is evaluated group by group
       and dropped as soon as its scored groups plus the rate lower bounds of the rest reach the
       incumbent's cost;
    2. local search from the best: merge two groups, or move a group's bottleneck user (its
       lowest rate) into another group or alone, tried in order of a saving estimate (the
       smaller group's cost times the overlap of the groups' strong nodes), pruned by the
       same lower bounds, first improvement accepted, until no move improves or
       ``options.search_plans`` new groups were scored;
    3. the best exact cover of the requesters by the scored groups (a set-partitioning MILP,
       HiGHS through scipy), kept if it beats the incumbent.

    The result never costs more than any candidate (every candidate is evaluated or proven no
    better by its lower bound). Costs are ``_partition_cost`` (QoS first, then zero-rate users,
    then migration + broadcast delay)."""

    def __init__(self, inst, k, users, holders, oracle, options, received, sources, bd,
                 plans, plan):
        self.inst, self.k, self.users = inst, int(k), users
        self.n = len(users)
        self.oracle, self.options, self.bd = oracle, options, bd
        self.plan = plan
        self.free = sorted({int(h) for h in holders} | set(received))
        self.best: dict[int, GroupDelivery | None] = {}
        self.complete: list[list[int]] = []  # candidate partitions scored completely
        self.unplanned: set[int] = set()  # scored by the free-node broadcast alone
        self.evals = 0
        link = bd.link[:, [bd.column[u] for u in users]]  # (N, n) sqrt(W)
        self.link = link
        useful = np.flatnonzero(link.sum(axis=1) > 0)
        cap = options.max_cluster
        self.cheap = (not options.use_all_free and set(useful.tolist()) <= set(self.free)
                      and (cap <= 0 or len(useful) <= cap))
        self.alt = not options.use_all_free and len(self.free) >= 2
        self.single_lb = _single_lower_bounds(inst, bd, users, holders, received, sources,
                                              options)
        unit = link / np.maximum(np.linalg.norm(link, axis=0, keepdims=True), 1e-300)
        self.unit = unit  # per user: the direction of its link strengths over the nodes

    # ---- scoring ------------------------------------------------------------------------
    def members(self, mask: int) -> tuple[int, ...]:
        return tuple(self.users[i] for i in range(self.n) if mask >> i & 1)

    def idx(self, mask: int) -> list[int]:
        return [i for i in range(self.n) if mask >> i & 1]

    def lower(self, mask: int) -> float:
        return float(self.single_lb[self.idx(mask)].max())

    def cost(self, mask: int) -> float:
        return _partition_cost(self.best.get(mask)) if mask in self.best else np.inf

    def _parent(self, mask: int) -> BeamResult | None:
        """The scored group sharing the most users with ``mask`` (at least two; then the
        smallest difference), at a positive rate: its beams start the SCA of ``mask``."""
        best, best_key = None, (1, 0)
        for m, g in self.best.items():
            if g is None or m == mask or g.beam.min_rate_bps <= 0:
                continue
            key = (bin(m & mask).count("1"), -bin(m ^ mask).count("1"))
            if key > best_key:
                best, best_key = g.beam, key
        return best

    def _free_broadcast(self, mask: int) -> GroupDelivery | None:
        idx = self.idx(mask)
        nodes = [n for n in self.free if self.link[n, idx].sum() > 0]
        cap = self.options.max_cluster
        if not nodes or (cap > 0 and len(nodes) > cap):
            return None
        us = self.members(mask)
        start = self._parent(mask) if self.options.parent_start else None
        res = self.oracle.solve(self.inst, self.k, tuple(nodes), us, method=self.options.method,
                                start=start)
        return GroupDelivery(self.k, us, tuple(nodes), [], res, 0.0,
                             transfer_delay_s(self.bd.size_bytes, res.min_rate_bps))

    def score(self, mask: int) -> GroupDelivery | None:
        """The group's delivery as the search scores it (class docstring)."""
        if mask in self.best:
            return self.best[mask]
        self.evals += 1
        if self.cheap:
            g = self._free_broadcast(mask)
            self.unplanned.add(mask)
        else:
            g = self._planned(mask)
        self.best[mask] = g
        return g

    def _planned(self, mask: int) -> GroupDelivery | None:
        """The better of plan_group's delivery and the free-node broadcast."""
        g = self.plan(mask)
        if self.alt:
            alt = self._free_broadcast(mask)
            if alt is not None and (g is None or alt.key < g.key):
                g = alt
        return g

    def score_planned(self, mask: int) -> GroupDelivery | None:
        """:meth:`score`, and plan_group's delivery too for a group of at most
        SEARCH_GREEDY_MAX_USERS users first scored by the free-node broadcast alone."""
        g = self.score(mask)
        if mask in self.unplanned and bin(mask).count("1") <= SEARCH_GREEDY_MAX_USERS:
            self.unplanned.discard(mask)
            p = self._planned(mask)
            if p is not None and (g is None or p.key < g.key):
                self.best[mask] = g = p
        return g

    def value(self, groups: list[int], limit: float = np.inf) -> float:
        """Cost of a partition, scoring its groups; inf as soon as it provably reaches
        ``limit`` (scored costs plus lower bounds of the unscored groups)."""
        known = sum(self.cost(m) for m in groups if m in self.best)
        todo = sorted((m for m in groups if m not in self.best), key=self.lower, reverse=True)
        rest = sum(self.lower(m) for m in todo)
        if known + rest >= limit:
            return np.inf
        for m in todo:
            rest -= self.lower(m)
            self.score(m)
            known += self.cost(m)
            if known + rest >= limit:
                return np.inf
        return known

    # ---- search -------------------------------------------------------------------------
    def _labels(self, labels) -> list[int]:
        out: dict = {}
        for i, lab in enumerate(labels):
            out[lab] = out.get(lab, 0) | (1 << i)
        return list(out.values())

    def candidates(self, hints) -> list[list[int]]:
        full = (1 << self.n) - 1
        users = np.asarray(self.users)
        cands = [[full], self._labels(self.inst.users.model[users].tolist()),
                 self._labels(self.inst.users.node[users].tolist()),
                 [1 << i for i in range(self.n)]]
        pos = {u: i for i, u in enumerate(self.users)}
        for hint in hints or ():
            masks, seen = [], 0
            for grp in hint:
                m = 0
                for u in grp:
                    i = pos.get(int(u))
                    if i is not None and not (seen >> i & 1):
                        m |= 1 << i
                if m:
                    masks.append(m)
                    seen |= m
            masks += [1 << i for i in range(self.n) if not seen >> i & 1]
            cands.append(masks)
        out, keys = [], set()
        for c in cands:
            key = tuple(sorted(c))
            if key not in keys:
                keys.add(key)
                out.append(list(key))
        return out

    def affinity(self, a: int, b: int) -> float:
        """Overlap (cosine) of the summed link directions of two user sets: groups whose
        users are strong at the same nodes lose little by sharing one beam."""
        sa = self.unit[:, self.idx(a)].sum(axis=1)
        sb = self.unit[:, self.idx(b)].sum(axis=1)
        den = float(np.linalg.norm(sa) * np.linalg.norm(sb))
        return float(sa @ sb) / den if den > 0 else 0.0

    def moves(self, groups: list[int]) -> list[tuple[float, int, list[int]]]:
        out = []
        order = 0
        for i, a in enumerate(groups):
            for b in groups[i + 1:]:
                rest = [m for m in groups if m not in (a, b)]
                prio = min(self.cost(a), self.cost(b)) * (0.1 + self.affinity(a, b))
                out.append((prio, order, rest + [a | b]))
                order += 1
        for a in groups:
            g = self.best.get(a)
            if g is None or bin(a).count("1") < 2:
                continue
            rates = dict(zip(g.users, g.beam.rates_bps, strict=True))
            bot = self.users.index(min(g.users, key=lambda u: rates[u]))
            bit = 1 << bot
            rest = [m for m in groups if m != a]
            out.append((0.5 * self.cost(a), order, rest + [a ^ bit, bit]))
            order += 1
            for b in rest:
                prio = self.cost(a) * (0.1 + self.affinity(bit, b))
                out.append((prio, order, [m for m in rest if m != b] + [a ^ bit, b | bit]))
                order += 1
        out.sort(key=lambda t: (-t[0], t[1]))
        return out

    def best_cover(self) -> tuple[float, list[int]]:
        """The cheapest partition of the requesters into scored groups (set partitioning)."""
        from scipy.optimize import Bounds, LinearConstraint, milp

        cols = [m for m, g in self.best.items() if np.isfinite(self.cost(m))]
        if not cols:
            return np.inf, []
        a = np.array([[m >> i & 1 for m in cols] for i in range(self.n)], dtype=float)
        c = np.array([self.cost(m) for m in cols])
        res = milp(c, constraints=LinearConstraint(a, 1, 1), integrality=np.ones(len(cols)),
                   bounds=Bounds(0, 1), options={"time_limit": 5.0})
        if res.x is None:
            return np.inf, []
        groups = [m for m, x in zip(cols, res.x, strict=True) if x > 0.5]
        if sum(bin(m).count("1") for m in groups) != self.n:
            return np.inf, []
        return float(sum(self.cost(m) for m in groups)), groups

    def run(self, hints=None) -> list[int]:
        """The chosen partition (group masks over ``users``); [] when no node can transmit."""
        if not self.free:
            return []
        inc, inc_cost = None, np.inf
        cands = self.candidates(hints)
        cands.sort(key=lambda c: sum(self.lower(m) for m in c))
        for c in cands:
            v = self.value(c, inc_cost)
            if np.isfinite(v) or all(m in self.best for m in c):
                self.complete.append(c)
            if v < inc_cost:
                inc, inc_cost = c, v
        if self.n <= SEARCH_GREEDY_MAX_USERS:
            greedy = _greedy_partition(self.n, self.score_planned, self.cost, self.idx,
                                       self.users, stop=lambda: _late(self.oracle))
            v = self.value(greedy)
            if v < inc_cost:
                inc, inc_cost = greedy, v
        if inc is None:
            return []
        budget = self.evals + (self.options.search_plans or 2 * self.n + 16)
        while self.evals < budget and not _late(self.oracle):
            improved = False
            for _, _, new in self.moves(inc):
                if self.evals >= budget or _late(self.oracle):
                    break
                v = self.value(new, inc_cost * (1 - 1e-9))
                if v < inc_cost * (1 - 1e-9):
                    inc, inc_cost, improved = new, v, True
                    break
            if not improved:
                break
        for m in inc:
            self.score_planned(m)
        inc_cost = sum(self.cost(m) for m in inc)
        v, cover = self.best_cover()
        if cover and v < inc_cost * (1 - 1e-9):
            for m in cover:
                self.score_planned(m)
            if sum(self.cost(m) for m in cover) < inc_cost * (1 - 1e-9):
                inc = cover
        if any(self.best.get(m) is None for m in inc):
            return []
        return sorted(inc, key=lambda m: -bin(m).count("1"))


def _greedy_partition(n: int, plan, cost, idx, users, stop=lambda: False) -> list[int]:
    """Heuristic for large groups: from the whole group, repeatedly take the group with the
    largest cost, move its bottleneck user (lowest worst-case rate in its beam) to a new group of
    its own or into another group, keep the best move if it lowers the total cost; stop when no
    move helps (at most n rounds), or when ``stop()``."""
    groups = [(1 << n) - 1]
    for _ in range(n):
        if stop():
            break
        worst = max(groups, key=cost)
        g = plan(worst)
        if g is None or bin(worst).count("1") < 2:
            break
        rates = dict(zip(g.users, g.beam.rates_bps, strict=True))
        b = users.index(min(g.users, key=lambda u: rates[u]))
        bit = 1 << b
        base = sum(cost(m) for m in groups)
        best, best_groups = base, None
        others = [m for m in groups if m != worst]
        for target in [0, *others]:
            cand = [m for m in others if m != target] + [worst ^ bit, target | bit]
            for m in cand:
                plan(m)
            total = sum(cost(m) for m in cand)
            if total < best:
                best, best_groups = total, cand
        if best_groups is None:
            break
        groups = best_groups
    return groups


def plan_transmissions(inst: Instance, k: int, users, holders, oracle: BeamformingOracle,
                       options: PlannerOptions = PlannerOptions(), received=(), sources=None,
                       block_data: BlockData | None = None, hints=None,
                       report: dict | None = None) -> list[GroupDelivery]:
    """The transmissions of PB k to ``users``: the best partition into sequential groups
    (:func:`plan_partition`, ``hints`` and ``report`` passed on) when ``options.partition``,
    else one common transmission (plan_group) split only where it cannot reach everyone.
    Returns [] when no node can transmit k.

    Without partitions: if the best common beam leaves some users at worst-case rate 0 (typically
    a user that only a node far from the others can reach), those users are planned separately,
    each on its own (a user alone gets the optimal robust MRT), and the rest are re-planned
    together; migrated copies are shared between the parts.
    """
    bd = block_data or BlockData(inst, k)
    if 0 < options.local_group < len(users):
        return plan_local(inst, k, users, holders, oracle, options, received, sources, bd)
    if options.partition:
        return plan_partition(inst, k, users, holders, oracle, options, received, sources, bd,
                              hints=hints, report=report)
    received = set(int(n) for n in received)
    g = plan_group(inst, k, users, holders, oracle, options, received=received, sources=sources,
                   block_data=bd)
    if g is None:
        return []
    dead = set(g.beam.zero_rate_users)
    if not dead or not options.split_zero_rate or len(g.users) == 1:
        return [g]
    parts: list[GroupDelivery] = []
    alive = tuple(u for u in g.users if u not in dead)
    if alive:
        parts += plan_transmissions(inst, k, alive, holders, oracle, options, received,
                                    sources, bd)
        received |= {m.dst for p in parts for m in p.migrations}
    for u in sorted(dead):
        if _late(oracle):  # out of time: the users not planned yet are left undelivered
            break
        part = plan_group(inst, k, (u,), holders, oracle, options, received=received,
                          sources=sources, block_data=bd)
        parts.append(part)
        received |= {m.dst for m in part.migrations}
    return parts


def _parts_cost(parts) -> float:
    """Cost of a PB's transmissions as the partition search counts it (inf: none)."""
    return sum(_partition_cost(g) for g in parts) if parts else np.inf


def second_pass(inst: Instance, done, holds: np.ndarray, oracle: BeamformingOracle,
                options: PlannerOptions, ctx=None, alternatives: dict | None = None):
    """Re-plan the PBs of one requester set (``done``: (k, hurried, parts) in PB order, from
    the first pass with one hint each) with the SECOND_PASS_HINTS cheapest distinct partitions
    the first pass chose for that set as candidates, keeping per PB the cheaper of the two
    plans (PBs are delivered independently, so no PB and no total can get worse).

    Only for sets above SEARCH_GREEDY_MAX_USERS requesters (the LLM scenarios' frozen PBs:
    30 users, where the local search ends in different splits from one PB to the next, 10-20%
    apart in a PB's delay on llm-7b-calibrated seed 1, so the plan depended on the split the
    previous PB happened to end in); smaller sets are searched more thoroughly (the bottleneck
    moves) and are left as they are. The second pass scores the candidates and their best
    cover but runs no local search of its own (``search_plans`` = 1): its cost is a few oracle
    calls per candidate. ``alternatives`` (k -> list), if given, receives every plan the
    second pass made (milp offers them to its oracle MILP)."""
    if len(done) < 2 or not options.partition:
        return done
    users = tuple(int(u) for u in inst.requesters(done[0][0]))
    if len(users) <= SEARCH_GREEDY_MAX_USERS:
        return done
    seen = pooled_partitions((parts, _parts_cost(parts)) for _, hurried, parts in done
                             if parts and not hurried)
    if not seen:
        return done
    opts = replace(options, search_plans=1)
    out = []
    for k, hurried, parts in done:
        if hurried or not parts or (ctx is not None and ctx.should_stop()) or _late(oracle):
            out.append((k, hurried, parts))
            continue
        holders = np.flatnonzero(holds[:, k])
        again = plan_transmissions(inst, k, users, holders, oracle, opts, hints=seen)
        if alternatives is not None and again:
            alternatives.setdefault(k, []).append(again)
        better = bool(again) and _parts_cost(again) < _parts_cost(parts) * (1 - 1e-9)
        out.append((k, hurried, again if better else parts))
    return out


def pooled_partitions(costed) -> list[list[tuple[int, ...]]]:
    """The second pass's candidates: from (groups, cost) pairs of one requester set's PBs (each
    group with a ``users`` tuple), the SECOND_PASS_HINTS cheapest distinct partitions into
    several groups, each at its cheapest cost; [] when fewer than two distinct ones exist
    (nothing to pool)."""
    cost: dict = {}  # distinct partition -> its cheapest cost
    for groups, c in costed:
        if len(groups) > 1:
            key = tuple(sorted(tuple(int(u) for u in g.users) for g in groups))
            cost[key] = min(cost.get(key, np.inf), float(c))
    if len(cost) < 2:
        return []
    return [list(key) for key in sorted(cost, key=cost.get)[:SECOND_PASS_HINTS]]


class PartitionHints:
    """The partition last chosen for each requester set of at most SEARCH_GREEDY_MAX_USERS
    users, offered to the next PB with the same requesters (PBs of a shared prefix have the same
    requesters and the same geometry, only other fading, so a good partition of one is a good
    start for the next). plan_partition still evaluates the obvious partitions, so with or
    without a hint its result is never worse than those.

    Larger sets get no hint: each of their PBs is searched on its own and the second pass
    (:func:`second_pass`) pools the partitions found. With the previous PB's partition as a
    seed the searches ended in the same few splits and the pool had less to offer
    (llm-7b-calibrated seed 1: replicate 0.9637 s with the seed, 0.9249 s without; a frozen
    PB then scores ~40 groups instead of ~7, 30% more CPU in all)."""

    def __init__(self):
        self._last: dict[tuple[int, ...], list[tuple[int, ...]]] = {}

    def get(self, users, large: bool = False) -> list[list[tuple[int, ...]]]:
        """The hint for ``users``' next PB; above SEARCH_GREEDY_MAX_USERS users only with
        ``large`` (a solver behind its time schedule: the seeded search is faster)."""
        if len(users) > SEARCH_GREEDY_MAX_USERS and not large:
            return []
        hint = self._last.get(tuple(int(u) for u in users))
        return [hint] if hint else []

    def record(self, users, parts) -> None:
        if len(parts) > 1:
            self._last[tuple(int(u) for u in users)] = [tuple(g.users) for g in parts]


def plan_local(inst: Instance, k: int, users, holders, oracle: BeamformingOracle,
               options: PlannerOptions = PlannerOptions(), received=(), sources=None,
               block_data: BlockData | None = None) -> list[GroupDelivery]:
    """A large requester set planned in neighbourhoods of at most ``options.local_group``
    users (:func:`fgamcd_opt.locality.neighbourhoods`), one after another, each by
    :func:`plan_transmissions`; copies migrated for one neighbourhood are free for the next.
    Returns [] when no node can transmit k."""
    from .locality import neighbourhoods

    bd = block_data or BlockData(inst, k)
    got = {int(n) for n in received}
    can = set(int(h) for h in holders) | got
    if options.migration and (sources is None or len(sources)) and not options.use_all_free:
        can = set(range(inst.n_nodes))
    link = bd.link[:, [bd.column[int(u)] for u in users]]
    parts: list[GroupDelivery] = []
    for hood in neighbourhoods(inst, users, link, can, options.local_group):
        sub = plan_transmissions(inst, k, hood, holders, oracle, options, received=got,
                                 sources=sources, block_data=bd)
        if not sub:
            return []
        parts.extend(sub)
        got |= {m.dst for g in sub for m in g.migrations}
    return parts


def quick_options(options: PlannerOptions) -> PlannerOptions:
    """The fallback once the time limit has passed: one node per transmission, no partition
    search, closed-form beams (MRT; a user a common beam leaves at rate 0 gets its own robust
    MRT unit), so a PB costs a few closed-form evaluations instead of dozens of SOCPs."""
    return replace(options, max_cluster=1, screen=1, partition=False, method="mrt",
                   split_zero_rate=True)


def plan_broadcast(inst: Instance, holds: np.ndarray, oracle: BeamformingOracle,
                   options: PlannerOptions = PlannerOptions(), ctx=None,
                   workers: int = 1) -> DeliveryResult:
    """CoMP delivery of every requested PB to all its requesters: the best partition of them
    into sequential groups, each with its own cluster and beams (plan_transmissions); users still
    below QoS are recorded with the reason (``DeliveryResult.qos_unmet``).

    holds: (N, K) bool, what each node caches (a_n(k)).
    ctx: the solver's SolveContext (optional): progress per PB, and past its time limit the
    remaining PBs get :func:`quick_options` (listed in ``DeliveryResult.hurried``), and
    ``FALLBACK_S`` later none at all (``DeliveryResult.skipped``, left undelivered).
    workers: processes planning the PBs (:func:`fgamcd_opt.workers.map_blocks`; the same plan
    for any number: PBs with the same requesters, which share partition hints, are planned in
    one task, in PB order).
    """
    out = DeliveryResult()
    blocks = [int(k) for k in inst.requested_blocks]
    by_users: dict[tuple[int, ...], list[int]] = {}
    for k in blocks:
        by_users.setdefault(tuple(int(u) for u in inst.requesters(k)), []).append(k)

    def plan_set(ks: list[int]):
        hints = PartitionHints()
        done = []
        for k in ks:
            users = inst.requesters(k)
            if ctx is not None and ctx.must_stop():
                done.append((k, None, []))
                continue
            hurried = ctx is not None and ctx.should_stop()
            opts = quick_options(options) if hurried else options
            holders = np.flatnonzero(holds[:, k])
            parts = plan_transmissions(inst, k, users, holders, oracle, opts,
                                       hints=hints.get(users))
            hints.record(users, parts)
            done.append((k, hurried, parts))
        return second_pass(inst, done, holds, oracle, options, ctx)

    planned = {k: (hurried, parts) for res in map_blocks(plan_set, list(by_users.values()),
                                                          oracle, workers, ctx, "PB set")
               for k, hurried, parts in res}
    for k in blocks:
        hurried, parts = planned[k]
        users = inst.requesters(k)
        holders = np.flatnonzero(holds[:, k])
        if hurried is None:
            out.skip(k, users)
            continue
        if hurried:
            out.hurried.append(k)
        if not parts:
            out.undeliverable[k] = tuple(int(u) for u in inst.requesters(k))
            continue
        left = set(int(u) for u in users) - {u for g in parts for u in g.users}
        if left:  # the time limit stopped the PB's planning half way
            out.skip(k, sorted(left))
        out.note_qos(inst, k, parts, holders, options.migration)
        for g in parts:
            mode = "unicast" if len(parts) > 1 and len(g.users) == 1 else "broadcast"
            out.add(g, mode=mode, beamforming=options.method)
    return out


def plan_unicast(inst: Instance, holds: np.ndarray, oracle: BeamformingOracle,
                 options: PlannerOptions = PlannerOptions(method="mrt"),
                 blocks=None, ctx=None, workers: int = 1) -> DeliveryResult:
    """TDMA unicast: one slot per (PB, user), each with its own cluster; a PB migrated to a node
    for one user is reused (free) for the next users of the same PB. ``ctx`` and ``workers`` as
    in :func:`plan_broadcast`."""
    out = DeliveryResult()
    blocks = [int(k) for k in (inst.requested_blocks if blocks is None else blocks)]

    def plan_one(k: int):
        hurried = ctx is not None and ctx.should_stop()
        opts = quick_options(options) if hurried else options
        holders = np.flatnonzero(holds[:, k])
        received: set[int] = set()
        bd = BlockData(inst, k)
        slots = []
        for u in inst.requesters(k):
            if ctx is not None and ctx.must_stop():  # out of time in a huge PB: its other
                slots.append((int(u), False))       # users stay undelivered
                continue
            g = plan_group(inst, k, (u,), holders, oracle, opts, received=received,
                           block_data=bd)
            slots.append((int(u), g))
            if g is not None:
                received.update(m.dst for m in g.migrations)
        return hurried, slots

    for k, (hurried, slots) in zip(blocks, map_blocks(plan_one, blocks, oracle, workers, ctx),
                                   strict=True):
        if hurried:
            out.hurried.append(k)
        holders = np.flatnonzero(holds[:, k])
        for u, g in slots:
            if g is False:
                out.skip(k, (*out.undeliverable.get(k, ()), u))
                continue
            if g is None:
                out.undeliverable[k] = (*out.undeliverable.get(k, ()), u)
                continue
            out.add(g, mode="unicast", beamforming=options.method)
            out.note_qos(inst, k, [g], holders, options.migration)
    return out
