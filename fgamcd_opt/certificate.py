"""Per-PB certificates of a scored plan: how far each transmission's beams are from the best
any beams could do for the same users from the same nodes (docs/milp.md section 3.6).

For every transmission of a plan (a unit, or the units of one slot, whose users all hear the
union of the slot's nodes: evaluator module docstring) the evaluator gives the achieved minimum
worst-case rate R of its users. An upper bound R-hat on the best robust max-min rate of those
users from those nodes (any beams within power) comes from :mod:`fgamcd_opt.group_bound`: the
per-user (Cauchy-Schwarz) bound for every transmission, and, within a time budget, the group
bound (phase branch and bound for 2-5 users; a 4-user subgroup's phase bound and, up to 10
users, the lifted SDP above) for the multi-user ones, the slowest first. The certificate of the
transmission is R / R-hat in [0, 1] (1: the beams are provably the best for that group and node
set; a low value says the group is served far below what its nodes could give it). Per PB the
transmissions' ratios are combined as the time the bounds allow over the time taken, sum
8 S / R-hat over sum 8 S / R; the summary gives the same over the whole plan and the PBs with
the lowest ratio.

The certificate judges the beams of the chosen groups and node sets only; that the groups or the
caching could be better is what the certified lower bound on the delay (``--bound``) measures.
"""

from __future__ import annotations

import time

import numpy as np

from .evaluator import Evaluation
from .instance import Instance
from .oracle.core import normalised_problem
from .oracle.methods import amplitude_upper_bound
from .plan import Plan
from .rates import rate_from_amplitude, transfer_delay_s

WORST = 5  # PBs listed in the summary


def _transmissions(plan: Plan, ev: Evaluation) -> list[tuple[int, tuple[int, ...],
                                                               tuple[int, ...], float]]:
    """(block, users, nodes, achieved min rate bps) per transmission with a positive rate:
    units without a slot alone, the units of one (block, slot) together."""
    slots: dict = {}
    out = []
    for r in ev.units:
        if not r.users or not np.isfinite(r.delay_s) or r.rates_bps.size == 0:
            continue
        slot = plan.units[r.index].slot if r.index < len(plan.units) else None
        if slot is None:
            out.append((r.block, tuple(r.users), tuple(r.nodes), float(r.rates_bps.min())))
        else:
            slots.setdefault((r.block, slot), []).append(r)
    for (k, _), rs in slots.items():
        users = tuple(u for r in rs for u in r.users)
        nodes = tuple(sorted({n for r in rs for n in r.nodes}))
        out.append((k, users, nodes, float(min(r.rates_bps.min() for r in rs))))
    return out


def block_certificates(inst: Instance, plan: Plan, ev: Evaluation,
                       group_bound_time_s: float = 0.0) -> dict:
    """The certificates of the module docstring: ``{"blocks": {PB id: {"ratio", "time_ratio",
    "transmissions": [{"users" (how many), "nodes", "achieved_bps", "bound_bps", "ratio",
    "source"}]}},
    "transmissions", "min_ratio", "time_ratio", "group_bounds", "worst"}``. Rates in
    bits/s; ``time_ratio`` = sum of 8 S / R-hat over sum of 8 S / R (1 = every transmission
    provably at its group's best). ``group_bound_time_s``: budget for the group bounds (0: the
    per-user bound only, closed form; with a positive budget the number of group bounds, hence
    the values, depends on the machine's speed)."""
    from .group_bound import MAX_EXACT_USERS, SECANT_STEPS, amplitude_bound

    t0 = time.perf_counter()
    rows = []
    for k, users, nodes, achieved in _transmissions(plan, ev):
        problem = normalised_problem(inst, k, nodes, users)
        amp = float(amplitude_upper_bound(problem).min())
        rows.append({"k": k, "users": users, "nodes": nodes, "achieved": achieved,
                     "amp": amp, "source": "per-user", "problem": problem})
    n_group = 0
    if group_bound_time_s > 0:
        size = inst.repository.sizes
        order = sorted((r for r in rows if len(r["users"]) > 1),
                       key=lambda r: -transfer_delay_s(float(size[r["k"]]), r["achieved"]))
        for r in order:
            if time.perf_counter() - t0 > group_bound_time_s:
                break
            ach = float(np.sqrt(np.expm1(r["achieved"] / inst.bandwidth_hz * np.log(2.0))))
            # above MAX_EXACT_USERS the lifted SDP is large and slow (a 15-user group from 6
            # nodes: a 90 x 90 complex matrix) and loose: the subgroup bound only
            steps = SECANT_STEPS if len(r["users"]) <= MAX_EXACT_USERS else 0
            amp, info = amplitude_bound(r["problem"], achieved=ach, steps=steps)
            n_group += 1
            if amp < r["amp"]:
                r["amp"], r["source"] = amp, info["source"]
    blocks: dict = {}
    total_bound = total_achieved = 0.0
    for r in rows:
        bound = float(rate_from_amplitude(r["amp"], 1.0, inst.bandwidth_hz))
        # the bound holds up to the solvers' tolerances: a ratio is never reported above 1
        bound = max(bound, r["achieved"])
        size = float(inst.repository.sizes[r["k"]])
        t_ach, t_lb = transfer_delay_s(size, r["achieved"]), transfer_delay_s(size, bound)
        total_achieved += t_ach
        total_bound += t_lb
        b = blocks.setdefault(inst.repository.blocks[r["k"]].id,
                              {"transmissions": [], "_ach": 0.0, "_lb": 0.0})
        b["_ach"] += t_ach
        b["_lb"] += t_lb
        b["transmissions"].append({
            "users": len(r["users"]), "nodes": [inst.nodes.ids[n] for n in r["nodes"]],
            "achieved_bps": r["achieved"], "bound_bps": bound,
            "ratio": r["achieved"] / bound if bound > 0 else 1.0, "source": r["source"]})
    for b in blocks.values():
        b["ratio"] = min(t["ratio"] for t in b["transmissions"])
        b["time_ratio"] = b.pop("_lb") / b.pop("_ach") if b["_ach"] > 0 else 1.0
    ratios = [t["ratio"] for b in blocks.values() for t in b["transmissions"]]
    worst = sorted(blocks, key=lambda i: (blocks[i]["time_ratio"], i))[:WORST]
    return {"blocks": blocks, "transmissions": len(ratios),
            "min_ratio": min(ratios) if ratios else None,
            "time_ratio": total_bound / total_achieved if total_achieved > 0 else None,
            "group_bounds": n_group,
            "worst": [{"block": i, "time_ratio": blocks[i]["time_ratio"]} for i in worst]}
