"""The certified lower bound: one computation, whoever asks (docs/milp.md section 3.6).

``compute_bound(inst, options)`` runs the bound stages of docs/milp.md sections 3-3.5 within
one wall-clock budget ``options.time_limit_s``:

1. the optimistic model (per-user cluster costs, ``formulation.optimistic_data``);
2. the all-node multicast floors L_k (``refine_group_bounds``), until ``FLOOR_SHARE`` of the
   budget;
3. the bound MILP (HiGHS, MIP gap ``options.mip_gap``), with what is left of the budget;
4. up to ``options.cluster_rounds`` rounds of cluster-specific partition bounds for the clusters
   the bound MILP picks (until ``ROUNDS_SHARE`` of the budget), each followed by a re-solve
   with what is left.

Every stage checks the clock (the group bounds inside their phase search and SDP, the workers
are killed at their deadline, HiGHS gets the time left after its model is built), so the bound
returns within the budget plus a grace of a few seconds (``fgamcd_opt.solver.GRACE_S``). A cut
stage only weakens the bound, never invalidates it; ``budget_hit`` says whether one was cut.

The result depends only on the instance and the options: the stages get a fresh ``fast``
oracle of their own (its answers seed and skip group bounds, and a shared oracle's answers
depend on what it was asked before, fgamcd_opt/oracle/core.py), HiGHS a fixed seed. It is
memoised per (instance fingerprint, options): the milp solver and ``fgamcd-solve --bound`` get
the same object. A memoised result is reused for a smaller budget, or for any budget when no
stage was cut (a larger budget could not change it).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from fgamcd_opt.caching import warm_caching
from fgamcd_opt.group_bound import GroupBoundStats
from fgamcd_opt.jsonio import jsonable
from fgamcd_opt.oracle import BeamformingOracle

from . import formulation as milp

FLOOR_SHARE = 0.5  # the all-node floors stop at this share of the budget
ROUNDS_SHARE = 0.8  # the cluster rounds' group bounds stop at this share of the budget
MEMO_SIZE = 16


@dataclass(frozen=True)
class BoundOptions:
    """What the certified bound depends on (besides the instance).

    time_limit_s : wall-clock budget of the whole bound (s)
    group_bounds : False = per-user cluster costs only (no multicast floors, no rounds)
    cluster_rounds : rounds of cluster bounds after the first bound MILP (0: none)
    workers : processes for the group bounds (the same values for any count)
    max_cluster : 0 = all minimal clusters; k > 0 = truncate at k nodes (overflow option)
    mip_gap : relative MIP gap at which HiGHS stops (its dual bound is certified at any stop)
    threads : HiGHS threads
    milp_time_s : most seconds per bound MILP solve (also capped by the budget)
    """

    time_limit_s: float = 60.0
    group_bounds: bool = True
    cluster_rounds: int = 2
    workers: int = 2
    max_cluster: int = 0
    mip_gap: float = 0.01
    threads: int = 2
    milp_time_s: float = 120.0

    def key(self) -> tuple:
        """Everything but the budget."""
        return tuple(v for k, v in asdict(self).items() if k != "time_limit_s")


@dataclass
class BoundResult:
    """A computed bound and what the milp solver's primal reuses (read-only for callers)."""

    bound: float | None  # certified lower bound (s), None if none could be computed
    info: dict  # JSON-ready: options, stages (seconds, cut), budget_hit, scope, excluded
    data: milp.MilpData  # the tightened optimistic model
    outcome: milp.MilpOutcome | None  # the last bound MILP solve with a feasible caching
    warm: milp.Assignment | None  # the MIP start of the first solve (planner caching)
    chosen: dict[int, list[tuple[int, ...]]] = field(default_factory=dict)
    # the distinct feasible cachings (N, K) of every bound MILP solve, last first: the cluster
    # rounds move the caching the primal starts from, and no one of them is reliably the best
    # start (paper-default 0.25 GB seed 0: primal 1.8125 / 1.8153 / 1.8601 s from rounds 0-2)
    cachings: list = field(default_factory=list)
    excluded: list[tuple[int, int]] = field(default_factory=list)  # unreachable pairs
    infeasible: str = ""  # why the requested PBs cannot all be cached ('' if they can)
    budget_hit: bool = False
    options: BoundOptions = field(default_factory=BoundOptions)


