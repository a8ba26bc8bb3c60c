"""milp: caching, migration and cluster choice by MILP (pyomo + HiGHS), with a certified bound.

Two MILPs of the same form (solvers/milp/formulation.py, docs/milp.md):

1. the *optimistic* MILP: cluster delays from a rate no beamformer can exceed; HiGHS's dual bound
   is a certified lower bound on the delay of every plan (returned as ``SolveResult.bound``);
2. the *oracle* MILP (``rate_model=oracle``, default): cluster delays of the robust oracle's
   beams, for a restricted candidate set per PB: the ``oracle_candidates`` best clusters of at
   most ``max_cluster_oracle`` nodes (default: any size), ranked by optimistic delay plus
   participation cost under the bound MILP's caching, plus the cluster the shared planner picks
   for that caching (a group no common beam serves also gets a one-unit-per-user option). Its
   MIP start is the bound MILP's caching, completed, so its plan is never worse (in the model)
   than the planner's delivery on that caching. ``rate_model=optimistic`` returns that planner
   plan instead (no second MILP).

A (user, PB) pair whose rate bound is 0 from every node can never be served; with
``unreachable=exclude`` (default) such pairs are left out (the plan reports them undelivered and
the bound covers the reachable pairs), with ``unreachable=infeasible`` the solver reports
infeasible and lists them.
"""

from __future__ import annotations

import time

import numpy as np

from fgamcd_opt.caching import fill_caching, repair_storage
from fgamcd_opt.errors import SolverRefusal
from fgamcd_opt.group_bound import MAX_EXACT_USERS
from fgamcd_opt.jsonio import jsonable
from fgamcd_opt.params import Param
from fgamcd_opt.plan import Plan
from fgamcd_opt.planner import (
    BlockData,
    DeliveryResult,
    PartitionHints,
    PlannerOptions,
    plan_transmissions,
    quick_options,
    second_pass,
)
from fgamcd_opt.solver import FALLBACK_S, SolveResult, SolveStatus

from . import formulation as milp
from .certified import BoundOptions, certified_lower_bound, compute_bound

# shares of the run's time limit (docs/milp.md section 3.6): the certified bound gets at most
# BOUND_SHARE of it, the planner's delivery runs until PLANNER_SHARE (quick fallback after), the
# oracle-rated candidates until ORACLE_SHARE (one candidate per PB after), the oracle MILP
# until the limit
BOUND_SHARE = 0.5
MAX_REQUESTED_PAIRS = 1_000_000  # larger instances are refused (their per-user bounds alone
# would draw every pair's channel: 10^6 users request 1.6e7 pairs)
PLANNER_SHARE = 0.65
ORACLE_SHARE = 0.8


def _pairs_text(inst, pairs: list[tuple[int, int]], limit: int = 12) -> str:
    items = [f"{inst.users.ids[u]}/{inst.repository.blocks[k].id}" for u, k in pairs[:limit]]
    more = f" and {len(pairs) - limit} more" if len(pairs) > limit else ""
    return ", ".join(items) + more


