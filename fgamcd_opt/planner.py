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
no other partition can be better: every other one costs at least its lower bound). Above that
size a documented heuristic (``_greedy_partition``) moves bottleneck users between groups while
the key improves. Costs order QoS first (a group that misses a floor costs ``QOS_PENALTY_S``
more), then zero-rate users, then delay.
"""

from __future__ import annotations

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

QOS_PENALTY_S = 1e6  # partition search: a group that misses QoS costs this much more (QoS first)


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
    # every transmission uses all nodes that hold or received the PB, no growth (full-comp's rule)
    use_all_free: bool = False
    # requester sets above this size are planned in neighbourhoods of at most this many users
    # (locality.neighbourhoods; 0: never split)
    local_group: int = 24


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
    # the group can only lower their worst-case rates (locality.py), so it is never a candidate
    cap = inst.n_nodes if options.max_cluster <= 0 else min(options.max_cluster, inst.n_nodes)
    reach = useful(link)
    can_migrate = bool(options.migration and sources)
    if can_migrate:
        # fastest source per destination and its migration delay, for every node at once
        src_rates = bd.backhaul[list(sources)]  # (S, N)
        src_best = np.argmax(src_rates, axis=0)
        mig_cost = transfer_delay_s(bd.size_bytes, src_rates.max(axis=0))
    while len(best.nodes) < cap:
        ms = [m for m in np.flatnonzero(reach).tolist() if m not in best.nodes
              and (m in free or can_migrate)]
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
                mig = None if m in free else Migration(sources[int(src_best[m])], m, k)
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
        if cand.key < best.key:
            best = cand
        else:
            break
    return best


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

    @property
    def solve_status(self) -> SolveStatus:
        """``time_limit`` when the limit cut the search short, else ``feasible``."""
        return SolveStatus.TIME_LIMIT if self.hurried else SolveStatus.FEASIBLE

    def time_limit_message(self) -> str:
        """'' unless the time limit cut the search short, else how many PBs it affected."""
        if not self.hurried:
            return ""
        return (f"time limit reached: {len(self.hurried)} PB(s) planned with the quick fallback "
                "(one node, no partition search)")

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
        users = sorted({u for us in self.undeliverable.values() for u in us})
        if not users:
            return ""
        return (f"{len(self.undeliverable)} requested PB(s) cached nowhere; users not fully "
                "served: " + ", ".join(inst.users.ids[u] for u in users))

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
                   block_data: BlockData | None = None) -> list[GroupDelivery]:
    """The requesters ``users`` of PB k split into groups sent one after another, each planned
    by :func:`plan_group` (module docstring: exact DP with bounds up to ``options.exact_users``
    requesters, greedy above). Returns the groups ([] when no node can transmit k)."""
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
    whole = plan(full)
    if whole is None:
        return []
    if n == 1:
        return [whole]
    # per-user lower bound on any group's delay: every node that can get the PB, no migration
    can = set(int(h) for h in holders) | received
    if options.migration and (sources is None or len(sources)):
        can = set(range(inst.n_nodes))
    link = bd.link[np.ix_(sorted(can), [bd.column[u] for u in users])]
    single_lb = transfer_delay_s(bd.size_bytes, rate_from_amplitude(
        link.sum(axis=0), inst.users.noise_w[list(users)], inst.bandwidth_hz))
    single_lb = np.where(np.isfinite(single_lb), single_lb, 1e3 * QOS_PENALTY_S)

    def lower(mask: int) -> float:
        return float(max(single_lb[i] for i in range(n) if mask >> i & 1))

    if n <= options.exact_users:
        while True:
            _, groups = best_partition(
                n, lambda m: _partition_cost(plans[m]) if m in plans else lower(m))
            todo = [g for g in groups if g not in plans]
            if not todo or len(plans) + len(todo) > options.max_group_plans:
                break
            for g in todo:
                plan(g)
        _, groups = best_partition(n, lambda m: _partition_cost(plans.get(m)))
    else:
        groups = _greedy_partition(n, plan, lambda g: _partition_cost(plans.get(g)),
                                   lambda m: [i for i in range(n) if m >> i & 1], users)
    parts = [plans[g] for g in groups]
    if len(parts) > 1:
        # send the groups in turn, a later group reusing copies migrated for an earlier one
        seq, got = [], set(received)
        for g in sorted(groups, key=lambda m: -bin(m).count("1")):
            p = plan_group(inst, k, members(g), holders, oracle, options, received=got,
                           sources=sources, block_data=bd)
            seq.append(p)
            got |= {m.dst for m in p.migrations}
        if sum(map(_partition_cost, seq)) < sum(map(_partition_cost, parts)):
            parts = seq
    return _split_unreachable(inst, k, parts, holders, oracle, options, received, sources, bd)


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
        if not dead or len(p.users) == 1:
            out.append(p)
            continue
        alive = tuple(u for u in p.users if u not in dead)
        pieces = []
        if alive:
            pieces += plan_partition(inst, k, alive, holders, oracle, options, received,
                                     sources, bd)
        pieces += [plan_group(inst, k, (u,), holders, oracle, options, received=received,
                              sources=sources, block_data=bd) for u in sorted(dead)]
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


def _greedy_partition(n: int, plan, cost, idx, users) -> list[int]:
    """Heuristic for large groups: from the whole group, repeatedly take the group with the
    largest cost, move its bottleneck user (lowest worst-case rate in its beam) to a new group of
    its own or into another group, keep the best move if it lowers the total cost; stop when no
    move helps (at most n rounds)."""
    groups = [(1 << n) - 1]
    for _ in range(n):
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
                       block_data: BlockData | None = None) -> list[GroupDelivery]:
    """The transmissions of PB k to ``users``: the best partition into sequential groups
    (:func:`plan_partition`) when ``options.partition``, else one common transmission
    (plan_group) split only where it cannot reach everyone. Returns [] when no node can
    transmit k.

    Without partitions: if the best common beam leaves some users at worst-case rate 0 (typically
    a user that only a node far from the others can reach), those users are planned separately,
    each on its own (a user alone gets the optimal robust MRT), and the rest are re-planned
    together; migrated copies are shared between the parts.
    """
    bd = block_data or BlockData(inst, k)
    if 0 < options.local_group < len(users):
        return plan_local(inst, k, users, holders, oracle, options, received, sources, bd)
    if options.partition:
        return plan_partition(inst, k, users, holders, oracle, options, received, sources, bd)
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
        part = plan_group(inst, k, (u,), holders, oracle, options, received=received,
                          sources=sources, block_data=bd)
        parts.append(part)
        received |= {m.dst for m in part.migrations}
    return parts


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
    search (a few oracle calls per PB instead of dozens)."""
    return replace(options, max_cluster=1, screen=1, partition=False)


