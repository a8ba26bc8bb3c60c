"""Extreme and hostile inputs (issue 9): zero users, physical ranges, degenerate physics, memory
limits and bounded-memory fingerprints, sidecar paths and non-regular files, the calibrated LLM
scenarios, and the instance layer's import structure. Every test is fast (tiny instances)."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fgamcd_opt.channels import (
    FINGERPRINT_MAX_USERS,
    RicianChannels,
    channel_fingerprints,
    fingerprint,
    fingerprint_matches,
    fingerprint_users,
)
from fgamcd_opt.cli.main import main as cli_main
from fgamcd_opt.errors import InstanceError, ParameterError, ResourceLimitError
from fgamcd_opt.generators import SCENARIOS, generate
from fgamcd_opt.instance import (
    estimate_memory_bytes,
    memory_limit_bytes,
    parse_bytes,
)
from fgamcd_opt.instance_io import (
    instance_from_dict,
    instance_to_dict,
    load_instance,
    save_instance,
)
from fgamcd_opt.schema import INSTANCE_SCHEMA, RANGES, range_reason


def _solver(name: str):
    from fgamcd_opt.registry import BUILTIN_SOLVERS

    module, cls = BUILTIN_SOLVERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def _no_fp(d: dict) -> dict:
    d["channels"].pop("fingerprints", None)  # edits below change the channels on purpose
    return d


# ---------------------------------------------------------------------------------------
# 1. zero users: supported end to end (empty plan, delay 0)
# ---------------------------------------------------------------------------------------
def test_zero_users_generate_save_load_info(tmp_path, capsys):
    out = tmp_path / "u0.json"
    assert cli_main(["gen", "tiny", "--set", "n_users=0", "-o", str(out)]) == 0
    inst = load_instance(out, verify_channels="full")
    assert inst.n_users == 0 and len(inst.requested_blocks) == 0
    assert inst.to_dict()["error_shape"] == {"kind": "isotropic", "c": 1e10}
    assert cli_main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["U"] == 0 and info["requested_blocks"] == 0


@pytest.mark.parametrize("name", ["nocoop", "trimcaching"])
def test_zero_users_baseline_gives_empty_plan_with_zero_delay(name):
    from fgamcd_opt.runner import run_solver

    inst = generate("tiny", seed=0, n_users=0)
    run = run_solver(inst, _solver(name), {}, seed=0)
    assert run.plan is not None and len(run.plan.units) == 0
    assert run.record.total_delay_s == 0.0


# ---------------------------------------------------------------------------------------
# 2. physical ranges: rejected with file, JSON path and the reason
# ---------------------------------------------------------------------------------------
def _put(d, path, value):
    obj = d
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


OUT_OF_RANGE = [
    (["bandwidth_hz"], 1e308, "bandwidth_hz"),
    (["bandwidth_hz"], 0.5, "bandwidth_hz"),
    (["users", 2, "noise_w"], 5e-324, "users[2].noise_w"),
    (["users", 2, "noise_w"], 10.0, "users[2].noise_w"),
    (["users", 0, "qos_bps"], 1e300, "users[0].qos_bps"),
    (["nodes", 1, "power_max_w"], 1e200, "nodes[1].power_max_w"),
    (["nodes", 1, "power_max_w"], 1e-300, "nodes[1].power_max_w"),
    (["nodes", 0, "position_m", 1], 1e300, "nodes[0].position_m[1]"),
    (["users", 4, "position_m", 0], -1e300, "users[4].position_m[0]"),
    (["repository", "blocks", 3, "size_bytes"], 10**16, "repository.blocks[3].size_bytes"),
    (["backhaul", "low_bps"], 1e-300, "backhaul.low_bps"),
    (["backhaul", "high_bps"], 1e300, "backhaul.high_bps"),
    (["channels", "k_factor"], 1e300, "channels.k_factor"),
    (["channels", "path_loss_db_at_1m"], -1e300, "channels.path_loss_db_at_1m"),
    (["channels", "path_loss_exponent"], 1e300, "channels.path_loss_exponent"),
    (["channels", "min_distance_m"], 1e-300, "channels.min_distance_m"),
    (["error_shape", "c"], 5e-324, "error_shape.c"),
    (["area_m", 0], 1e300, "area_m[0]"),
    (["info_exchange_radius_m"], 1e300, "info_exchange_radius_m"),
    (["nodes", 0, "storage_bytes"], 10**19, "nodes[0].storage_bytes"),
]


@pytest.mark.parametrize("path,value,where", OUT_OF_RANGE, ids=[c[2] + f"={c[1]:g}"
                                                                for c in OUT_OF_RANGE])
def test_out_of_range_value_names_file_path_and_reason(tiny_dict, json_file, path, value, where):
    _put(tiny_dict, path, value)
    file = json_file(tiny_dict, "bad.json")
    with pytest.raises(InstanceError) as exc:
        load_instance(file)
    e = exc.value
    assert e.file == str(file) and e.path == where, str(e)
    assert "\n" not in str(e)
    assert "(allowed " in e.message and range_reason(where) in e.message


def test_every_range_is_described_in_the_schema():
    text = json.dumps(INSTANCE_SCHEMA)
    for name, (lo, hi, _, why) in RANGES.items():
        assert why in text, name
        assert f"{lo:g}, {hi:g}]" in text, name


def test_backhaul_matrix_rate_below_one_bit_per_second(tiny_dict, json_file):
    n = len(tiny_dict["nodes"])
    m = [[1e9] * n for _ in range(n)]
    m[0][2] = 1e-300
    tiny_dict["backhaul"] = {"kind": "matrix", "rates_bps": m}
    with pytest.raises(InstanceError) as exc:
        load_instance(json_file(tiny_dict))
    assert exc.value.path == "backhaul.rates_bps[0][2]" and "1 bit/s" in exc.value.message


def test_qos_beyond_any_link_is_rejected_with_the_spectral_efficiency(tiny_dict, json_file):
    tiny_dict["bandwidth_hz"] = 1e8  # the others need at most 10 bit/s/Hz
    tiny_dict["users"][3]["qos_bps"] = 2e10  # 200 bit/s/Hz: SNR 2^200 needed
    with pytest.raises(InstanceError) as exc:
        load_instance(json_file(tiny_dict))
    assert exc.value.path == "users[3].qos_bps" and "bit/s/Hz" in exc.value.message


@pytest.mark.parametrize("overrides", [
    {"bandwidth_mhz": 1e302}, {"noise_dbm": -3000.0}, {"power_dbm": 200.0},
    {"qos_gbps": (1e4, 1e5)}, {"backhaul_gbps": (1e-12, 1.0)}, {"path_loss_exponent": 50.0},
    {"area_m": 1e12}, {"k_factor": 1e9},
])
def test_generator_refuses_knobs_outside_the_file_ranges(overrides):
    with pytest.raises(ParameterError) as exc:
        generate("tiny", seed=0, **overrides)
    assert next(iter(overrides)) in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_lies_inside_the_ranges(scenario):
    d = instance_to_dict(generate(scenario, seed=3, n_users=4))
    instance_from_dict(d, verify_channels="off")  # raises if any value is out of range


# ---------------------------------------------------------------------------------------
# 3. degenerate physics at the edges of the ranges: finite numbers, valid JSON
# ---------------------------------------------------------------------------------------
EDGES = {
    "quietest receiver, strongest node": {"noise_w": 1e-24, "power_max_w": 1e6},
    "loudest receiver, weakest node": {"noise_w": 1.0, "power_max_w": 1e-9},
    "widest band": {"bandwidth_hz": 1e12},
    "largest error ellipsoid": {"c": 1e-30},
    "slowest backhaul": {"low_bps": 1.0, "high_bps": 1.0},
}


@pytest.mark.parametrize("case", sorted(EDGES))
def test_extreme_but_allowed_values_give_finite_json_results(tiny_dict, case):
    from fgamcd_opt.runner import run_solver

    edit = EDGES[case]
    _no_fp(tiny_dict)
    for key, value in edit.items():
        if key in ("noise_w",):
            for ud in tiny_dict["users"]:
                ud[key] = value
        elif key == "power_max_w":
            for nd in tiny_dict["nodes"]:
                nd[key] = value
        elif key == "c":
            tiny_dict["error_shape"]["c"] = value
        elif key in ("low_bps", "high_bps"):
            tiny_dict["backhaul"][key] = value
        else:
            tiny_dict[key] = value
    inst = instance_from_dict(tiny_dict)
    assert np.all(np.isfinite(inst.snr_required))
    for name in ("nocoop", "trimcaching"):
        rec = run_solver(inst, _solver(name), {}, seed=0).record.to_dict()
        json.dumps(rec, allow_nan=False)  # no Infinity/NaN ever reaches a JSON output
        for key in ("total_delay_s", "migration_delay_s", "broadcast_delay_s"):
            v = rec.get(key)
            assert v is None or (isinstance(v, float) and math.isfinite(v) and v >= 0), key


# ---------------------------------------------------------------------------------------
# 4. memory: estimate before allocating, refuse beyond the limit; bounded fingerprints
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,value", [("4G", 4 * 10**9), ("500MB", 5 * 10**8),
                                        ("1.5GiB", int(1.5 * 2**30)), ("123", 123),
                                        (" 2 kb ", 2000)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "-1G", "lots", "4Q", "nan", "inf", "0"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ValueError):
        parse_bytes(text)


def test_memory_limit_sources(monkeypatch):
    monkeypatch.setenv("FGAMCD_MAX_MEMORY", "3G")
    assert memory_limit_bytes() == 3 * 10**9
    assert memory_limit_bytes("1G") == 10**9  # the flag wins
    monkeypatch.setenv("FGAMCD_MAX_MEMORY", "plenty")
    with pytest.raises(ParameterError, match="FGAMCD_MAX_MEMORY"):
        memory_limit_bytes()
    monkeypatch.delenv("FGAMCD_MAX_MEMORY")
    assert memory_limit_bytes() > 10**8


def test_memory_estimate_grows_with_size():
    small = estimate_memory_bytes(6, 30, 435, 20)
    assert estimate_memory_bytes(6, 30_000, 435, 20) > small
    assert estimate_memory_bytes(24, 30, 435, 20) > small
    side = estimate_memory_bytes(6, 30, 435, 20, sidecar_channels=True)
    assert side - small == 2 * 16 * 435 * 6 * 30 * 20


def test_generator_refuses_beyond_the_limit_before_allocating(monkeypatch):
    with pytest.raises(ResourceLimitError) as exc:
        generate("paper-default", n_users=10**9, max_memory="16G")
    msg = str(exc.value)
    assert "needs about" in msg and "16.0 GB" in msg and "--max-memory" in msg
    monkeypatch.setenv("FGAMCD_MAX_MEMORY", "100M")
    with pytest.raises(ResourceLimitError):
        generate("tiny", n_users=100_000)


def test_loader_refuses_beyond_the_limit(tiny, tmp_path, capsys):
    path = tmp_path / "t.json"
    save_instance(tiny, path)
    with pytest.raises(ResourceLimitError, match="needs about"):
        load_instance(path, max_memory="50M")
    assert cli_main(["info", str(path), "--max-memory", "1M"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs about" in err
    assert cli_main(["gen", "tiny", "-o", str(tmp_path / "g.json"), "--max-memory",
                     "junk"]) == 2


class _Spy:
    """A channel source that records the largest number of users asked for at once."""

    def __init__(self, inner):
        self.inner, self.shape, self.widest = inner, inner.shape, 0

    def channel(self, k, users=None):
        users = range(self.shape[1]) if users is None else users
        self.widest = max(self.widest, len(users))
        return self.inner.channel(k, users)


def test_fingerprint_is_chunked_and_matches_the_unchunked_value():
    rng = np.random.default_rng(4)
    ch = RicianChannels(7, rng.uniform(0, 500, (3, 2)), rng.uniform(0, 500, (50, 2)), 4)
    whole = fingerprint(ch, range(5), chunk_users=10**6)
    spy = _Spy(ch)
    chunked = fingerprint(spy, range(5), chunk_users=7)
    assert spy.widest == 7
    assert fingerprint_matches(whole, chunked)
    np.testing.assert_allclose(whole["values"], chunked["values"], rtol=1e-12, atol=1e-12)


def test_fingerprint_samples_users_beyond_the_cap():
    assert list(fingerprint_users(10, 64)) == list(range(10))
    sample = fingerprint_users(10_000, 64)
    assert len(sample) == 64 and sample[0] == 0 and sample[-1] < 10_000
    assert np.all(np.diff(sample) > 0)
    rng = np.random.default_rng(5)
    nodes, users = rng.uniform(0, 500, (2, 2)), rng.uniform(0, 500, (200, 2))
    ch = RicianChannels(3, nodes, users, 2)
    spy = _Spy(ch)
    fps = channel_fingerprints(spy, 4)
    assert fps["full"]["max_users"] == FINGERPRINT_MAX_USERS
    assert spy.widest <= FINGERPRINT_MAX_USERS
    # a different random stream (another seed) is still detected from the sample
    other = RicianChannels(4, nodes, users, 2)
    assert not fingerprint_matches(fps["full"], fingerprint(other, range(4), 64))


def test_large_generated_instance_round_trips_with_sampled_fingerprints(tmp_path):
    inst = generate("tiny", seed=2, n_users=150, antennas=2)
    assert inst.channel_fingerprints["probe"]["max_users"] == FINGERPRINT_MAX_USERS
    save_instance(inst, tmp_path / "x.json")
    back = load_instance(tmp_path / "x.json", verify_channels="full")
    assert back.fingerprint == inst.fingerprint
    d = json.loads((tmp_path / "x.json").read_text())
    d["channels"]["seed"] += 1
    (tmp_path / "y.json").write_text(json.dumps(d))
    with pytest.raises(InstanceError, match="do not match"):
        load_instance(tmp_path / "y.json")


def test_instance_fingerprint_ignores_the_last_bits_of_channel_fingerprints(tiny_dict):
    a = instance_from_dict(json.loads(json.dumps(tiny_dict)))
    tiny_dict["channels"]["fingerprints"]["full"]["values"][0] *= 1 + 1e-15
    b = instance_from_dict(tiny_dict)
    assert a.fingerprint == b.fingerprint


@settings(max_examples=40, deadline=None)
@given(models=st.lists(st.integers(0, 3), min_size=0, max_size=25))
def test_requesters_equal_the_demand_matrix(tiny, models):
    from dataclasses import replace

    from fgamcd_opt.instance import Instance, Users

    u = len(models)
    users = Users(ids=tuple(f"u{i}" for i in range(u)), positions_m=np.zeros((u, 2)),
                  node=np.zeros(u, dtype=np.int64), model=np.array(models, dtype=np.int64),
                  qos_bps=np.zeros(u), noise_w=np.ones(u))
    inst = Instance(**{**{f: getattr(tiny, f) for f in tiny.__dataclass_fields__},
                       "users": users})
    inst = replace(inst)
    d = inst.demand
    for k in range(inst.n_blocks):
        np.testing.assert_array_equal(inst.requesters(k), np.flatnonzero(d[:, k]))
    np.testing.assert_array_equal(inst.requested_blocks, np.flatnonzero(d.any(axis=0)))


# ---------------------------------------------------------------------------------------
# 5. sidecar paths and non-regular files
# ---------------------------------------------------------------------------------------
def _sidecar_instance(d, name):
    d["channels"] = {"kind": "sidecar"}
    d["sidecar"] = name
    return d


def _channels_array(d):
    k, n = len(d["repository"]["blocks"]), len(d["nodes"])
    u, m = len(d["users"]), d["nodes"][0]["antennas"]
    return np.full((k, n, u, m), 1e-4 + 0j)


def test_absolute_sidecar_refused_unless_allowed(tiny_dict, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    np.savez(outside / "c.npz", channels=_channels_array(tiny_dict))
    folder = tmp_path / "inst"
    folder.mkdir()
    path = folder / "i.json"
    path.write_text(json.dumps(_sidecar_instance(tiny_dict, str(outside / "c.npz"))))
    with pytest.raises(InstanceError) as exc:
        load_instance(path)
    assert exc.value.path == "sidecar" and "absolute" in exc.value.message
    assert load_instance(path, allow_external_sidecar=True).channel(0).shape[0] == 3


def test_dotdot_sidecar_refused_unless_allowed(tiny_dict, tmp_path, capsys):
    np.savez(tmp_path / "c.npz", channels=_channels_array(tiny_dict))
    folder = tmp_path / "inst"
    folder.mkdir()
    path = folder / "i.json"
    path.write_text(json.dumps(_sidecar_instance(tiny_dict, "../c.npz")))
    with pytest.raises(InstanceError, match=r"'\.\.'"):
        load_instance(path)
    load_instance(path, allow_external_sidecar=True)
    assert cli_main(["info", str(path)]) == 2
    assert cli_main(["info", str(path), "--allow-external-sidecar"]) == 0


def test_symlinked_sidecar_leading_outside_is_refused(tiny_dict, tmp_path):
    np.savez(tmp_path / "c.npz", channels=_channels_array(tiny_dict))
    folder = tmp_path / "inst"
    folder.mkdir()
    (folder / "c.npz").symlink_to(tmp_path / "c.npz")
    path = folder / "i.json"
    path.write_text(json.dumps(_sidecar_instance(tiny_dict, "c.npz")))
    with pytest.raises(InstanceError, match="outside"):
        load_instance(path)
    load_instance(path, allow_external_sidecar=True)


@pytest.mark.parametrize("content,what", [
    (b"root:x:0:0:root:/root:/bin/bash\n", "not a zip archive"),
    (b"\x80\x04\x95\x00", "pickled data"),
    (b"\x93NUMPY\x01\x00", "a single .npy array"),
    (b"", "empty"),
])
def test_non_npz_sidecar_is_reported_as_such(tiny_dict, tmp_path, content, what):
    (tmp_path / "c.npz").write_bytes(content)
    path = tmp_path / "i.json"
    path.write_text(json.dumps(_sidecar_instance(tiny_dict, "c.npz")))
    with pytest.raises(InstanceError) as exc:
        load_instance(path)
    assert "not an .npz archive" in exc.value.message and what in exc.value.message


def test_sidecar_shape_is_checked_from_the_header_before_loading(tiny_dict, tmp_path):
    np.savez_compressed(tmp_path / "c.npz", channels=np.zeros((2000, 3, 6, 4), complex))
    path = tmp_path / "i.json"
    path.write_text(json.dumps(_sidecar_instance(tiny_dict, "c.npz")))
    with pytest.raises(InstanceError, match="does not match the instance"):
        load_instance(path)


def test_sidecar_channel_amplitude_is_bounded(tiny_dict, tmp_path):
    arr = _channels_array(tiny_dict)
    arr[1, 0, 0, 0] = 1e200
    np.savez(tmp_path / "c.npz", channels=arr)
    path = tmp_path / "i.json"
    path.write_text(json.dumps(_sidecar_instance(tiny_dict, "c.npz")))
    with pytest.raises(InstanceError, match="amplitude"):
        load_instance(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_instance_and_sidecar_are_refused_without_blocking(tiny_dict, tmp_path):
    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    with pytest.raises(InstanceError, match="FIFO"):
        load_instance(fifo)  # opening it would block forever
    os.mkfifo(tmp_path / "c.npz")
    path = tmp_path / "i.json"
    path.write_text(json.dumps(_sidecar_instance(tiny_dict, "c.npz")))
    with pytest.raises(InstanceError, match="not a regular file"):
        load_instance(path)


# ---------------------------------------------------------------------------------------
# 7. calibrated LLM scenarios; import structure
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,base", [("llm-7b-calibrated", "llm-7b"),
                                       ("llm-13b-calibrated", "llm-13b")])
def test_calibrated_llm_scenarios(name, base):
    cal, lit = SCENARIOS[name][0], SCENARIOS[base][0]
    assert cal.qos_gbps == (1.0, 2.0) and cal.node_layout == "grid"
    assert cal.base_models == lit.base_models and cal.frozen_blocks == lit.frozen_blocks
    assert "QoS" in SCENARIOS[base][1] and "calibrated" in SCENARIOS[base][1]


def test_gen_list_documents_unreachable_qos(capsys):
    assert cli_main(["gen", "--list"]) == 0
    out = capsys.readouterr().out
    assert "llm-7b-calibrated" in out and "never meet QoS" in out


def test_instance_module_does_not_import_the_loader():
    code = ("import sys, fgamcd_opt.instance; "
            "print('fgamcd_opt.instance_io' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------
# the fast validation of large user lists agrees with jsonschema on the whole document
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def _wide_dict() -> dict:
    d = instance_to_dict(generate("tiny", seed=5, n_users=70, antennas=2))
    d["error_shape"]["c"] = [[1e10] * 70 for _ in range(3)]  # per-link: also scanned
    return _no_fp(d)


_USER_EDITS = st.sampled_from([
    ("qos_bps", 1e300), ("qos_bps", -1.0), ("qos_bps", "fast"), ("qos_bps", True),
    ("noise_w", 5e-324), ("noise_w", 0), ("noise_w", 10**40), ("noise_w", math.nan),
    ("position_m", [1e300, 0.0]), ("position_m", [0.0]), ("position_m", [0.0, math.inf]),
    ("position_m", [0, 1]), ("id", ""), ("id", 5), ("node", "x" * 201), ("colour", "red"),
    ("requested_model", None), ("qos_bps", 10**13), ("noise_w", 1)])


@settings(max_examples=60, deadline=None)
@given(where=st.integers(0, 69), edit=_USER_EDITS, delete=st.booleans(),
       c_at=st.none() | st.tuples(st.integers(0, 2), st.integers(0, 69)),
       c_value=st.sampled_from([5e-324, -1.0, 1e301, "x", None, 1e-30, 1e300]))
def test_fast_validation_agrees_with_jsonschema(_wide_dict, where, edit, delete, c_at, c_value):
    from fgamcd_opt.instance_io import _validate
    from fgamcd_opt.jsonio import validate_schema

    d = json.loads(json.dumps(_wide_dict))
    key, value = edit
    if delete and key in d["users"][where]:
        del d["users"][where][key]
    else:
        d["users"][where][key] = value
    if c_at is not None:
        d["error_shape"]["c"][c_at[0]][c_at[1]] = c_value
    errors = []
    for check in (lambda: validate_schema(d, INSTANCE_SCHEMA, "f.json", InstanceError),
                  lambda: _validate(d, "f.json")):
        try:
            check()
            errors.append(None)
        except InstanceError as exc:
            errors.append(exc)
    full, fast = errors
    assert (full is None) == (fast is None), (full, fast)
    if fast is not None:
        assert fast.path.startswith(("users[", "error_shape.c[")), fast.path
        assert fast.path.startswith(f"users[{where}]") or fast.path.startswith(
            "error_shape.c["), fast.path


def test_lazy_steering_gives_the_same_bits_as_the_precomputed_tensor(monkeypatch):
    import fgamcd_opt.channels as channels

    rng = np.random.default_rng(8)
    nodes, users = rng.uniform(0, 900, (4, 2)), rng.uniform(0, 900, (40, 2))
    cached = RicianChannels(11, nodes, users, 6)
    monkeypatch.setattr(channels, "STEERING_CACHE_BYTES", 0)  # as for a huge U
    lazy = RicianChannels(11, nodes, users, 6)
    assert cached._steering is not None and lazy._steering is None
    for k in (0, 3):
        np.testing.assert_array_equal(cached.channel(k), lazy.channel(k))


_FRAGMENTS = st.sampled_from(["c.npz", "..", ".", "sub", "/", "/etc", "passwd", "c.npy", "",
                              "~", "link", "sub/../c.npz", "\\\\", "C:", "\x00", " "])


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(_FRAGMENTS, min_size=1, max_size=4), absolute=st.booleans())
def test_fuzz_sidecar_paths_never_escape_or_crash(_tiny_dict_master, tmp_path_factory, parts,
                                                   absolute):
    """Whatever the sidecar string, the loader either reads the folder's own c.npz or raises
    InstanceError; nothing outside the instance's folder is opened without the opt-in."""
    import copy

    root = tmp_path_factory.mktemp("side")
    folder = root / "inst"
    (folder / "sub").mkdir(parents=True)
    d = copy.deepcopy(_tiny_dict_master)
    arr = _channels_array(d)
    np.savez(folder / "c.npz", channels=arr)
    np.savez(root / "c.npz", channels=arr * 2)  # outside: must never be the one loaded
    (folder / "link").symlink_to(root / "c.npz")
    rel = "/".join(parts)
    rel = ("/" + rel) if absolute else rel
    if not rel:
        return
    path = folder / "i.json"
    path.write_text(json.dumps(_sidecar_instance(d, rel)))
    try:
        inst = load_instance(path)
    except InstanceError as exc:
        assert "\n" not in str(exc)
        return
    np.testing.assert_array_equal(inst.channel(0), arr[0])  # the folder's own file