_MEMO: dict = {}


def compute_bound(inst, options: BoundOptions = BoundOptions(), progress=None) -> BoundResult:
    """The certified bound of the module docstring, memoised per (fingerprint, options).
    ``progress(fraction, message)``, if given, hears about each stage."""
    key = (inst.fingerprint, options.key())
    hit = _MEMO.get(key)
    if hit is not None and (hit.options.time_limit_s >= options.time_limit_s
                            or not hit.budget_hit):
        hit.info = {**hit.info, "memoised": True}
        return hit
    res = _compute(inst, options, progress or (lambda f, m: None))
    _MEMO[key] = res
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    return res


def _compute(inst, opts: BoundOptions, progress) -> BoundResult:
    t0 = time.perf_counter()
    progress(0.0, "bound: optimistic model")
    start = time.monotonic()
    budget = max(float(opts.time_limit_s), 0.0)
    end = start + budget
    oracle = BeamformingOracle("fast")
    oracle.deadline = end  # an oracle call in a stage stops at the bound's end too
    data = milp.optimistic_data(inst, opts.max_cluster or None)
    excluded = data.excluded_pairs()
    stages: dict = {"optimistic_data_s": time.perf_counter() - t0}
    info: dict = {
        "method": "bound MILP (pyomo + HiGHS) with per-user and multicast partition cluster "
                  "bounds (docs/milp.md section 3)",
        "options": asdict(opts), "per_user_trivial_bound": milp.trivial_bound(data),
        "per_user_bound_clusters": data.n_clusters, "stages": stages}
    cut = False
    rounds = opts.cluster_rounds if opts.group_bounds else 0
    if opts.group_bounds:
        progress(0.05, "bound: multicast floors")
        gb = milp.refine_group_bounds(inst, data, oracle, FLOOR_SHARE * budget - (
            time.monotonic() - start), prune=rounds == 0, workers=opts.workers)
        info["group_bound"] = gb.summary()
        cut |= gb.blocks_skipped_budget > 0 or gb.groups_cut > 0
    result = BoundResult(None, info, data, None, None, excluded=excluded, options=opts)
    info.update(trivial_bound=milp.trivial_bound(data), bound_clusters=data.n_clusters,
                bound_truncated_blocks=data.truncated_blocks, excluded_pairs=len(excluded),
                excluded=[[inst.users.ids[u], inst.repository.blocks[k].id]
                          for u, k in excluded],
                bound_scope="reachable (user, PB) pairs" if excluded else "all requested pairs")
    result.infeasible = milp.storage_infeasibility(inst, data)
    if not result.infeasible:
        result.warm = milp.complete(data, warm_caching(inst, [o.block for o in data.blocks]))
        progress(FLOOR_SHARE, "bound: MILP")
        out = _solve(data, inst, opts, result.warm, end)
        stages["milp"] = [out.summary()]
        cut |= out.status == "time_limit"
        bound = milp.certified_bound(out, data)
        _note_choices(result.chosen, out)
        _note_caching(result.cachings, out)
        refined: set = set()
        info["cluster_bound_rounds"] = []
        for _ in range(rounds):
            left = start + ROUNDS_SHARE * budget - time.monotonic()
            if out.assignment is None or not out.assignment.feasible:
                break
            if out.objective_s is not None and out.objective_s <= milp.trivial_bound(
                    data) * (1 + 1e-3):
                break  # storage does not bind: each PB already sits on its cheapest cluster
            if left <= 0:
                cut = True
                break
            stats = GroupBoundStats()
            done = len(info["cluster_bound_rounds"])
            progress(FLOOR_SHARE + (1 - FLOOR_SHARE) * (done + 1) / (rounds + 1),
                     f"bound: cluster round {done + 1}")
            n_up, secs = milp.refine_cluster_bounds(inst, data, out.assignment.choices, left,
                                                    refined, stats=stats, oracle=oracle,
                                                    workers=opts.workers)
            info["cluster_bound_rounds"].append({"raised": n_up, "time_s": secs,
                                                 "groups_cut": stats.groups_cut})
            # cut: a group bound stopped, or the round used all its time (clusters skipped)
            cut |= stats.groups_cut > 0 or time.monotonic() >= start + ROUNDS_SHARE * budget
            if n_up == 0:
                break
            prev = out
            out = _solve(data, inst, opts, milp.complete(data, prev.assignment.holds), end)
            stages["milp"].append(out.summary())
            cut |= out.status == "time_limit"
            new = milp.certified_bound(out, data)
            info["cluster_bound_rounds"][-1]["bound"] = new
            _note_choices(result.chosen, out)
            _note_caching(result.cachings, out)
            if new is not None:
                bound = new if bound is None else max(bound, new)
            if out.assignment is None or not out.assignment.feasible:
                out = prev  # keep a caching for the primal; the bound above stays
                break
        result.bound, result.outcome = bound, out
        if out.status == "infeasible":
            result.infeasible = ("HiGHS proved that the requested PBs cannot all be cached at "
                                 "least once within the storage capacities")
        info.update(milp_status=out.status, milp_gap=out.gap,
                    bound_source="HiGHS dual bound" if out.dual_bound_s is not None
                    and out.dual_bound_s >= info["trivial_bound"] else "no-storage-limit bound")
    result.budget_hit = bool(cut)
    info.update(bound=result.bound, bound_certified=result.bound is not None and data.complete,
                infeasible=result.infeasible, budget_hit=result.budget_hit,
                time_s=time.perf_counter() - t0)
    result.info = jsonable(info)
    progress(1.0, "bound: done")
    return result