class MilpSolver:
    name = "milp"
    description = ("MILP over caching, migration and cluster choice (pyomo + HiGHS): oracle-rate "
                   "primal plan and a certified lower bound on the delay")
    params = (
        Param("time_limit", float, 120.0, "HiGHS time limit per MILP solve, seconds"),
        Param("mip_gap", float, 0.01, "relative MIP gap at which HiGHS stops the bound MILP "
              "(its dual bound is certified at any stop)"),
        Param("primal_mip_gap", float, 0.001, "relative MIP gap at which HiGHS stops the "
              "oracle-rate (primal) MILP: 0.01 left 1.4% of delay on paper-default 0.25 GB "
              "seed 0 (docs/milp.md section 2.2)"),
        Param("threads", int, 2, "HiGHS threads"),
        Param("rate_model", str, "oracle", "primal plan: oracle (oracle-rate MILP) or optimistic "
              "(the shared planner on the bound MILP's caching)", choices=milp.RATE_MODELS),
        Param("max_cluster_oracle", int, 0, "most nodes in an oracle candidate cluster and in "
              "the planner's clusters (0: all nodes)"),
        Param("oracle_candidates", int, 4, "oracle-evaluated clusters per PB (plus the "
              "planner's)"),
        Param("cluster_bound_rounds", int, 2, "rounds of cluster-specific partition bounds "
              "for the clusters the bound MILP picks, each followed by a re-solve (0: off)"),
        Param("multistart_users", int, 6, "broadcasts to at least this many users also get a "
              "multi-start oracle solve in the oracle MILP, the better beams kept (0: off)"),
        Param("max_cluster_bound", int, 0, "0: all minimal clusters (truncated at "
              f"{milp.TRUNCATED_MAX_CLUSTER} nodes + overflow option above "
              f"{milp.FULL_ENUMERATION_MAX_NODES} useful nodes); k > 0: truncate at k"),
        Param("warm_start", bool, True, "MIP starts (planner caching for the bound MILP)"),
        Param("qos_penalty", float, 10.0, "seconds added per PB whose oracle beams miss a QoS "
              "floor (oracle model; the paper's r1 = 10)"),
        Param("group_bound_time", float, 60.0, "seconds for the certified bound: multicast "
              "(partition) group bounds, cluster rounds and the bound MILP solves, the same "
              "computation as fgamcd-solve --bound-time-limit (0: per-user bound only)"),
        Param("bound_workers", int, 2, "worker processes for the group bounds of the "
              "multicast bound (same values as 1; 1: computed in this process)"),
        Param("unreachable", str, "exclude", "(user, PB) pairs no node can reach: exclude them "
              "or report infeasible", choices=("exclude", "infeasible")),
    )

    def solve(self, instance, ctx, params) -> SolveResult:
        inst = instance
        pairs = int(inst.demand.sum())
        if pairs > MAX_REQUESTED_PAIRS:
            raise SolverRefusal(f"{pairs} requested (user, PB) pairs: the MILP's per-user rate "
                                f"bounds need each pair's channel; at most "
                                f"{MAX_REQUESTED_PAIRS} are accepted (docs/milp.md section 4)")
        if len(inst.requested_blocks) == 0:  # nobody requests anything: the empty plan is optimal
            return SolveResult(Plan.empty(inst.n_nodes, solver=self.name), SolveStatus.OPTIMAL,
                               "no requested PB", bound=0.0)
        t_start = time.perf_counter()
        oracle = ctx.oracle
        calls0, otime0 = oracle.hits + oracle.misses, oracle.solve_time_s
        cut: list[str] = []  # stages stopped by a time limit (status time_limit)

        # ---- 1. the certified bound (solvers/milp/certified.py; docs/milp.md section 3.6) ----
        res = compute_bound(inst, bound_options(params, ctx),
                            progress=lambda f, m: ctx.progress(0.5 * f, m))
        bdata, out_b, excluded = res.data, res.outcome, res.excluded
        meta: dict = dict(res.info)
        meta["bound_info"] = {k: res.info[k] for k in ("options", "budget_hit", "time_s",
                                                      "stages") if k in res.info}
        meta["bound_info"]["memoised"] = bool(res.info.get("memoised"))
        bound = res.bound
        if res.budget_hit:
            cut.append("bound")
        if excluded and params["unreachable"] == "infeasible":
            return SolveResult(None, SolveStatus.INFEASIBLE,
                               f"{len(excluded)} requested (user, PB) pair(s) have rate bound 0 "
                               f"from every node: {_pairs_text(inst, excluded)}",
                               metadata=jsonable(meta))
        if res.infeasible:
            return SolveResult(None, SolveStatus.INFEASIBLE, res.infeasible,
                               metadata=jsonable(meta))
        chosen = res.chosen
        meta.update(optimistic_incumbent=out_b.objective_s, optimistic_gap=out_b.gap,
                    optimistic=out_b.summary())
        warm = res.warm if params["warm_start"] else None
        if out_b.assignment is not None and out_b.assignment.feasible:
            holds = out_b.assignment.holds
        elif warm is not None and warm.feasible:
            holds = warm.holds
        else:
            meta.update(statuses={"optimistic": out_b.status})
            return SolveResult(None, SolveStatus.ERROR if out_b.status == "error"
                               else SolveStatus.TIME_LIMIT,
                               f"no caching found by the bound MILP ({out_b.status}: "
                               f"{out_b.message or out_b.termination})", bound=bound,
                               metadata=jsonable(meta))
        holds = repair_storage(inst, holds)
        # the other cachings the bound MILP passed through (cluster rounds): their planner
        # partitions and ranked clusters are options of the oracle MILP too
        others = [h for h in (repair_storage(inst, c) for c in res.cachings)
                  if not np.array_equal(h, holds)]

        t_planner = time.perf_counter()
        meta["stage_times_s"] = {"bound": t_planner - t_start}
        # ---- 2. the planner's delivery on that caching -------------------------------------
        # partial groups are planned on the bound MILP's caching with its spare storage filled
        # (fill_caching: nothing evicted), and on the bound MILP's caching itself where that
        # differs; every partition the planner scored completely becomes an option too
        max_oracle = params["max_cluster_oracle"] or inst.n_nodes
        popts = PlannerOptions(max_cluster=max_oracle)
        filled = fill_caching(inst, holds)
        everywhere = np.zeros_like(filled)
        everywhere[:, inst.requested_blocks] = True
        if ((everywhere * inst.repository.sizes[None, :]).sum(axis=1)
                <= inst.nodes.storage_bytes).all():
            # storage does not bind: every requested PB at every node (what replicate caches)
            # lets the planner use any node without migration, which value-0 nodes of the fill
            # can still change (the free-node broadcast of the partition search)
            filled = everywhere | holds
        others_filled = [fill_caching(inst, h) for h in others]
        planner = DeliveryResult()
        planner_cluster: dict[int, tuple[int, ...]] = {}
        planner_delay = 0.0  # the oracle's delays of the planner's units (+ migrations)
        partitions: dict[int, list] = {}
        hints = PartitionHints()
        first: dict[tuple[int, ...], list] = {}  # requester set -> (PB, hurried, parts)
        # storage binds unless the bound MILP met the no-storage-limit bound (then its caching
        # only restricts what the filled one allows)
        binds = out_b.objective_s is None or \
            out_b.objective_s > milp.trivial_bound(bdata) * (1 + 1e-3)
        planner_end = _share_end(ctx, PLANNER_SHARE)
        def plan_on(o, holders, opts, bd, hint):
            """The planner's transmissions of PB o from ``holders``; every partition it scored
            completely, and its choice, become options of the oracle MILP."""
            report: dict = {}
            parts = plan_transmissions(inst, o.block, o.users, holders, oracle, opts,
                                       block_data=bd, hints=hint, report=report)
            partitions[o.block] += [[g.beam for g in c]
                                    for c in [*report.get("candidates", []), parts] if c]
            return parts

        for i, o in enumerate(bdata.blocks):
            ctx.progress(0.5 + 0.2 * i / len(bdata.blocks), "planner")
            partitions[o.block] = []
            if ctx.must_stop():  # out of time: the PB stays undelivered (partial plan)
                planner.skip(o.block, o.users)
                continue
            opts = popts
            hurried = time.perf_counter() > planner_end
            if hurried:
                opts = quick_options(popts)
                planner.hurried.append(o.block)
            bd = BlockData(inst, o.block)
            # behind the planner's time schedule: large requester sets are seeded with the
            # previous PB's partition (faster; the unseeded search pools better, planner
            # module docstring)
            behind = np.isfinite(planner_end) and time.perf_counter() - t_planner > (
                i / len(bdata.blocks)) * (planner_end - t_planner)
            variants = [filled]
            if binds and not hurried and not np.array_equal(filled[:, o.block],
                                                            holds[:, o.block]):
                variants.append(holds)
            for j, h in enumerate(variants):
                holders = np.flatnonzero(h[:, o.block])
                parts = plan_on(o, holders, opts, bd, hints.get(o.users, large=behind))
                if not parts or j > 0:
                    continue
                first.setdefault(tuple(int(u) for u in o.users), []).append(
                    (o.block, hurried, parts))
                hints.record(o.users, parts)
                planner.note_qos(inst, o.block, parts, holders)
                planner_cluster[o.block] = tuple(sorted({n for g in parts for n in g.nodes}))
                for g in parts:
                    planner.add(g, mode="unicast" if len(parts) > 1 and len(g.users) == 1
                                else "broadcast")
                    planner_delay += g.total_s
            if o.block not in planner_cluster:
                planner.undeliverable[o.block] = o.users
        # PBs sharing a large requester set: every PB again with the set's best partitions
        # (planner.second_pass), offered to the oracle MILP beside the first pass's
        alternatives: dict[int, list] = {}
        for done in first.values():
            if time.perf_counter() > planner_end or ctx.should_stop():
                break
            second_pass(inst, done, filled, oracle, popts, ctx, alternatives=alternatives)
        for k, plans in alternatives.items():
            partitions[k] += [[g.beam for g in c] for c in plans]
        # the other cachings the bound passed through, last (under a time limit every PB's
        # main plan comes first): their partitions where they differ for a PB
        extra = [*others_filled, *others] if binds else []
        for o in bdata.blocks if extra else ():
            if time.perf_counter() > planner_end or ctx.should_stop():
                break
            seen = [filled[:, o.block], holds[:, o.block]]
            bd = None
            for h in extra:
                if any(np.array_equal(v, h[:, o.block]) for v in seen):
                    continue
                seen.append(h[:, o.block])
                if bd is None:
                    bd = BlockData(inst, o.block)
                plan_on(o, np.flatnonzero(h[:, o.block]), popts, bd, hints.get(o.users))
        meta.update(planner_primal_delay_s=planner_delay,
                    second_pass_pbs=len(alternatives))
        meta["stage_times_s"]["planner"] = time.perf_counter() - t_planner
        statuses = {"optimistic": out_b.status}
        if planner.hurried or planner.skipped:
            cut.append("planner")

        def planner_plan(why: str = "") -> SolveResult:
            """The shared planner's delivery on the bound MILP's caching, spare storage
            filled (rate_model optimistic, or the oracle stage out of time)."""
            plan = Plan.from_holds(filled, planner.migrations, planner.units, solver=self.name)
            if why:
                cut.append(why)
            meta.update(primal="planner on the bound MILP's caching, spare storage filled",
                        statuses=statuses,
                        build_time_s=out_b.build_time_s + out_b.load_time_s,
                        solve_time_s=out_b.solve_time_s, n_variables=out_b.n_variables,
                        n_clusters=bdata.n_clusters, mip_gap=out_b.gap)
            self._oracle_meta(meta, oracle, calls0, otime0, t_start)
            meta["time_limit_stages"] = cut
            return SolveResult(plan, SolveStatus.TIME_LIMIT if cut else SolveStatus.FEASIBLE,
                               self._message(out_b, None, excluded, inst, cut, planner),
                               bound=bound, metadata=jsonable(meta))

        if params["rate_model"] == "optimistic":
            return planner_plan()
        if ctx.must_stop():
            return planner_plan("oracle MILP skipped")

        # ---- 3. the oracle-rate MILP -------------------------------------------------------
        candidates, users = {}, {}
        for o in bdata.blocks:
            # a common beam to more requesters than the partition bound enumerates is rarely
            # best, and the planner's partitions (above) include one group: one ranked cluster
            large = len(o.users) > MAX_EXACT_USERS
            cands = milp.rank_clusters(inst, o, holds[:, o.block], max_oracle,
                                       1 if large else params["oracle_candidates"])
            for h in others if binds and not large else ():
                cands += [c for c in milp.rank_clusters(inst, o, h[:, o.block], max_oracle,
                                                        params["oracle_candidates"])
                          if c not in cands]
            if o.block in planner_cluster and not large:
                cands.append(planner_cluster[o.block])
            if not large:
                # the bound MILPs' own choices (with multicast costs) are good primal candidates
                cands.extend(c for c in chosen.get(o.block, []) if len(c) <= max_oracle)
            candidates[o.block] = cands
            users[o.block] = o.users
        t_oracle = time.perf_counter()
        pdata = milp.oracle_data(inst, oracle, candidates, users, params["qos_penalty"],
                                 excluded=bdata.excluded, partitions=partitions,
                                 multistart_users=params["multistart_users"],
                                 deadline=ctx.deadline(ORACLE_SHARE), preferred=planner_cluster,
                                 stop=_hard_stop(ctx))
        if pdata is None:  # out of time while rating candidates: the planner's plan
            return planner_plan("oracle candidates (planner plan returned)")
        if pdata.cut_blocks:
            cut.append("oracle candidates")
        start = min((milp.complete(pdata, h) for h in (holds, filled, *others_filled)),
                    key=lambda a: a.objective_s)
        meta["stage_times_s"]["oracle_options"] = time.perf_counter() - t_oracle
        out_p = milp.solve_milp(pdata, inst.n_blocks, params["time_limit"],
                                params["primal_mip_gap"],
                                params["threads"],
                                warm_start=start if params["warm_start"] else None,
                                seed=ctx.seed, deadline=ctx.deadline())
        statuses["oracle"] = out_p.status
        if out_p.status == "time_limit":
            cut.append("oracle MILP")
        asg = out_p.assignment
        status = SolveStatus.TIME_LIMIT if cut else SolveStatus.FEASIBLE
        if asg is not None and asg.feasible:
            repaired = repair_storage(inst, asg.holds)
            if not np.array_equal(repaired, asg.holds):
                asg = milp.complete(pdata, repaired)
        if asg is None or not asg.feasible:
            asg = start  # never lose a plan: the start is feasible whenever the caching is
            status = SolveStatus.TIME_LIMIT if cut or out_p.status in ("time_limit",
                                                                     "no_solution") \
                else SolveStatus.FEASIBLE
            meta["primal_fallback"] = "bound MILP caching, completed with the oracle delays"
        elif (bound is not None and not pdata.excluded and _qos_bad_blocks(pdata, asg) == 0
              and not planner.skipped
              and asg.delay_s <= bound * (1 + 2 * milp.BOUND_SAFETY_RTOL)):
            # the plan meets the certified bound with every QoS floor met: optimal for P1
            status = SolveStatus.OPTIMAL
        plan = milp.assignment_plan(inst, pdata, asg, self.name)
        meta.update(
            primal="oracle-rate MILP", statuses=statuses, oracle_model=out_p.summary(),
            mip_gap=out_p.gap, milp_primal_delay_s=asg.delay_s,
            milp_primal_qos_violating_blocks=_qos_bad_blocks(pdata, asg),
            build_time_s=out_b.build_time_s + out_b.load_time_s + out_p.build_time_s
            + out_p.load_time_s,
            solve_time_s=out_b.solve_time_s + out_p.solve_time_s,
            n_variables=out_b.n_variables + out_p.n_variables,
            n_clusters=bdata.n_clusters, oracle_clusters=pdata.n_clusters)
        # PBs whose every oracle option left some user at rate 0 are not delivered to anyone
        unserved = sorted(set(pdata.excluded_pairs()) - set(excluded))
        meta["primal_unserved_pairs"] = len(unserved)
        message = self._message(out_b, out_p, excluded, inst, cut, planner)
        meta["time_limit_stages"] = cut
        if unserved:
            message = "; ".join(filter(None, [message, (
                f"{len(unserved)} reachable (user, PB) pair(s) undelivered: no candidate cluster's "
                f"beams give all their PB's users a positive rate: {_pairs_text(inst, unserved)}"
            )]))
        self._oracle_meta(meta, oracle, calls0, otime0, t_start)
        return SolveResult(plan, status, message, bound=bound, metadata=jsonable(meta))

    @staticmethod
    def _oracle_meta(meta, oracle, calls0, otime0, t_start) -> None:
        meta.update(oracle_calls=oracle.hits + oracle.misses - calls0,
                    oracle_time_s=oracle.solve_time_s - otime0,
                    total_time_s=time.perf_counter() - t_start)

    @staticmethod
    def _message(out_b, out_p, excluded, inst=None, cut=(), planner=None) -> str:
        parts = []
        if cut:
            parts.append("time limit reached: " + ", ".join(cut) + " cut short"
                         + (f" ({planner.time_limit_message()})" if planner is not None
                            and (planner.hurried or planner.skipped) else ""))
        for label, out in (("bound MILP", out_b), ("oracle MILP", out_p)):
            if out is None:
                continue
            gap = f"{100 * out.gap:.2f}%" if out.gap is not None else "n/a"
            if out.status != "optimal":
                parts.append(f"{label} stopped: {out.status} (gap {gap})")
        if excluded:
            text = f"{len(excluded)} unreachable (user, PB) pair(s) excluded"
            if inst is not None:
                users = sorted({u for u, _ in excluded})
                text += (" (no node can reach them or hold the PB); users not fully served: "
                         + ", ".join(inst.users.ids[u] for u in users[:20])
                         + (f" and {len(users) - 20} more" if len(users) > 20 else ""))
            parts.append(text)
        return "; ".join(parts)


