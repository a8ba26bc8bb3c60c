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
malformed units. A plan with any violation is ``infeasible``. The total is +inf unless the plan
is complete, no transmission has a requester at worst-case rate 0 (8 S / 0 never ends), and it
breaks at most QoS (see :class:`Evaluation`); the delay of the transmissions with a positive
rate is still reported as ``delivered_delay_s``; nothing is ever NaN.

Phases (one function each): storage, migrations, units (validation, beams, power),
transmissions (slots), pair rates (one batched closed-form call), unit results, coverage.
:func:`score_block` runs the same phases for one PB (the MARL reward uses it).
See docs/model.md sections 2-5.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .instance import Instance
from .jsonio import jsonable
from .oracle import BeamformingOracle, default_oracle
from .plan import MODES, Plan
from .rates import rate_from_amplitude, robust_amplitude_pairs, transfer_delay_s

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
    """The evaluator's verdict on one plan.

    ``total_delay_s`` (s) is the objective T of eq. 8 when the plan is *comparable*: complete
    (every requested (user, PB) pair served at a positive worst-case rate), with no transmission
    whose worst-case rate is 0 for one of its users (that transmission lasts 8 S / 0 = inf, even
    when another unit serves the user: docs/model.md section 5) and with no violation other than
    QoS; otherwise it is +inf, so an invalid, incomplete or endless plan never ranks above a
    valid one and never scores below a valid lower bound. ``delivered_delay_s`` always holds the
    finite part (migrations + transmissions with a positive rate).
    """

    status: str  # "feasible" | "infeasible"
    total_delay_s: float  # T (eq. 8), or +inf: incomplete, a zero-rate transmission, invalid
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
    delivered_delay_s: float = 0.0  # finite part, whatever the verdict
    complete: bool = True  # every requested pair served at a positive rate
    unserved_pairs: int = 0  # requested (user, PB) pairs not served at a positive rate
    zero_rate_transmissions: int = 0  # transmissions with a user at rate 0 (each lasts inf)

    @property
    def comparable(self) -> bool:
        """T is finite: complete, no zero-rate transmission, at most QoS violations."""
        return bool(np.isfinite(self.total_delay_s))

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
        tot = self.delivered_delay_s
        return {
            "status": self.status,
            "total_delay_s": self.total_delay_s,  # +inf (JSON null) when not comparable
            "delivered_delay_s": tot,
            "complete": self.complete,
            "unserved_pairs": self.unserved_pairs,
            "zero_rate_transmissions": self.zero_rate_transmissions,
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

    def to_dict(self, inst: Instance, max_items: int | None = None) -> dict:
        """Strict-JSON form: +inf (an incomplete total, a zero-rate unit's delay, an overflowing
        power) becomes null. ``max_items``: list at most that many violations, undelivered
        pairs and units (the counts stay in the summary; ``truncated`` gives each list's full
        length): a plan leaving 10^6 users unserved would otherwise list 1.6e7 pairs."""
        bid = [b.id for b in inst.repository.blocks]
        cap = len if max_items is None else (lambda seq: min(len(seq), max_items))
        lists = {"violations": self.violations, "undelivered": self.undelivered,
                 "units": self.units}
        truncated = {k: len(v) for k, v in lists.items() if cap(v) < len(v)}
        return jsonable({
            **self.summary(inst),
            **({"truncated": truncated} if truncated else {}),
            "violations": [v.to_dict(inst) for v in self.violations[:cap(self.violations)]],
            "undelivered": [{"user": inst.users.ids[u], "block": bid[k]}
                            for u, k in self.undelivered[:cap(self.undelivered)]],
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
                for r in self.units[:cap(self.units)]
            ],
        })


# Violations that make a plan invalid (not merely short of QoS): such a plan's total is +inf for
# ranking, so it never looks better than a valid one.
STRUCTURAL_KINDS = ("malformed", "storage", "migration_source", "migration_duplicate",
                    "not_holding", "spurious_user", "power", "slot_conflict")
INCOMPLETE_KINDS = ("zero_rate", "undelivered")
VIOLATION_KINDS = (*STRUCTURAL_KINDS, "qos", *INCOMPLETE_KINDS)


def evaluate(inst: Instance, plan: Plan, oracle: BeamformingOracle | None = None) -> Evaluation:
    """Score ``plan`` on ``inst``. Units without beams get them from ``oracle`` (default: the
    shared ``fast`` oracle, or the unit's ``beamforming`` method)."""
    return _score(inst, plan, oracle or default_oracle(), blocks=None)