def _solve(data, inst, opts: BoundOptions, warm, end: float) -> milp.MilpOutcome:
    return milp.solve_milp(data, inst.n_blocks, opts.milp_time_s, opts.mip_gap, opts.threads,
                           warm_start=warm, seed=0, deadline=end)


def _note_caching(cachings: list, outcome) -> None:
    """Keep the caching of a bound MILP solve if it is feasible and new."""
    a = outcome.assignment
    if a is not None and a.feasible and not any(np.array_equal(a.holds, h) for h in cachings):
        cachings.insert(0, a.holds.copy())


def _note_choices(chosen: dict, outcome) -> None:
    """The clusters a bound MILP chose (good primal candidates, docs/milp.md section 2.2)."""
    if outcome.assignment is not None and outcome.assignment.feasible:
        for ch in outcome.assignment.choices:
            if ch.index >= 0:
                chosen.setdefault(ch.block, []).append(tuple(int(n) for n in ch.cluster))


def certified_lower_bound(inst, oracle=None, time_limit_s: float = 60.0, bound_workers: int = 2,
                          progress=None, **options) -> tuple[float | None, dict]:
    """A certified lower bound (seconds) on the total delay of every plan for ``inst`` whose
    every transmission has finite delay, whatever its delivery structure (CoMP broadcast,
    unicast, partial groups, slots), within ``time_limit_s`` plus a few seconds: the bound of
    :func:`compute_bound` with those options (``options``: the other :class:`BoundOptions`
    fields). ``oracle`` is not used (the bound has its own; kept for compatibility). Returns
    (bound or None, metadata: options, stages, budget_hit, scope, excluded pairs, memoised)."""
    del oracle
    opts = replace(BoundOptions(), time_limit_s=float(time_limit_s), workers=int(bound_workers),
                   **options)
    res = compute_bound(inst, opts, progress)
    return res.bound, dict(res.info)


__all__ = ["BoundOptions", "BoundResult", "certified_lower_bound", "compute_bound",
           "FLOOR_SHARE", "ROUNDS_SHARE"]
