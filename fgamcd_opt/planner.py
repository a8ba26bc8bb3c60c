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
QoS is a hard constraint, delay the objective. When no cluster reaches every user with one common
beam, ``plan_transmissions`` serves the unreachable users in separate units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bounds import link_amplitude_bound
from .instance import Instance
from .oracle import BeamformingOracle, BeamResult
from .plan import DeliveryUnit, Migration
from .rates import rate_from_amplitude


@dataclass(frozen=True)
class PlannerOptions:
    max_cluster: int = 3  # most nodes in one transmission
    migration: bool = True  # allow migrating PBs to non-holders
    method: str | None = None  # oracle method (None: the oracle's default)
    screen: int = 2  # single holders solved with the oracle (best by rate bound)
    candidates_per_round: int = 3  # growth candidates solved with the oracle per round
    split_zero_rate: bool = True  # serve users a common beam cannot reach in separate units


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
        self.bits = 8.0 * float(inst.repository.sizes[k])
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

    def solve(cluster, migs, mig_s) -> GroupDelivery:
        cluster = tuple(sorted(cluster))
        res = oracle.solve(inst, k, cluster, users, method=options.method)
        return GroupDelivery(k, users, cluster, list(migs), res, mig_s, res.delay_s(bd.bits / 8))

    # 1. best single node among the free ones
    singles = sorted(free, key=lambda n: -rate_bound((n,)).min())
    best = min((solve((n,), [], 0.0) for n in singles[: max(options.screen, 1)]),
               key=lambda g: g.key)

    # 2. growth
    while len(best.nodes) < min(options.max_cluster, inst.n_nodes):
        cands = []
        for m in range(inst.n_nodes):
            if m in best.nodes:
                continue
            if m in free:
                cost, mig = 0.0, None
            elif options.migration and sources:
                rates = bd.backhaul[list(sources), m]
                s = sources[int(np.argmax(rates))]
                cost, mig = bd.bits / float(rates.max()), Migration(s, m, k)
            else:
                continue
            cluster = (*best.nodes, m)
            ub = rate_bound(cluster)
            lb = best.migration_s + cost + (bd.bits / ub.min() if ub.min() > 0 else np.inf)
            could_meet_qos = bool(np.all(ub >= qos * (1 - 1e-9)))
            qos_now = best.beam.qos_feasible
            if (qos_now and (lb >= best.total_s or not could_meet_qos)) or (
                    not qos_now and not could_meet_qos and lb >= best.total_s):
                continue
            cands.append((not could_meet_qos, lb, m, cost, mig))
        if not cands:
            break
        cands.sort()
        trial = []
        for _, _, m, cost, mig in cands[: options.candidates_per_round]:
            migs = best.migrations + ([mig] if mig else [])
            trial.append(solve((*best.nodes, m), migs, best.migration_s + cost))
        cand = min(trial, key=lambda g: g.key)
        if cand.key < best.key:
            best = cand
        else:
            break
    return best


@dataclass
class DeliveryResult:
    units: list[DeliveryUnit] = field(default_factory=list)
    migrations: list[Migration] = field(default_factory=list)
    undeliverable: dict[int, tuple[int, ...]] = field(default_factory=dict)  # PB -> users

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


def plan_transmissions(inst: Instance, k: int, users, holders, oracle: BeamformingOracle,
                       options: PlannerOptions = PlannerOptions(), received=(), sources=None,
                       block_data: BlockData | None = None) -> list[GroupDelivery]:
    """One transmission of PB k to ``users`` (plan_group), split when it cannot reach everyone.

    If the best common beam leaves some users at worst-case rate 0 (typically a user that only a
    node far from the others can reach), those users are planned separately, each on its own
    (a user alone gets the optimal robust MRT), and the rest are re-planned together; migrated
    copies are shared between the parts. Returns [] when no node can transmit k.
    """
    bd = block_data or BlockData(inst, k)
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


def plan_broadcast(inst: Instance, holds: np.ndarray, oracle: BeamformingOracle,
                   options: PlannerOptions = PlannerOptions()) -> DeliveryResult:
    """One CoMP broadcast per requested PB to all its requesters (FGAMCD delivery), split only
    where a common beam would leave a requester at rate 0 (see plan_transmissions).

    holds: (N, K) bool, what each node caches (a_n(k)).
    """
    out = DeliveryResult()
    for k in inst.requested_blocks:
        users = inst.requesters(k)
        holders = np.flatnonzero(holds[:, k])
        parts = plan_transmissions(inst, int(k), users, holders, oracle, options)
        if not parts:
            out.undeliverable[int(k)] = tuple(int(u) for u in users)
            continue
        for g in parts:
            mode = "unicast" if len(parts) > 1 and len(g.users) == 1 else "broadcast"
            out.add(g, mode=mode, beamforming=options.method)
    return out


def plan_unicast(inst: Instance, holds: np.ndarray, oracle: BeamformingOracle,
                 options: PlannerOptions = PlannerOptions(method="mrt"),
                 blocks=None) -> DeliveryResult:
    """TDMA unicast: one slot per (PB, user), each with its own cluster; a PB migrated to a node
    for one user is reused (free) for the next users of the same PB."""
    out = DeliveryResult()
    for k in (inst.requested_blocks if blocks is None else blocks):
        holders = np.flatnonzero(holds[:, k])
        received: set[int] = set()
        bd = BlockData(inst, int(k))
        for u in inst.requesters(k):
            g = plan_group(inst, int(k), (u,), holders, oracle, options, received=received,
                           block_data=bd)
            if g is None:
                out.undeliverable.setdefault(int(k), ())
                out.undeliverable[int(k)] += (int(u),)
                continue
            received.update(m.dst for m in g.migrations)
            out.add(g, mode="unicast", beamforming=options.method)
    return out