@dataclass
class BlockScore:
    """The delay of one PB given its transmissions (eq. 7), from the same code path as
    :func:`evaluate`. ``total_s`` is +inf when a requester of the PB is not served at a
    positive rate; ``feasible`` also requires QoS and no structural violation."""

    block: int
    migration_s: float
    broadcast_s: float
    total_s: float
    rates_bps: dict[int, float]
    qos_violating_users: tuple[int, ...]
    undelivered_users: tuple[int, ...]
    violations: list[Violation]

    @property
    def feasible(self) -> bool:
        return not self.violations


def score_block(inst: Instance, k: int, units, migrations=(), oracle: BeamformingOracle | None
                = None, holds=None) -> BlockScore:
    """Per-PB scorer: migration + broadcast delay of PB k with ``units`` (DeliveryUnit of PB k)
    and ``migrations`` (Migration of PB k), and each requester's worst-case rate.

    ``holds``: (N,) bool, the nodes caching k (a_n(k)); default: every migration source and
    every unit node that does not receive k by migration (eqs. 2-3 then hold by construction).
    Storage (eq. 1) is a whole-plan constraint and is not checked here. Used by the MARL reward
    so that the evaluator stays the single source of truth for delays.
    """
    k = int(k)
    units = list(units)
    migrations = list(migrations)
    if any(u.block != k for u in units) or any(m.block != k for m in migrations):
        raise ValueError(f"score_block: every unit and migration must carry PB {k}")
    if holds is None:
        dst = {m.dst for m in migrations}
        holders = {m.src for m in migrations} | {n for u in units for n in u.nodes
                                                 if n not in dst}
    else:
        holders = set(np.flatnonzero(np.asarray(holds, dtype=bool)).tolist())
    cache = [[k] if n in holders else [] for n in range(inst.n_nodes)]
    plan = Plan(cache=cache, migrations=migrations, units=units)
    ev = _score(inst, plan, oracle or default_oracle(), blocks=(k,))
    rates: dict[int, float] = {}
    for r in ev.units:
        for u, rate in zip(r.users, r.rates_bps.tolist(), strict=True):
            rates[u] = max(rates.get(u, 0.0), rate)
    return BlockScore(
        block=k, migration_s=ev.migration_delay_s, broadcast_s=ev.broadcast_delay_s,
        total_s=ev.delivered_delay_s if ev.complete and not ev.zero_rate_transmissions
        else float("inf"), rates_bps=rates,
        qos_violating_users=tuple(ev.qos_violating_users()),
        undelivered_users=tuple(ev.undelivered_users()), violations=ev.violations)


def _score(inst: Instance, plan: Plan, oracle: BeamformingOracle, blocks) -> Evaluation:
    """The phases of an evaluation; ``blocks`` restricts coverage to those PBs (per-PB scoring,
    storage unchecked) or is None for the whole plan."""
    t0 = time.perf_counter()
    violations: list[Violation] = []
    demand = inst.demand if blocks is None else _demand_of(inst, blocks)
    problem = _check_storage_shape(inst, plan)
    if problem:
        violations.append(Violation("malformed", problem))
        return _malformed(inst, violations, demand, t0)
    if blocks is None:
        used = plan.storage_used(inst.repository)
        _check_storage(inst, used, violations)
    else:
        used = np.zeros(inst.n_nodes, dtype=np.int64)
    holds = plan.holds(inst.repository)
    block_mig, received, n_mig = _score_migrations(inst, plan, holds, violations)
    prepared = _prepare_units(inst, plan, holds | received, demand, oracle, violations)
    tx = _transmissions(prepared, violations)
    pair_rate = _pair_rates(inst, tx)
    results, block_bc, served, endless = _unit_results(inst, tx, prepared, pair_rate, demand,
                                                       violations)
    undelivered = _coverage(demand, served, violations)
    mig = float(sum(block_mig.values()))
    bc = float(sum(block_bc.values()))
    unserved = int((demand & ~served).sum())
    return _finish(inst, violations, mig, bc, block_mig, block_bc, results, used, undelivered,
                   demand, n_mig, t0, unserved, endless)


def _demand_of(inst: Instance, blocks) -> np.ndarray:
    demand = np.zeros_like(inst.demand)
    cols = list(blocks)
    demand[:, cols] = inst.demand[:, cols]
    return demand


