"""Plan files: exact round trips (beams included), schema, id and fingerprint checks."""

from __future__ import annotations

import copy
import json

import jsonschema
import numpy as np
import pytest

from fgamcd_opt.errors import PlanError
from fgamcd_opt.evaluator import evaluate
from fgamcd_opt.jsonio import write_json_atomic
from fgamcd_opt.plan import DeliveryUnit, Migration, Plan
from fgamcd_opt.plan_io import PLAN_SCHEMA, load_plan, plan_from_dict, plan_to_dict


@pytest.fixture
def plan(tiny) -> Plan:
    """A plan using every feature of the format, with awkward complex beams."""
    rng = np.random.default_rng(0)
    k0, k1 = int(tiny.requested_blocks[0]), int(tiny.requested_blocks[1])
    u0, u1 = (int(u) for u in tiny.requesters(k0)[:2])
    m = tiny.antennas
    beams = (rng.standard_normal((2, m)) + 1j * rng.standard_normal((2, m))) / 3
    beams[0, 0] = 1 / 3 + 1e-300j  # values that only survive an exact (repr) round trip
    units = [
        DeliveryUnit(k0, (u0, u1), (0, 2), beams=beams),
        DeliveryUnit(k1, (u0,), (1,), mode="unicast", slot=4, beamforming="mrt"),
        DeliveryUnit(k0, (u1,), (1,), slot=4, model=int(tiny.users.model[u1]),
                     beams=beams[:1] * 0.5),
    ]
    return Plan(cache=[{k0, k1}, set(), {k0}], migrations=[Migration(0, 1, k1)], units=units,
                model_copies=[[0], [], [1, 2]], solver="handmade",
                metadata={"iterations": np.int64(3), "gap": np.float64(np.nan),
                          "trace": np.arange(3.0), "nested": {"t": (1, 2.5)}})


def assert_same_plan(a: Plan, b: Plan):
    assert a.cache == b.cache
    assert a.migrations == b.migrations
    assert a.model_copies == b.model_copies
    assert a.solver == b.solver
    assert len(a.units) == len(b.units)
    for x, y in zip(a.units, b.units, strict=True):
        assert (x.block, x.users, x.nodes, x.mode, x.slot, x.model, x.beamforming) == (
            y.block, y.users, y.nodes, y.mode, y.slot, y.model, y.beamforming)
        if x.beams is None:
            assert y.beams is None
        else:
            assert y.beams.dtype == np.complex128
            np.testing.assert_array_equal(x.beams, y.beams)  # exact, bit for bit


def test_round_trip_in_memory_and_through_a_file(tiny, plan, tmp_path):
    d = plan_to_dict(plan, tiny, solver_params={"cap": 3})
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(d)
    assert d["instance"] == {"name": tiny.name, "fingerprint": tiny.fingerprint}
    assert d["solver_params"] == {"cap": 3}
    assert_same_plan(plan, plan_from_dict(copy.deepcopy(d), tiny))
    write_json_atomic(tmp_path / "p.plan.json", d)
    back = load_plan(tmp_path / "p.plan.json", tiny)
    assert_same_plan(plan, back)
    # numpy/NaN metadata is made strict JSON (NaN -> null)
    assert back.metadata == {"iterations": 3, "gap": None, "trace": [0.0, 1.0, 2.0],
                             "nested": {"t": [1, 2.5]}}
    json.dumps(d, allow_nan=False)


def test_round_trip_keeps_evaluation(tiny, plan, tmp_path):
    write_json_atomic(tmp_path / "p.json", plan_to_dict(plan, tiny))
    a = evaluate(tiny, plan)
    b = evaluate(tiny, load_plan(tmp_path / "p.json", tiny))
    assert a.total_delay_s == b.total_delay_s
    assert [v.kind for v in a.violations] == [v.kind for v in b.violations]


def test_uses_ids_not_indices(tiny, plan):
    d = plan_to_dict(plan, tiny)
    k0 = tiny.repository.blocks[plan.units[0].block].id
    assert d["units"][0]["block"] == k0
    assert d["units"][0]["nodes"] == ["n0", "n2"]
    assert d["cache"]["n1"] == []
    assert d["migrations"] == [{"from": "n0", "to": "n1",
                                "block": tiny.repository.blocks[plan.units[1].block].id}]
    assert d["model_copies"] == {"n0": ["m0"], "n1": [], "n2": ["m1", "m2"]}
    assert d["units"][1]["mode"] == "unicast" and "beams" not in d["units"][1]


def test_omit_beams(tiny, plan):
    d = plan_to_dict(plan, tiny, with_beams=False)
    assert all("beams" not in u for u in d["units"])
    assert all(u.beams is None for u in plan_from_dict(d, tiny).units)


def test_plan_without_model_copies_or_fingerprint(tiny):
    d = plan_to_dict(Plan.empty(3, solver="x"), tiny)
    del d["instance"]
    back = plan_from_dict(d, tiny)
    assert back.model_copies is None and back.cache == [set(), set(), set()]


def _unit_field(i, key, value):
    def f(d):
        d["units"][i][key] = value
    return f


