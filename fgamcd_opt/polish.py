"""Polish a plan whose caching a rollout decided: fill the storage it leaves free and keep, PB by
PB, the better of its own delivery and the shared planner's (docs/maasn.md section 5).

A learned rollout (``maasn``, ``qmix``, ``guard-only``) decides caching and delivery one PB at a
time. Two things the simplest policy gets for free can be lost on the way: storage still free at
the end (a further copy never removes a delivery option: nothing is evicted, and migrated copies
do not use storage, eq. 1), and the shared planner's search on the final caching (the rollout
plans each PB from the copies decided so far). :func:`polish_plan` adds both: the caching is
completed with :func:`~fgamcd_opt.caching.fill_caching`, the shared planner plans every PB on it,
and each PB keeps whichever delivery the evaluator's per-PB scorer ranks first (fewer requesters
unserved, then fewer below QoS, then lower delay; ties keep the rollout's). So the polished plan
is never worse than the rollout's on any PB, and equals the shared planner's on the filled caching
wherever that is better: when storage does not bind, the caching is every requested PB at every
node and the plan is no worse than ``replicate``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .caching import fill_caching
from .evaluator import BlockScore, score_block
from .instance import Instance
from .oracle import BeamformingOracle
from .plan import Plan
from .planner import DeliveryResult, PlannerOptions, plan_broadcast


@dataclass
class PolishResult:
    plan: Plan
    delivery: DeliveryResult | None  # the planner's pass (None: nothing was planned again)
    added_copies: int  # copies fill_caching added to the rollout's caching
    replaced: tuple[int, ...]  # PBs whose delivery is now the planner's
    gain_s: float  # rollout's minus polished delay over the replaced PBs served before (s)

    def info(self) -> dict:
        cut = self.delivery is not None and bool(self.delivery.hurried or self.delivery.skipped)
        return {"added_copies": self.added_copies, "replaced_pbs": len(self.replaced),
                "gain_s": self.gain_s, "cut_by_time_limit": cut}


def block_rank(score: BlockScore) -> tuple[int, int, float]:
    """The per-PB order: fewer unserved requesters, then fewer below QoS, then lower delay."""
    return (len(score.undelivered_users), len(score.qos_violating_users), score.total_s)


def _by_block(items) -> dict[int, list]:
    out: dict[int, list] = {}
    for it in items:
        out.setdefault(int(it.block), []).append(it)
    return out


def polish_plan(inst: Instance, plan: Plan, oracle: BeamformingOracle,
                options: PlannerOptions | None = None, ctx=None,
                workers: int = 1) -> PolishResult:
    """The polished plan (module docstring) of a fine-grained ``plan`` (no model copies; one
    with model copies is returned as it is). ``ctx``: the solver's SolveContext; past its time
    limit the plan is returned as it is."""
    if plan.model_copies and any(plan.model_copies) or (ctx is not None and ctx.should_stop()):
        return PolishResult(plan, None, 0, (), 0.0)
    before = plan.holds(inst.repository)
    holds = fill_caching(inst, before)
    delivery = plan_broadcast(inst, holds, oracle, options or PlannerOptions(), ctx=ctx,
                              workers=workers)
    own_units, own_migs = _by_block(plan.units), _by_block(plan.migrations)
    new_units, new_migs = _by_block(delivery.units), _by_block(delivery.migrations)
    units, migrations = [], []
    replaced, gain = [], 0.0
    for k in (int(k) for k in inst.requested_blocks):
        mine = (own_units.get(k, []), own_migs.get(k, []))
        theirs = (new_units.get(k, []), new_migs.get(k, []))
        keep = mine
        if theirs[0]:
            a = score_block(inst, k, *mine, oracle=oracle, holds=holds[:, k])
            b = score_block(inst, k, *theirs, oracle=oracle, holds=holds[:, k])
            if block_rank(b) < block_rank(a):
                keep = theirs
                replaced.append(k)
                if np.isfinite(a.total_s):
                    gain += a.total_s - b.total_s
        units += keep[0]
        migrations += keep[1]
    out = Plan.from_holds(holds, migrations=migrations, units=units, solver=plan.solver)
    out.metadata = dict(plan.metadata)
    return PolishResult(out, delivery, int(holds.sum() - before.sum()), tuple(replaced),
                        float(gain))