def _finish(inst, violations, mig, bc, block_mig, block_bc, results, used, undelivered, demand,
            n_mig, t0, unserved, endless=0) -> Evaluation:
    kinds = {v.kind for v in violations}
    complete = unserved == 0 and "malformed" not in kinds
    # a transmission with a user at worst-case rate 0 lasts 8 S / 0 = inf (docs/model.md
    # section 5): dropping it instead would serve its other users in zero time, below any bound
    comparable = complete and not endless and not kinds & set(STRUCTURAL_KINDS)
    delivered = mig + bc
    return Evaluation(
        status="feasible" if not violations else "infeasible",
        total_delay_s=delivered if comparable else float("inf"),
        migration_delay_s=mig, broadcast_delay_s=bc,
        block_migration_s=block_mig, block_broadcast_s=block_bc, units=results,
        storage_used_bytes=used, storage_capacity_bytes=inst.nodes.storage_bytes.copy(),
        violations=violations, undelivered=undelivered, n_requested_pairs=int(demand.sum()),
        n_migrations=n_mig, eval_time_s=time.perf_counter() - t0,
        delivered_delay_s=delivered, complete=complete, unserved_pairs=unserved,
        zero_rate_transmissions=endless)


def _check_storage(inst: Instance, used: np.ndarray, violations: list[Violation]) -> None:
    """eq. 1: what each node stores fits its capacity."""
    cap = inst.nodes.storage_bytes
    for n in np.flatnonzero(used > cap):
        violations.append(Violation("storage", f"node {inst.nodes.ids[n]} stores {used[n]} B > "
                                               f"capacity {cap[n]} B", nodes=(int(n),)))


def _score_migrations(inst: Instance, plan: Plan, holds: np.ndarray,
                      violations: list[Violation]):
    """eq. 2 (only cached PBs migrate) and the sequential migration delay per PB (eq. 7).
    Returns (delay per PB, (N, K) received, number of valid migrations)."""
    n_nodes, n_blocks = inst.n_nodes, inst.n_blocks
    sizes = inst.repository.sizes
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
        delay = transfer_delay_s(sizes[k], inst.backhaul_rates(k)[s, d])
        block_mig[k] = block_mig.get(k, 0.0) + delay
        received[d, k] = True
    return block_mig, received, len(seen)


def _beam_norms(beams: np.ndarray) -> np.ndarray:
    """Per-node ||w_n|| without overflow (beams of a hostile plan may be ~1e200)."""
    peak = np.abs(beams).max(axis=1) if beams.size else np.zeros(len(beams))
    scale = np.where(peak > 0, peak, 1.0)
    with np.errstate(over="ignore"):
        return np.linalg.norm(beams / scale[:, None], axis=1) * scale


def _prepare_units(inst: Instance, plan: Plan, participation: np.ndarray, demand: np.ndarray,
                   oracle: BeamformingOracle, violations: list[Violation]) -> list[tuple]:
    """Validate each unit (eq. 3, users, model, power eq. 9d) and get its beams (from the plan,
    or from the oracle). Returns (unit index, unit, beams, beam source, oracle status, power)."""
    rep = inst.repository
    prepared = []
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
        norm = _beam_norms(beams)
        with np.errstate(over="ignore"):
            power = np.square(norm)
        limit = np.sqrt(inst.nodes.power_max_w[list(nodes)] * (1 + POWER_RTOL))
        over = () if (norm <= limit).all() else [
            n for n, a, b in zip(nodes, norm, limit, strict=True) if a > b]
        if over:
            violations.append(Violation("power", f"unit {i}: beam power above P_max",
                                        nodes=tuple(over), blocks=(k,)))
        prepared.append((i, unit, beams, source, status, power))
    return prepared


def _transmissions(prepared: list[tuple], violations: list[Violation]) -> list[tuple]:
    """A transmission is a unit alone, or the units sharing a slot (same PB, disjoint nodes,
    sent at once). Returns (members, PB, nodes, users, stacked beams) per transmission."""
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
    tx = []
    for members in groups:
        k = prepared[members[0]][1].block
        nodes = [n for m in members for n in prepared[m][1].nodes]
        users = list(dict.fromkeys(u for m in members for u in prepared[m][1].users))
        beams = prepared[members[0]][2] if len(members) == 1 else np.vstack(
            [prepared[m][2] for m in members])
        tx.append((members, k, nodes, users, beams))
    return tx


EVAL_JSON_ITEMS = 100_000  # the CLIs list at most this many violations / pairs / units
PAIR_BATCH = 65_536  # (transmission, user) pairs scored per call: bounds the padded arrays


