"""The delay evaluator: the single source of truth that scores every plan (eqs. 1-8).

For each PB k (eq. 7):
    migration(k) = sum over migrations (n -> m, k) of 8 S(k) / R^bac_{n,m}(k)  (sequential)
    broadcast(k) = sum over the transmissions carrying k of 8 S(k) / min_u R_u(k)
                   (exact worst-case rates, rates.py)
    T = sum_k [migration(k) + broadcast(k)]                                          (eq. 8)
For one CoMP broadcast unit per PB this is exactly eq. 7's max over the requesting users.
A transmission is one unit, or all the units sharing a ``slot`` (sent at the same time): every
user of a slot hears every node of the slot, since they all send the same PB symbol, so its rate
is computed over the union of the slot's nodes and beams (eq. 6 with lambda = that union).

Every constraint violation is reported with the nodes, users and PBs involved: storage (eq. 1),
migration of a PB the source does not hold (eq. 2), a unit node that neither holds nor received
the PB (eq. 3), power (eq. 9d), QoS (eq. 9b), zero worst-case rate, requested PBs nobody delivers,
malformed units. A plan with any violation is ``infeasible``; the delay of what is delivered
with a positive rate is still reported; nothing is ever NaN.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .instance import Instance
from .oracle import BeamformingOracle, default_oracle
from .plan import MODES, Plan
from .rates import rate_from_amplitude, robust_amplitude_pairs

POWER_RTOL = 1e-9
QOS_RTOL = 1e-9


@dataclass
class Violation:
    kind: str
    message: str
    nodes: tuple[int, ...] = ()
    users: tuple[int, ...] = ()
    blocks: tuple[int, ...] = ()

    def to_dict(self, inst: Instance | None = None) -> dict:
        d = asdict(self)
        if inst is not None:
            d["nodes"] = [inst.nodes.ids[n] for n in self.nodes]
            d["users"] = [inst.users.ids[u] for u in self.users]
            d["blocks"] = [inst.repository.blocks[k].id for k in self.blocks]
        else:
            d = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
        return d


@dataclass
class UnitResult:
    index: int
    block: int
    mode: str
    nodes: tuple[int, ...]
    users: tuple[int, ...]
    rates_bps: np.ndarray
    delay_s: float  # inf when some user has rate 0
    power_w: np.ndarray
    beam_source: str  # "plan" or "oracle:<method>"
    oracle_status: str = ""


@dataclass
class Evaluation:
    status: str  # "feasible" | "infeasible"
    total_delay_s: float  # finite part: units with positive rate + migrations
    migration_delay_s: float
    broadcast_delay_s: float
    block_migration_s: dict[int, float]
    block_broadcast_s: dict[int, float]
    units: list[UnitResult]
    storage_used_bytes: np.ndarray
    storage_capacity_bytes: np.ndarray
    violations: list[Violation] = field(default_factory=list)
    undelivered: list[tuple[int, int]] = field(default_factory=list)  # (user, block)
    n_requested_pairs: int = 0
    n_migrations: int = 0
    eval_time_s: float = 0.0

    @property
    def feasible(self) -> bool:
        return self.status == "feasible"

    def count(self, kind: str) -> int:
        return sum(1 for v in self.violations if v.kind == kind)

    def undelivered_users(self) -> list[int]:
        return sorted({u for u, _ in self.undelivered})

    def qos_violating_users(self) -> list[int]:
        return sorted({u for v in self.violations if v.kind in ("qos", "zero_rate")
                       for u in v.users})

    def summary(self, inst: Instance) -> dict:
        kinds: dict[str, int] = {}
        for v in self.violations:
            kinds[v.kind] = kinds.get(v.kind, 0) + 1
        tot = self.total_delay_s
        return {
            "status": self.status,
            "total_delay_s": tot,
            "migration_delay_s": self.migration_delay_s,
            "broadcast_delay_s": self.broadcast_delay_s,
            "migration_share": self.migration_delay_s / tot if tot > 0 else 0.0,
            "broadcast_share": self.broadcast_delay_s / tot if tot > 0 else 0.0,
            "n_units": len(self.units),
            "n_migrations": self.n_migrations,
            "violations_by_kind": kinds,
            "qos_violating_users": len(self.qos_violating_users()),
            "undelivered_users": len(self.undelivered_users()),
            "undelivered_pairs": len(self.undelivered),
            "requested_pairs": self.n_requested_pairs,
            "storage_used_bytes": self.storage_used_bytes.tolist(),
            "storage_capacity_bytes": self.storage_capacity_bytes.tolist(),
            "eval_time_s": self.eval_time_s,
        }

    def to_dict(self, inst: Instance) -> dict:
        bid = [b.id for b in inst.repository.blocks]
        return {
            **self.summary(inst),
            "violations": [v.to_dict(inst) for v in self.violations],
            "undelivered": [{"user": inst.users.ids[u], "block": bid[k]}
                            for u, k in self.undelivered],
            "blocks": {
                bid[k]: {"migration_s": self.block_migration_s.get(k, 0.0),
                         "broadcast_s": self.block_broadcast_s.get(k, 0.0)}
                for k in sorted(set(self.block_migration_s) | set(self.block_broadcast_s))
            },
            "units": [
                {"index": r.index, "block": bid[r.block], "mode": r.mode,
                 "nodes": [inst.nodes.ids[n] for n in r.nodes],
                 "users": [inst.users.ids[u] for u in r.users],
                 "rates_bps": r.rates_bps.tolist(),
                 "delay_s": r.delay_s if np.isfinite(r.delay_s) else None,
                 "power_w": r.power_w.tolist(), "beams": r.beam_source,
                 "oracle_status": r.oracle_status}
                for r in self.units
            ],
        }


def evaluate(inst: Instance, plan: Plan, oracle: BeamformingOracle | None = None) -> Evaluation:
    """Score ``plan`` on ``inst``. Units without beams get them from ``oracle`` (default: the
    shared ``fast`` oracle, or the unit's ``beamforming`` method)."""
    t0 = time.perf_counter()
    oracle = oracle or default_oracle()
    rep = inst.repository
    n_nodes, _n_users, n_blocks = inst.n_nodes, inst.n_users, inst.n_blocks
    violations: list[Violation] = []
    sizes_bits = 8.0 * rep.sizes.astype(float)

    problem = _check_storage_shape(inst, plan)
    if problem:
        violations.append(Violation("malformed", problem))
        return _empty(inst, plan, violations, t0)

    # ---- storage (eq. 1) ----------------------------------------------------------------
    used = plan.storage_used(rep)
    cap = inst.nodes.storage_bytes
    for n in np.flatnonzero(used > cap):
        violations.append(Violation("storage", f"node {inst.nodes.ids[n]} stores {used[n]} B > "
                                               f"capacity {cap[n]} B", nodes=(int(n),)))
    holds = plan.holds(rep)

    # ---- migrations (eq. 2) -------------------------------------------------------------
    block_mig: dict[int, float] = {}
    seen = set()
    received = np.zeros((n_nodes, n_blocks), dtype=bool)
    for mig in plan.migrations:
        s, d, k = mig.src, mig.dst, mig.block
        if not (0 <= s < n_nodes and 0 <= d < n_nodes and 0 <= k < n_blocks) or s == d:
            violations.append(Violation("malformed", f"invalid migration {mig}"))
            continue
        if (s, d, k) in seen:
            violations.append(Violation("migration_duplicate", "migration listed twice",
                                        nodes=(s, d), blocks=(k,)))
            continue
        seen.add((s, d, k))
        if not holds[s, k]:
            violations.append(Violation("migration_source", "source does not cache the PB "
                                        "(only cached PBs can be migrated, eq. 2)",
                                        nodes=(s,), blocks=(k,)))
        rate = inst.backhaul_rates(k)[s, d]
        block_mig[k] = block_mig.get(k, 0.0) + sizes_bits[k] / rate
        received[d, k] = True
    participation = holds | received

    # ---- delivery units: validate, get beams -------------------------------------------
    demand = inst.demand
    served = np.zeros_like(demand)
    prepared = []  # (unit index, unit, beams, beam source, oracle status)
    for i, unit in enumerate(plan.units):
        k = unit.block
        bad = _check_unit(inst, unit, i)
        if bad:
            violations.append(bad)
            continue
        nodes, users = unit.nodes, unit.users
        missing = () if participation[list(nodes), k].all() else [
            n for n in nodes if not participation[n, k]]
        if missing:
            violations.append(Violation("not_holding", f"unit {i}: node(s) neither cache nor "
                                        "received the PB (eq. 3)", nodes=tuple(missing),
                                        blocks=(k,)))
        spurious = () if demand[list(users), k].all() else [u for u in users if not demand[u, k]]
        if spurious:
            violations.append(Violation("spurious_user", f"unit {i}: user(s) do not request "
                                        "this PB", users=tuple(spurious), blocks=(k,)))
        if unit.model is not None:
            j = unit.model
            if not (0 <= j < inst.n_models) or k not in rep.models[j].blocks or any(
                    inst.users.model[u] != j for u in users):
                violations.append(Violation("malformed", f"unit {i}: model {j} does not match "
                                            "its PB or users", blocks=(k,), users=users))
        status = ""
        if unit.beams is not None:
            beams = np.asarray(unit.beams, dtype=complex)
            source = "plan"
            if beams.shape != (len(nodes), inst.antennas) or not np.all(np.isfinite(beams)):
                violations.append(Violation("malformed", f"unit {i}: beams must be finite with "
                                            f"shape ({len(nodes)}, {inst.antennas})",
                                            blocks=(k,)))
                continue
        else:
            res = oracle.solve(inst, k, nodes, users, method=unit.beamforming)
            beams, source, status = res.beams, f"oracle:{res.method}", res.status.value
        power = np.einsum("nm,nm->n", beams.conj(), beams).real
        pmax = inst.nodes.power_max_w[list(nodes)] * (1 + POWER_RTOL)
        over = () if (power <= pmax).all() else [
            n for n, p, q in zip(nodes, power, pmax, strict=True) if p > q]
        if over:
            violations.append(Violation("power", f"unit {i}: beam power above P_max",
                                        nodes=tuple(over), blocks=(k,)))
        prepared.append((i, unit, beams, source, status, power))

    # ---- transmissions: a unit alone, or the units sharing a slot ------------------------
    groups: list[list[int]] = []
    by_slot: dict[int, list[int]] = {}
    for p_i, (_, unit, *_rest) in enumerate(prepared):
        if unit.slot is None:
            groups.append([p_i])
        else:
            by_slot.setdefault(unit.slot, []).append(p_i)
    for slot, members in by_slot.items():
        blocks = {prepared[m][1].block for m in members}
        node_list = [n for m in members for n in prepared[m][1].nodes]
        if len(blocks) > 1 or len(set(node_list)) != len(node_list):
            violations.append(Violation("slot_conflict", f"slot {slot}: concurrent units must "
                                        "carry the same PB from disjoint nodes",
                                        blocks=tuple(sorted(blocks))))
            groups.extend([m] for m in members)  # evaluated as sequential transmissions
        else:
            groups.append(members)

    # Every user hears every node of its transmission (they all send the same PB symbol), so
    # its exact worst case runs over all of them (eq. 6 with lambda = the union). All (transmission,
    # user) pairs are stacked, padded to the largest transmission, and scored in one call.
    tx = []
    for members in groups:
        k = prepared[members[0]][1].block
        nodes = [n for m in members for n in prepared[m][1].nodes]
        users = list(dict.fromkeys(u for m in members for u in prepared[m][1].users))
        beams = prepared[members[0]][2] if len(members) == 1 else np.vstack(
            [prepared[m][2] for m in members])
        tx.append((members, k, nodes, users, beams))
    n_pairs = sum(len(t[3]) for t in tx)
    p_max = max((len(t[2]) for t in tx), default=1)
    h_all = np.zeros((n_pairs, p_max, inst.antennas), dtype=complex)
    w_all = np.zeros_like(h_all)
    r_all = np.zeros((n_pairs, p_max))
    pair_user = np.empty(n_pairs, dtype=np.int64)
    row = 0
    radius = inst.error_radius
    for _, k, nodes, users, beams in tx:
        p = len(nodes)
        for u in users:
            h_all[row, :p] = inst.user_channel(k, u)[nodes]
            w_all[row, :p] = beams
            r_all[row, :p] = radius[nodes, u]
            pair_user[row] = u
            row += 1
    amp = robust_amplitude_pairs(h_all, r_all, w_all)
    pair_rate = rate_from_amplitude(amp, inst.users.noise_w[pair_user], inst.bandwidth_hz)

    results: list[UnitResult] = []
    block_bc: dict[int, float] = {}
    row = 0
    qos = inst.users.qos_bps
    for members, k, _, users, _ in tx:
        rate_of = dict(zip(users, pair_rate[row:row + len(users)].tolist(), strict=True))
        row += len(users)
        worst = min(rate_of.values())
        if worst > 0:
            block_bc[k] = block_bc.get(k, 0.0) + sizes_bits[k] / worst
        for m in members:
            i, unit, _, source, status, power = prepared[m]
            rates = [rate_of[u] for u in unit.users]
            rmin = min(rates)
            zero = tuple(u for u, r in zip(unit.users, rates, strict=True) if r <= 0)
            if zero:
                violations.append(Violation("zero_rate", f"unit {i}: worst-case rate 0 (user out "
                                            "of every participant's reach)", users=zero,
                                            blocks=(k,), nodes=unit.nodes))
            low = tuple(u for u, r in zip(unit.users, rates, strict=True)
                        if 0 < r < qos[u] * (1 - QOS_RTOL))
            if low:
                violations.append(Violation("qos", f"unit {i}: worst-case rate below Q_u",
                                            users=low, blocks=(k,), nodes=unit.nodes))
            served[list(unit.users), k] = True
            results.append(UnitResult(i, k, unit.mode, unit.nodes, unit.users, np.array(rates),
                                      sizes_bits[k] / rmin if rmin > 0 else float("inf"),
                                      power, source, status))
    results.sort(key=lambda r: r.index)

    # ---- coverage -----------------------------------------------------------------------
    missing = demand & ~served
    undelivered = [(int(u), int(k)) for u, k in zip(*np.nonzero(missing), strict=True)]
    if undelivered:
        by_user: dict[int, list[int]] = {}
        for u, k in undelivered:
            by_user.setdefault(u, []).append(k)
        for u, ks in sorted(by_user.items()):
            violations.append(Violation("undelivered", f"{len(ks)} requested PB(s) of this user "
                                        "are delivered by no unit", users=(u,),
                                        blocks=tuple(ks)))

    mig = float(sum(block_mig.values()))
    bc = float(sum(block_bc.values()))
    return Evaluation(
        status="feasible" if not violations else "infeasible",
        total_delay_s=mig + bc, migration_delay_s=mig, broadcast_delay_s=bc,
        block_migration_s=block_mig, block_broadcast_s=block_bc, units=results,
        storage_used_bytes=used, storage_capacity_bytes=cap.copy(), violations=violations,
        undelivered=undelivered, n_requested_pairs=int(demand.sum()), n_migrations=len(seen),
        eval_time_s=time.perf_counter() - t0,
    )


def _check_storage_shape(inst: Instance, plan: Plan) -> str:
    if plan.n_nodes != inst.n_nodes:
        return f"plan has {plan.n_nodes} cache entries for {inst.n_nodes} nodes"
    for n, blocks in enumerate(plan.cache):
        if any(not isinstance(k, int | np.integer) or not 0 <= k < inst.n_blocks for k in blocks):
            return f"cache of node {n} holds a PB index out of range"
    if plan.model_copies is not None:
        if len(plan.model_copies) != inst.n_nodes:
            return (f"plan has {len(plan.model_copies)} model_copies entries for "
                    f"{inst.n_nodes} nodes")
        for n, models in enumerate(plan.model_copies):
            if any(not isinstance(j, int | np.integer) or not 0 <= j < inst.n_models
                   for j in models):
                return f"model_copies of node {n} hold a model index out of range"
    return ""


def _check_unit(inst: Instance, unit, i: int) -> Violation | None:
    k = unit.block
    if not 0 <= k < inst.n_blocks:
        return Violation("malformed", f"unit {i}: PB index {k} out of range")
    if unit.mode not in MODES:
        return Violation("malformed", f"unit {i}: unknown mode {unit.mode!r}", blocks=(k,))
    if not unit.nodes:
        return Violation("malformed", f"unit {i}: no participating node", blocks=(k,))
    if not unit.users:
        return Violation("malformed", f"unit {i}: no user", blocks=(k,))
    if min(unit.nodes) < 0 or max(unit.nodes) >= inst.n_nodes or len(set(unit.nodes)) != len(
            unit.nodes):
        return Violation("malformed", f"unit {i}: invalid or repeated node index", blocks=(k,))
    if min(unit.users) < 0 or max(unit.users) >= inst.n_users or len(set(unit.users)) != len(
            unit.users):
        return Violation("malformed", f"unit {i}: invalid or repeated user index", blocks=(k,))
    if unit.mode == "unicast" and len(unit.users) != 1:
        return Violation("malformed", f"unit {i}: a unicast unit serves exactly one user",
                         blocks=(k,), users=unit.users)
    return None


def _empty(inst, plan, violations, t0) -> Evaluation:
    z = np.zeros(inst.n_nodes, dtype=np.int64)
    return Evaluation("infeasible", 0.0, 0.0, 0.0, {}, {}, [], z, inst.nodes.storage_bytes.copy(),
                      violations, [], int(inst.demand.sum()), time.perf_counter() - t0)