def test_nul_in_instance_path_is_an_instance_error():
    with pytest.raises(InstanceError, match="invalid path"):
        load_instance("bad\x00name.json")


def test_info_reachability_switch(tiny, tmp_path, capsys, monkeypatch):
    import fgamcd_opt.cli.main as cli

    path = tmp_path / "t.json"
    save_instance(tiny, path)
    assert cli_main(["info", str(path), "--json", "--reachability", "off"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["qos_reachability"] is None and s["requested_pairs"] == int(tiny.demand.sum())
    monkeypatch.setattr(cli, "REACHABILITY_AUTO_PAIRS", 10)  # as for a huge instance
    assert cli_main(["info", str(path)]) == 0
    assert "not computed" in capsys.readouterr().out
    assert cli_main(["info", str(path), "--json", "--reachability", "on"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["qos_reachability"]["blocks_qos_reachable_share"] > 0


_KNOB_VALUES = st.sampled_from([0.0, -1.0, 1e-300, 5e-324, 1e-3, 1.0, 40.0, 1e6, 1e12, 1e300,
                                -1e300, math.nan, math.inf])


@settings(max_examples=40, deadline=None)
@given(knobs=st.dictionaries(st.sampled_from([
    "bandwidth_mhz", "power_dbm", "noise_dbm", "storage_gb", "error_c", "area_m", "k_factor",
    "path_loss_db", "path_loss_exponent", "info_radius_m", "zipf", "reuse_ratio"]),
    _KNOB_VALUES, max_size=3), n_users=st.integers(0, 5))
def test_fuzz_generator_knobs_give_a_loadable_instance_or_a_clean_error(knobs, n_users):
    """The generator and the loader agree: whatever the knobs, either a ParameterError naming a
    knob, or an instance whose JSON form the loader accepts (physical ranges included)."""
    try:
        inst = generate("tiny", seed=0, n_users=n_users, **knobs)
    except ParameterError as exc:
        assert "\n" not in str(exc) and any(k in str(exc) for k in knobs)
        return
    back = instance_from_dict(instance_to_dict(inst), verify_channels="probe")
    assert back.n_users == n_users
    assert np.all(np.isfinite(back.snr_required))