def _pair_rates(inst: Instance, tx: list[tuple]) -> np.ndarray:
    """Exact worst-case rate of every (transmission, user) pair (eq. 6, docs/model.md section 3).

    Every user hears every node of its transmission (they all send the same PB symbol), so its
    worst case runs over all of them. Pairs are stacked in batches of at most ``PAIR_BATCH``,
    each padded to its own largest transmission, and scored in one call per batch (memory stays
    bounded at any U; the result does not depend on the batching)."""
    rates = []
    batch: list[tuple] = []
    n_pairs = 0
    for t in tx:
        batch.append(t)
        n_pairs += len(t[3])
        if n_pairs >= PAIR_BATCH:
            rates.append(_pair_rates_batch(inst, batch, n_pairs))
            batch, n_pairs = [], 0
    if batch or not rates:
        rates.append(_pair_rates_batch(inst, batch, n_pairs))
    return np.concatenate(rates)


def _pair_rates_batch(inst: Instance, tx: list[tuple], n_pairs: int) -> np.ndarray:
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
    return rate_from_amplitude(amp, inst.users.noise_w[pair_user], inst.bandwidth_hz)


def _unit_results(inst: Instance, tx, prepared, pair_rate, demand, violations):
    """Per-unit rates, the broadcast delay per PB (8 S / worst rate per transmission, summed
    over the transmissions with a positive worst rate), zero-rate and QoS violations, which
    (user, PB) pairs are served at a positive rate, and how many transmissions have a user at
    rate 0 (each of them lasts inf, which makes T infinite)."""
    sizes = inst.repository.sizes
    served = np.zeros_like(demand)
    results: list[UnitResult] = []
    block_bc: dict[int, float] = {}
    row = 0
    endless = 0
    qos = inst.users.qos_bps
    for members, k, _, users, _ in tx:
        rate_of = dict(zip(users, pair_rate[row:row + len(users)].tolist(), strict=True))
        row += len(users)
        worst = min(rate_of.values())
        if worst > 0:
            block_bc[k] = block_bc.get(k, 0.0) + transfer_delay_s(sizes[k], worst)
        else:
            endless += 1
        for m in members:
            i, unit, _, source, status, power = prepared[m]
            rates = [rate_of[u] for u in unit.users]
            rmin = min(rates)
            zero = tuple(u for u, r in zip(unit.users, rates, strict=True) if r <= 0)
            if zero:
                violations.append(Violation("zero_rate", f"unit {i}: worst-case rate 0 (the "
                                            "error margin covers the user's signal): its "
                                            "transmission never ends", users=zero,
                                            blocks=(k,), nodes=unit.nodes))
            low = tuple(u for u, r in zip(unit.users, rates, strict=True)
                        if 0 < r < qos[u] * (1 - QOS_RTOL))
            if low:
                violations.append(Violation("qos", f"unit {i}: worst-case rate below Q_u",
                                            users=low, blocks=(k,), nodes=unit.nodes))
            live = [u for u, r in zip(unit.users, rates, strict=True) if r > 0]
            served[live, k] = True
            results.append(UnitResult(i, k, unit.mode, unit.nodes, unit.users, np.array(rates),
                                      transfer_delay_s(sizes[k], rmin), power, source, status))
    results.sort(key=lambda r: r.index)
    return results, block_bc, served, endless


def _coverage(demand: np.ndarray, served: np.ndarray, violations: list[Violation]):
    """Requested (user, PB) pairs no unit serves (zero-rate pairs are reported as zero_rate)."""
    missing = demand & ~served
    for v in violations:
        if v.kind == "zero_rate":
            missing[np.ix_(list(v.users), list(v.blocks))] = False
    uu, kk = np.nonzero(missing)  # row-major: by user, then PB (vectorised: 10^6 users)
    undelivered = list(zip(uu.tolist(), kk.tolist(), strict=True))
    starts = np.flatnonzero(np.r_[True, uu[1:] != uu[:-1]]).tolist() if uu.size else []
    for a, b in zip(starts, [*starts[1:], int(uu.size)][:len(starts)], strict=True):
        violations.append(Violation("undelivered", f"{b - a} requested PB(s) of this user "
                                    "are delivered by no unit", users=(int(uu[a]),),
                                    blocks=tuple(kk[a:b].tolist())))
    return undelivered


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


def _malformed(inst, violations, demand, t0) -> Evaluation:
    """A plan too malformed to score: nothing is delivered, the total is +inf."""
    z = np.zeros(inst.n_nodes, dtype=np.int64)
    return Evaluation(
        status="infeasible", total_delay_s=float("inf"), migration_delay_s=0.0,
        broadcast_delay_s=0.0, block_migration_s={}, block_broadcast_s={}, units=[],
        storage_used_bytes=z, storage_capacity_bytes=inst.nodes.storage_bytes.copy(),
        violations=violations, undelivered=[], n_requested_pairs=int(demand.sum()),
        n_migrations=0, eval_time_s=time.perf_counter() - t0, delivered_delay_s=0.0,
        complete=False, unserved_pairs=int(demand.sum()))
