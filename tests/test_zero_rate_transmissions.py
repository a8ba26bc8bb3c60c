"""A transmission with a requester at worst-case rate 0 never ends (docs/model.md section 5), so
no plan can score below a valid lower bound by hiding transmissions behind a zero-rate user.

The exploit of issue 22: unit A serves user z alone; unit B serves (v, z) with beams orthogonal
to z's channel, so z is at rate 0 in B. Dropping B's transmission (the old rule) served v in
zero time, and the plan, "complete" since z is served by A, scored below the certified bound.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from fgamcd_solvers.milp import formulation as milp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fgamcd_opt import generate, get_solver, run_solver
from fgamcd_opt.evaluator import evaluate, score_block
from fgamcd_opt.oracle import BeamformingOracle
from fgamcd_opt.plan import DeliveryUnit, Migration, Plan
from fgamcd_opt.runner import gap_to_bound


def orthogonal_beams(inst, k, nodes, serve: int, null: int) -> np.ndarray:
    """Full-power beams from ``nodes`` toward user ``serve``, projected per node onto the
    orthogonal complement of user ``null``'s channel: ``null`` receives no signal (rate 0)."""
    nodes = list(nodes)
    h = inst.channel(k, [serve, null])[nodes]  # (p, 2, M)
    hv, hz = h[:, 0], h[:, 1]
    w = hv - (np.sum(hz.conj() * hv, axis=1) / np.sum(np.abs(hz) ** 2, axis=1))[:, None] * hz
    norm = np.linalg.norm(w, axis=1)
    scale = np.divide(np.sqrt(inst.nodes.power_max_w[nodes]), norm, out=np.zeros_like(norm),
                      where=norm > 0)
    return w * scale[:, None]


def hide_behind_zero_rate(inst, plan: Plan, evaluation, which=None) -> Plan:
    """The issue's edit: each multi-user unit (or those in ``which``) becomes one unicast unit
    to its best user z (oracle beams) plus one unit (v, z) per other user v with beams that
    leave z at rate 0."""
    units = []
    for i, (u, r) in enumerate(zip(plan.units, evaluation.units, strict=True)):
        if len(u.users) < 2 or (which is not None and i not in which):
            units.append(u)
            continue
        z = u.users[int(np.argmax(r.rates_bps))]
        units.append(DeliveryUnit(u.block, (z,), u.nodes, "unicast", slot=u.slot, model=u.model))
        for v in u.users:
            if v != z:
                units.append(DeliveryUnit(u.block, (v, z), u.nodes, "broadcast", model=u.model,
                                          beams=orthogonal_beams(inst, u.block, u.nodes, v, z)))
    return replace(plan, units=units)


# ---------------------------------------------------------------------------------------------
# a hand-checked instance: one PB, one node, a strong user 0 and a weak user 1
# ---------------------------------------------------------------------------------------------
def two_user_instance(make_instance):
    rng = np.random.default_rng(7)
    h = (rng.standard_normal((1, 1, 2, 4)) + 1j * rng.standard_normal((1, 1, 2, 4))) * 1e-3
    h[0, 0, 1] *= 0.1  # user 1 is 20 dB weaker
    return make_instance(h, [10_000], [(0,)], [0, 0], c=1e8)


def test_zero_rate_transmission_makes_the_total_infinite_hand(make_instance):
    inst = two_user_instance(make_instance)
    oracle = BeamformingOracle()
    alone = DeliveryUnit(0, (0,), (0,), "unicast")  # robust MRT to the strong user
    hidden = DeliveryUnit(0, (1, 0), (0,), beams=orthogonal_beams(inst, 0, (0,), 1, 0))
    plan = Plan(cache=[{0}], units=[alone, hidden])
    ev = evaluate(inst, plan, oracle)
    rates = {r.index: dict(zip(r.users, r.rates_bps.tolist(), strict=True)) for r in ev.units}
    assert rates[1][0] == 0.0 and rates[1][1] > 0  # z = user 0 at rate 0 in the second unit
    assert ev.complete  # every pair is served at a positive rate somewhere
    assert ev.zero_rate_transmissions == 1 and ev.count("zero_rate") == 1
    # the per-user bound for the weak user: no plan delivers PB 0 faster than 8 S / ub_1
    bound = milp.trivial_bound(milp.optimistic_data(inst))
    only_alone = ev.units[0].delay_s
    assert only_alone < bound  # the delay the old rule reported: below the bound
    assert ev.delivered_delay_s == pytest.approx(only_alone, rel=1e-12)
    assert ev.total_delay_s == math.inf
    assert not ev.comparable and ev.status == "infeasible"
    assert ev.to_dict(inst)["total_delay_s"] is None
    assert gap_to_bound(ev, bound) == (None, "")
    # the per-PB scorer (MARL reward) follows the same rule
    assert score_block(inst, 0, plan.units, oracle=oracle).total_s == math.inf