def plan_broadcast(inst: Instance, holds: np.ndarray, oracle: BeamformingOracle,
                   options: PlannerOptions = PlannerOptions(), ctx=None,
                   workers: int = 1) -> DeliveryResult:
    """CoMP delivery of every requested PB to all its requesters: the best partition of them
    into sequential groups, each with its own cluster and beams (plan_transmissions); users still
    below QoS are recorded with the reason (``DeliveryResult.qos_unmet``).

    holds: (N, K) bool, what each node caches (a_n(k)).
    ctx: the solver's SolveContext (optional): progress per PB, and past its time limit the
    remaining PBs get :func:`quick_options` (listed in ``DeliveryResult.hurried``).
    workers: processes planning the PBs (:func:`fgamcd_opt.workers.map_blocks`; the same plan
    for any number).
    """
    out = DeliveryResult()
    blocks = [int(k) for k in inst.requested_blocks]

    def plan_one(k: int):
        hurried = ctx is not None and ctx.should_stop()
        opts = quick_options(options) if hurried else options
        holders = np.flatnonzero(holds[:, k])
        return hurried, plan_transmissions(inst, k, inst.requesters(k), holders, oracle, opts)

    for k, (hurried, parts) in zip(blocks, map_blocks(plan_one, blocks, oracle, workers, ctx),
                                   strict=True):
        if hurried:
            out.hurried.append(k)
        if not parts:
            out.undeliverable[k] = tuple(int(u) for u in inst.requesters(k))
            continue
        out.note_qos(inst, k, parts, np.flatnonzero(holds[:, k]), options.migration)
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
            if g is None:
                out.undeliverable.setdefault(k, ())
                out.undeliverable[k] += (u,)
                continue
            out.add(g, mode="unicast", beamforming=options.method)
            out.note_qos(inst, k, [g], holders, options.migration)
    return out