def _set_cache_key(d):
    d["cache"]["n7"] = d["cache"].pop("n0")


BAD_IDS = {
    "cache node": (_set_cache_key, "cache.n7", "'n7' is not a node"),
    "cache block": (lambda d: d["cache"]["n2"].append("k999"), "cache.n2[1]",
                    "'k999' is not a block"),
    "copies model": (lambda d: d["model_copies"]["n2"].append("m99"), "model_copies.n2[2]",
                     "'m99' is not a model"),
    "migration from": (lambda d: d["migrations"][0].update({"from": "nX"}), "migrations[0].from",
                       "'nX' is not a node"),
    "migration block": (lambda d: d["migrations"][0].update({"block": "kX"}),
                        "migrations[0].block", "'kX' is not a block"),
    "unit block": (_unit_field(0, "block", "kX"), "units[0].block", "'kX' is not a block"),
    "unit user": (_unit_field(0, "users", ["u0", "uX"]), "units[0].users[1]",
                  "'uX' is not a user"),
    "unit node": (_unit_field(2, "nodes", ["nX"]), "units[2].nodes[0]", "'nX' is not a node"),
    "unit model": (_unit_field(2, "model", "mX"), "units[2].model", "'mX' is not a model"),
}


@pytest.mark.parametrize("case", sorted(BAD_IDS))
def test_unknown_ids_give_plan_error_with_path(tiny, plan, case):
    mutate, path, fragment = BAD_IDS[case]
    d = plan_to_dict(plan, tiny)
    mutate(d)
    with pytest.raises(PlanError) as exc:
        plan_from_dict(d, tiny, file="p.json")
    assert exc.value.path == path
    assert fragment in exc.value.message and tiny.name in exc.value.message
    assert str(exc.value).startswith(f"p.json: {path}: ") and "\n" not in str(exc.value)


def test_fingerprint_mismatch(tiny, plan):
    other = plan_to_dict(plan, tiny)
    other["instance"]["fingerprint"] = "0123456789abcdef"
    with pytest.raises(PlanError) as exc:
        plan_from_dict(other, tiny, file="p.json")
    assert exc.value.path == "instance.fingerprint"
    assert "0123456789abcdef" in exc.value.message and tiny.fingerprint in exc.value.message


def test_plan_for_another_instance_is_refused(tiny, plan, tmp_path):
    from fgamcd_opt.generators import generate

    other = generate("tiny", seed=2)
    write_json_atomic(tmp_path / "p.json", plan_to_dict(plan, tiny))
    with pytest.raises(PlanError, match="instance.fingerprint"):
        load_plan(tmp_path / "p.json", other)


@pytest.mark.parametrize("mutate,path", [
    (lambda d: d.pop("cache"), "$"),
    (lambda d: d.update(extra=1), "$"),
    (lambda d: d.update(kind="fgamcd-instance"), "kind"),
    (lambda d: d["units"][0].update(mode="multicast"), "units[0].mode"),
    (lambda d: d["units"][0].update(colour="red"), "units[0]"),
    (lambda d: d["units"][1].update(slot=1.5), "units[1].slot"),
    (lambda d: d["units"][0]["beams"].pop("im"), "units[0].beams"),
    (lambda d: d["units"][0]["beams"]["re"][0].__setitem__(0, "x"), "units[0].beams.re[0][0]"),
])
def test_schema_errors(tiny, plan, mutate, path):
    d = plan_to_dict(plan, tiny)
    mutate(d)
    with pytest.raises(PlanError) as exc:
        plan_from_dict(d, tiny, file="p.json")
    assert exc.value.path == path


def test_beams_of_wrong_shape(tiny, plan):
    d = plan_to_dict(plan, tiny)
    d["units"][0]["beams"]["re"] = [row[:-1] for row in d["units"][0]["beams"]["re"]]
    with pytest.raises(PlanError) as exc:
        plan_from_dict(d, tiny)
    assert exc.value.path == "units[0].beams" and "expected (2, 4)" in exc.value.message
    d = plan_to_dict(plan, tiny)
    d["units"][0]["nodes"] = ["n0"]  # beams for 2 nodes, 1 node listed
    with pytest.raises(PlanError, match=r"units\[0\].beams"):
        plan_from_dict(d, tiny)


def test_ragged_beams(tiny, plan):
    d = plan_to_dict(plan, tiny)
    d["units"][0]["beams"]["re"][1] = d["units"][0]["beams"]["re"][1][:2]
    with pytest.raises(PlanError) as exc:
        plan_from_dict(d, tiny)
    assert exc.value.path == "units[0].beams"


def test_file_errors(tiny, tmp_path):
    with pytest.raises(PlanError, match="file not found"):
        load_plan(tmp_path / "nope.json", tiny)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(PlanError, match="invalid JSON"):
        load_plan(tmp_path / "bad.json", tiny)
    (tmp_path / "nan.json").write_text('{"schema_version": 1, "kind": "fgamcd-plan", '
                                       '"cache": {}, "units": [], "metadata": {"x": 1e999}}')
    with pytest.raises(PlanError) as exc:
        load_plan(tmp_path / "nan.json", tiny)
    assert exc.value.path == "metadata.x"