def _qos_bad_blocks(pdata, asg) -> int:
    """PBs whose chosen oracle option misses some user's QoS floor."""
    by_block = {o.block: o for o in pdata.blocks}
    return int(sum(not by_block[c.block].qos_ok[c.index] for c in asg.choices))


def bound_options(params: dict, ctx) -> BoundOptions:
    """The bound's options from the milp parameters: the same as ``fgamcd-solve --bound``'s
    with the defaults (so both get the same memoised bound). Under a run time limit the bound
    gets at most ``BOUND_SHARE`` of the time left (docs/milp.md section 3.6)."""
    budget = float(params["group_bound_time"])
    groups = budget > 0
    if ctx.time_limit_s is not None:
        budget = min(budget if groups else float(params["time_limit"]),
                     BOUND_SHARE * max(ctx.time_left(), 0.0))
    elif not groups:
        budget = float(params["time_limit"])
    return BoundOptions(time_limit_s=budget,
                        cluster_rounds=params["cluster_bound_rounds"] if groups else 0,
                        workers=params["bound_workers"], max_cluster=params["max_cluster_bound"],
                        mip_gap=params["mip_gap"], threads=params["threads"],
                        milp_time_s=params["time_limit"], group_bounds=groups)


def _hard_stop(ctx) -> float | None:
    """The ``time.monotonic()`` instant of ``ctx.must_stop()`` (None without a limit)."""
    d = ctx.deadline()
    return None if d is None else d + FALLBACK_S


def _share_end(ctx, share: float) -> float:
    """The perf_counter instant at ``share`` of the run's time limit (inf without one)."""
    if ctx.time_limit_s is None:
        return float("inf")
    return ctx.started + share * ctx.time_limit_s


__all__ = ["MilpSolver", "BoundOptions", "certified_lower_bound", "compute_bound"]
__solvers__ = [MilpSolver]