@pytest.fixture(scope="module")
def shared_tiny():
    """tiny with one model (every PB has 6 requesters, the exploit pays most), its cheap valid
    bound (per-user, no storage limit) and base plans of four quick solvers."""
    inst = generate("tiny", seed=1, n_models=1)
    oracle = BeamformingOracle()
    bound = milp.trivial_bound(milp.optimistic_data(inst))
    plans = {}
    for name in ("full-comp", "hybrid", "nocoop", "tdma"):
        run = run_solver(inst, get_solver(name), oracle=oracle)
        plans[name] = (run.plan, run.evaluation)
    return inst, oracle, bound, plans


def test_issue_case_edited_solver_plan_no_longer_scores_below_the_bound(shared_tiny):
    """The issue's case on a solver plan: before, 50 zero-rate violations, complete, and a
    finite total below the certified bound; now infinite, and no gap is reported."""
    inst, oracle, bound, plans = shared_tiny
    plan, ev0 = plans["full-comp"]
    assert math.isfinite(ev0.total_delay_s) and ev0.total_delay_s >= bound
    edited = hide_behind_zero_rate(inst, plan, ev0)
    ev = evaluate(inst, edited, oracle)
    assert ev.complete and {v.kind for v in ev.violations} == {"zero_rate"}
    assert ev.count("zero_rate") >= 10
    assert ev.delivered_delay_s < bound  # what the old rule reported as T
    assert ev.total_delay_s == math.inf
    assert gap_to_bound(ev, bound)[0] is None
    s = ev.summary(inst)
    assert s["zero_rate_transmissions"] == ev.count("zero_rate")


# ---------------------------------------------------------------------------------------------
# property: random edits of solver plans never score a finite total below the bound
# ---------------------------------------------------------------------------------------------
EDITS = ("hide", "hide_all", "drop_user", "add_user", "scale", "drop_unit", "duplicate", "slot",
         "random", "add_node", "drop_migration", "add_migration", "drop_cache", "add_cache")


def _edit(inst, plan: Plan, ev, kind: str, i: int, x: float, rng) -> Plan:
    units = list(plan.units)
    if not units:
        return plan
    i %= len(units)
    u = units[i]
    requesters = [int(v) for v in inst.requesters(u.block)]
    if kind in ("hide", "hide_all"):
        if len(ev.units) != len(units):  # the evaluation must match the units one to one
            return plan
        return hide_behind_zero_rate(inst, plan, ev, which={i} if kind == "hide" else None)
    if kind == "drop_user" and len(u.users) > 1:
        units[i] = replace(u, users=u.users[1:], beams=u.beams, mode="broadcast")
    elif kind == "add_user":
        extra = [v for v in requesters if v not in u.users]
        if extra:
            units[i] = replace(u, users=(*u.users, extra[int(x * len(extra)) % len(extra)]),
                               mode="broadcast")
    elif kind == "scale" and u.beams is not None:
        units[i] = replace(u, beams=np.asarray(u.beams) * (1.1 * x))
    elif kind == "drop_unit":
        del units[i]
    elif kind == "duplicate":
        units.append(u)
    elif kind == "slot":
        same = [j for j, w in enumerate(units) if w.block == u.block and j != i]
        if same:
            j = same[int(x * len(same)) % len(same)]
            units[i], units[j] = replace(u, slot=999), replace(units[j], slot=999)
    elif kind == "random":
        z = rng.standard_normal((len(u.nodes), inst.antennas)) + 1j * rng.standard_normal(
            (len(u.nodes), inst.antennas))
        z *= (np.sqrt(inst.nodes.power_max_w[list(u.nodes)]) / np.linalg.norm(z, axis=1))[:, None]
        units[i] = replace(u, beams=z * x)
    elif kind == "add_node":
        free = [n for n in range(inst.n_nodes) if n not in u.nodes]
        if free:
            units[i] = replace(u, nodes=(*u.nodes, free[int(x * len(free)) % len(free)]),
                               beams=None)
    migrations, cache = list(plan.migrations), [set(c) for c in plan.cache]
    if kind == "drop_migration" and migrations:
        del migrations[i % len(migrations)]
    elif kind == "add_migration":
        src = int(x * inst.n_nodes) % inst.n_nodes
        migrations.append(Migration(src, (src + 1) % inst.n_nodes, u.block))
    elif kind == "drop_cache":
        cache[int(x * inst.n_nodes) % inst.n_nodes].discard(u.block)
    elif kind == "add_cache":
        cache[int(x * inst.n_nodes) % inst.n_nodes].add(u.block)
    return replace(plan, units=units, migrations=migrations, cache=cache)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(("full-comp", "hybrid", "nocoop", "tdma")),
       edits=st.lists(st.tuples(st.sampled_from(EDITS), st.integers(0, 10**6),
                                st.floats(0.0, 1.0)), min_size=1, max_size=4),
       seed=st.integers(0, 2**16))
def test_random_edits_never_score_below_the_bound(shared_tiny, base, edits, seed):
    inst, oracle, bound, plans = shared_tiny
    plan, ev = plans[base]
    rng = np.random.default_rng(seed)
    for kind, i, x in edits:
        plan = _edit(inst, plan, ev, kind, i, x, rng)
        ev = evaluate(inst, plan, oracle)
    if math.isfinite(ev.total_delay_s):
        assert ev.total_delay_s >= bound * (1 - 1e-9), (ev.total_delay_s, bound, ev.violations)
        assert ev.zero_rate_transmissions == 0 and ev.complete
