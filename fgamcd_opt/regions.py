r"""Regions: a large instance split into regions of nearby nodes, each solved independently (in
parallel, on the Dask executor the sweeps use), and stitched into one plan that the evaluator
scores as a whole (docs/model.md section 12).

**Split** (:func:`split_regions`). The nodes are partitioned by recursive coordinate bisection:
the node set is cut across its longer side at the weighted median, the weight of a node being
1 + the number of users associated with it (the work is roughly proportional to the requests),
into two parts whose numbers of regions are as equal as possible, recursively, until there are
``n_regions`` parts. Deterministic, O(N log N), and every region is a compact patch of the
metro area. A user belongs to the region of its associated (nearest) node.

**Borders** (the *halo*). A user near a border may be served better by a node of the
neighbouring region. Each region's sub-instance therefore also contains, as *halo nodes*, the
nodes of other regions within ``halo_m`` of one of its users (default 600 m, the distance at
which a Table II link's mean channel norm falls to its error radius, docs/model.md section 8:
beyond it a node is practically never useful, locality.py). A halo node has no storage in the
sub-instance (it caches only for its own region) but can receive PBs by migration and transmit,
so border users keep their strongest links.

**Stitch** (:func:`stitch`). The regions' plans are mapped back to the instance's indices:
caches and model copies are those of each region's own nodes; migrations are kept in region
order, except one to a node that already holds the PB in the stitched cache or already received
it from an earlier migration (the later region's units use that copy; dropping the repeat only
saves backhaul time); units are sent one after another, region after region (slot ids are
renumbered so that slots of different regions stay apart). The evaluator then scores the
stitched plan on the whole instance: the delay of a PB is the sum of every region's
transmissions of it, exactly as for an unsplit plan.

**What is lost.** A region's plan cannot use a node outside its core and halo, cache anything
for another region, or serve users of two regions in one transmission; ``solve_regions``
records the regions' sizes and times so the loss against the unsplit solve can be measured
where both finish (``benchmarks/bench_regions.py``).

Sub-instances (:func:`subinstance`) draw exactly the channels and backhaul rates of the whole
instance for their nodes and users (the same seeds, the same formula); they carry only what the
region needs, so a region task ships a small object to a Dask worker.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .backhaul import UniformBackhaul
from .channels import ErrorShape, RicianChannels, rician_draw
from .instance import Instance, Nodes, Users
from .lru import LRU
from .plan import DeliveryUnit, Migration, Plan

DEFAULT_HALO_M = 600.0


@dataclass
class Region:
    """Region ``index``: its own nodes (``core``), halo nodes and users (global indices)."""

    index: int
    core: np.ndarray
    halo: np.ndarray
    users: np.ndarray

    @property
    def nodes(self) -> np.ndarray:
        """Global index of every node of the sub-instance, in its order (core, then halo)."""
        return np.concatenate([self.core, self.halo]).astype(np.int64)


def partition_nodes(positions: np.ndarray, weights: np.ndarray, n_regions: int
                    ) -> list[np.ndarray]:
    """Recursive coordinate bisection of the nodes into ``n_regions`` parts (module
    docstring); returns sorted node indices per part."""
    positions = np.asarray(positions, dtype=float)
    weights = np.asarray(weights, dtype=float)
    n_regions = max(1, min(int(n_regions), len(positions)))

    def cut(idx: np.ndarray, parts: int) -> list[np.ndarray]:
        if parts == 1:
            return [np.sort(idx)]
        left_parts = parts // 2
        pts = positions[idx]
        axis = int(np.argmax(np.ptp(pts, axis=0))) if len(idx) > 1 else 0
        order = idx[np.lexsort((idx, pts[:, axis]))]
        cw = np.cumsum(weights[order])
        target = cw[-1] * left_parts / parts
        at = int(np.searchsorted(cw, target)) + 1
        if at > 1 and abs(cw[at - 2] - target) <= abs(cw[at - 1] - target):
            at -= 1
        # every part needs at least one node per region it will hold
        at = min(max(at, left_parts), len(order) - (parts - left_parts))
        return cut(order[:at], left_parts) + cut(order[at:], parts - left_parts)

    return cut(np.arange(len(positions)), n_regions)


def split_regions(inst: Instance, n_regions: int, halo_m: float = DEFAULT_HALO_M
                  ) -> list[Region]:
    """The regions of ``inst`` (module docstring)."""
    weights = 1.0 + np.bincount(inst.users.node, minlength=inst.n_nodes)
    parts = partition_nodes(inst.nodes.positions_m, weights, n_regions)
    region_of = np.empty(inst.n_nodes, dtype=np.int64)
    for r, core in enumerate(parts):
        region_of[core] = r
    out = []
    for r, core in enumerate(parts):
        users = np.flatnonzero(region_of[inst.users.node] == r)
        others = np.flatnonzero(region_of != r)
        halo = np.zeros(0, dtype=np.int64)
        if len(users) and len(others) and halo_m > 0:
            near = np.zeros(len(others), dtype=bool)
            up = inst.users.positions_m[users]
            for i in range(0, len(users), 2048):  # bounded memory at metro scale
                d = np.hypot(*(up[i:i + 2048, None, :]
                               - inst.nodes.positions_m[None, others, :]).transpose(2, 0, 1))
                near |= (d <= halo_m).any(axis=0)
            halo = others[near]
        out.append(Region(r, core.astype(np.int64), halo.astype(np.int64), users))
    return out


class RegionChannels:
    """The channels of a region: those of the whole instance for its nodes and users (the
    same draws, :func:`fgamcd_opt.channels.rician_draw`, or the sidecar's entries)."""

    kind = "region"

    def __init__(self, parent, nodes: np.ndarray, users: np.ndarray,
                 cache_bytes: int = 64_000_000):
        self.nodes = np.asarray(nodes, dtype=np.int64)
        self.users = np.asarray(users, dtype=np.int64)
        m = parent.shape[2]
        self.shape = (len(self.nodes), len(self.users), m)
        self._parent_spec = parent.spec()
        if isinstance(parent, RicianChannels):
            self._array = None
            self._seed, self._k_factor = parent.seed, parent.k_factor
            # every node's amplitude and direction to the region's users: a (PB, user) draw
            # covers all N nodes, as in the whole instance
            self._amp = parent.amplitude[:, self.users].copy()
            self._sin = parent.sin_theta[:, self.users].copy()
            self._m = np.arange(m)
        else:
            full = parent.array if hasattr(parent, "array") else None
            if full is None:
                raise TypeError(f"regions: unsupported channel source {type(parent).__name__}")
            self._array = np.ascontiguousarray(full[:, self.nodes][:, :, self.users])
            self._array.setflags(write=False)
        per_pair = 16 * max(self.shape[0], 1) * m
        self._cache = LRU(max(16, cache_bytes // per_pair))

    def user_channel(self, k: int, u: int) -> np.ndarray:
        if self._array is not None:
            return self._array[int(k)][:, int(u), :]
        key = (int(k), int(u))
        h = self._cache.get(key)
        if h is None:
            steering = np.exp(-1j * np.pi * self._sin[:, key[1], None] * self._m)
            h = rician_draw(self._seed, key[0], int(self.users[key[1]]),
                            self._amp[:, key[1]], steering, self._k_factor)[self.nodes]
            h.setflags(write=False)
            self._cache.put(key, h)
        return h

    def channel(self, k: int, users=None) -> np.ndarray:
        users = range(self.shape[1]) if users is None else users
        out = np.empty((self.shape[0], len(users), self.shape[2]), dtype=complex)
        for i, u in enumerate(users):
            out[:, i, :] = self.user_channel(k, u)
        return out

    def spec(self) -> dict:
        return {"kind": self.kind, "parent": self._parent_spec, "nodes": self.nodes.tolist(),
                "users": self.users.tolist()}


class RegionBackhaul:
    """The backhaul rates among a region's nodes (those of the whole instance)."""

    kind = "region"

    def __init__(self, parent, nodes: np.ndarray):
        self.nodes = np.asarray(nodes, dtype=np.int64)
        self._parent_spec = parent.spec()
        self._uniform = self._matrix = self._array = None
        if isinstance(parent, UniformBackhaul):  # a fresh one: no cached rates to ship
            self._uniform = UniformBackhaul(parent.seed, parent.low_bps, parent.high_bps,
                                            parent.n_nodes)
        elif hasattr(parent, "matrix"):
            self._matrix = parent.matrix[np.ix_(self.nodes, self.nodes)]
        else:
            self._array = np.ascontiguousarray(parent.array[:, self.nodes][:, :, self.nodes])
        for a in (self._matrix, self._array):
            if a is not None:
                a.setflags(write=False)

    def rates(self, k: int) -> np.ndarray:
        if self._uniform is not None:
            return self._uniform.rates(k)[np.ix_(self.nodes, self.nodes)]
        return self._matrix if self._matrix is not None else self._array[int(k)]

    def spec(self) -> dict:
        return {"kind": self.kind, "parent": self._parent_spec, "nodes": self.nodes.tolist()}


def subinstance(inst: Instance, region: Region) -> Instance:
    """The instance of one region: its core and halo nodes (halo storage 0), its users, the
    whole instance's channels, backhaul, repository and physical parameters."""
    nodes, users = region.nodes, region.users
    local = {int(g): i for i, g in enumerate(nodes)}
    storage = inst.nodes.storage_bytes[nodes].copy()
    storage[len(region.core):] = 0  # halo nodes cache for their own region only
    err = inst.error
    c = err.c_scalar if err.scalar else err.c[np.ix_(nodes, users)]
    return Instance(
        name=f"{inst.name}.region{region.index}",
        nodes=Nodes(ids=tuple(inst.nodes.ids[n] for n in nodes),
                    positions_m=inst.nodes.positions_m[nodes], antennas=inst.antennas,
                    power_max_w=inst.nodes.power_max_w[nodes], storage_bytes=storage),
        users=Users(ids=tuple(inst.users.ids[u] for u in users),
                    positions_m=inst.users.positions_m[users],
                    node=np.array([local[int(n)] for n in inst.users.node[users]],
                                  dtype=np.int64),
                    model=inst.users.model[users], qos_bps=inst.users.qos_bps[users],
                    noise_w=inst.users.noise_w[users]),
        repository=inst.repository, bandwidth_hz=inst.bandwidth_hz,
        backhaul=RegionBackhaul(inst.backhaul, nodes),
        channels=RegionChannels(inst.channels, nodes, users),
        error=ErrorShape(c, len(nodes), len(users)), area_m=inst.area_m,
        info_exchange_radius_m=inst.info_exchange_radius_m,
        description=f"region {region.index} of {inst.name}",
        provenance={"region_of": inst.fingerprint, "region": region.index,
                    "core_nodes": len(region.core), "halo_nodes": len(region.halo)})


def stitch(inst: Instance, regions: list[Region], plans: list[Plan | None],
           solver: str = "") -> Plan:
    """One plan of ``inst`` from the regions' plans (module docstring); a region without a
    plan contributes nothing (its users are then undelivered)."""
    cache: list[set[int]] = [set() for _ in range(inst.n_nodes)]
    copies = ([[] for _ in range(inst.n_nodes)]
              if any(p is not None and p.model_copies is not None for p in plans) else None)
    for region, plan in zip(regions, plans, strict=True):
        if plan is None:
            continue
        nodes = region.nodes
        for i, blocks in enumerate(plan.cache):
            cache[int(nodes[i])] |= {int(k) for k in blocks}
        for i, models in enumerate(plan.copies()):
            if copies is not None:
                copies[int(nodes[i])].extend(int(j) for j in models)
    out = Plan(cache=cache, model_copies=copies, solver=solver)
    holds = out.holds(inst.repository)
    received: set[tuple[int, int]] = set()
    slot_base = 0
    for region, plan in zip(regions, plans, strict=True):
        if plan is None:
            continue
        nodes, users = region.nodes, region.users
        for m in plan.migrations:
            src, dst, k = int(nodes[m.src]), int(nodes[m.dst]), int(m.block)
            if holds[dst, k] or (dst, k) in received:
                continue  # that node already has the PB: the later region uses it as is
            received.add((dst, k))
            out.migrations.append(Migration(src, dst, k))
        slots = [u.slot for u in plan.units if u.slot is not None]
        for u in plan.units:
            out.units.append(DeliveryUnit(
                u.block, tuple(int(users[i]) for i in u.users),
                tuple(int(nodes[i]) for i in u.nodes), mode=u.mode,
                slot=None if u.slot is None else slot_base + int(u.slot), model=u.model,
                beams=u.beams, beamforming=u.beamforming))
        slot_base += (max(slots) + 1) if slots else 0
    return out


@dataclass
class RegionTask:
    index: int
    instance: Instance
    solver: str  # registry reference
    params: dict
    seed: int
    time_limit_s: float | None


@dataclass
class RegionResult:
    index: int
    plan: Plan | None
    status: str
    message: str
    stats: dict = field(default_factory=dict)


def solve_region(task: RegionTask) -> RegionResult:
    """Run one region's solve (what a Dask worker executes; never raises)."""
    import resource

    from . import registry
    from .oracle import BeamformingOracle
    from .runner import run_solver

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    sub = task.instance
    try:
        cls = registry.get_solver(task.solver)
        oracle = BeamformingOracle()
        run = run_solver(sub, cls, task.params, seed=task.seed, time_limit_s=task.time_limit_s,
                         oracle=oracle)
    except Exception as exc:  # a region that fails leaves its users undelivered
        return RegionResult(task.index, None, "error", f"{type(exc).__name__}: {exc}")
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    rec = run.record
    stats = {"nodes": sub.n_nodes, "users": sub.n_users, "solve_s": rec.solve_time_s,
             "wall_s": time.perf_counter() - t0,
             "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
             "oracle_calls": rec.oracle_calls, "region_delay_s": rec.total_delay_s,
             "solver_status": rec.solver_status}
    return RegionResult(task.index, run.plan, rec.solver_status, rec.message, stats)


def solve_regions(inst: Instance, solver: str, params: dict | None, n_regions: int,
                  executor=None, seed: int = 0, time_limit_s: float | None = None,
                  halo_m: float = DEFAULT_HALO_M, progress=None) -> tuple[Plan, dict]:
    """Split ``inst`` into ``n_regions`` regions, solve each with ``solver`` (a registry
    reference) on ``executor`` (``experiments.executors``; None: one after another in this
    process) and stitch the plans. Returns (plan, info) with the regions' sizes, statuses and
    times; score the plan with :func:`fgamcd_opt.evaluator.evaluate`."""
    from .experiments.executors import InlineExecutor

    t0 = time.perf_counter()
    regions = split_regions(inst, n_regions, halo_m)
    tasks = [RegionTask(r.index, subinstance(inst, r), solver, dict(params or {}), seed,
                        time_limit_s) for r in regions]
    split_s = time.perf_counter() - t0
    ex = executor or InlineExecutor()
    results: dict[int, RegionResult] = {}

    def crashed(task, exc):
        return RegionResult(task.index, None, "error", f"worker lost: {exc}")

    for res in ex.map_unordered(solve_region, tasks, crashed):
        results[res.index] = res
        if progress is not None:
            progress(len(results) / len(tasks), f"region {len(results)}/{len(tasks)}")
    t1 = time.perf_counter()
    ordered = [results[r.index] for r in regions]
    plan = stitch(inst, regions, [r.plan for r in ordered], solver=solver)
    info = {
        "regions": len(regions), "halo_m": halo_m, "executor": getattr(ex, "description", ""),
        "split_s": split_s, "solve_wall_s": t1 - t0 - split_s,
        "stitch_s": time.perf_counter() - t1,
        "per_region": [{"index": r.index, "core_nodes": len(r.core),
                        "halo_nodes": len(r.halo), "users": len(r.users),
                        "status": res.status, "message": res.message[:300], **res.stats}
                       for r, res in zip(regions, ordered, strict=True)],
        "region_cpu_s": math.fsum(res.stats.get("cpu_s", 0.0) for res in ordered),
        "oracle_calls": int(sum(res.stats.get("oracle_calls", 0) for res in ordered)),
    }
    return plan, info
