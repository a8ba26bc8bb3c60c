"""Sweep specs, the crash-safe store, resume, failures as rows, executors (local processes and
a local Dask cluster give the same rows), the suite mode. Tiny scenario, 1-2 seeds."""

from __future__ import annotations

import json
import textwrap

import pytest

from fgamcd_opt.cli.bench import main as bench_main
from fgamcd_opt.experiments.executors import InlineExecutor, LocalExecutor
from fgamcd_opt.experiments.spec import SpecError, load_spec
from fgamcd_opt.experiments.store import Store, StoreError, read_store
from fgamcd_opt.experiments.sweep import comparable, run_sweep

TINY = """
name = "t"
scenario = "tiny"
seeds = 1
[axes]
storage_gb = [0.05, 0.2]
[[solvers]]
name = "nocoop"
[[solvers]]
name = "hybrid"
params = { eps_hot = 1 }
"""

BROKEN_SOLVER = """
from fgamcd_opt.solver import SolveResult, SolveStatus


class Broken:
    name = "broken"
    description = "raises on purpose"
    params = ()

    def solve(self, instance, ctx, params):
        raise RuntimeError("boom on purpose")
"""


def write(tmp_path, text, name="spec.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


# ---- specs --------------------------------------------------------------------------------
@pytest.mark.parametrize("text, key", [
    ('name = "x"\nscenario = "tiny"\nbogus = 1\n[[solvers]]\nname = "nocoop"', "bogus"),
    ('name = "x"\nscenario = "nope"\n[[solvers]]\nname = "nocoop"', "scenario"),
    ('name = "x"\nscenario = "tiny"\n[axes]\nwarp = [1]\n[[solvers]]\nname = "nocoop"',
     "axes.warp"),
    ('name = "x"\nscenario = "tiny"\n[axes]\nn_users = [2, "a"]\n[[solvers]]\nname = "nocoop"',
     "axes.n_users[1]"),
    ('name = "x"\nscenario = "tiny"\n[[solvers]]\nname = "no-such-solver"', "solvers[0].name"),
    ('name = "x"\nscenario = "tiny"\n[[solvers]]\nname = "hybrid"\nparams = {eps = 2}',
     "solvers[0].params"),
    ('name = "x"\nscenario = "tiny"\nseeds = 0\n[[solvers]]\nname = "nocoop"', "seeds"),
    ('name = "x"\nscenario = "tiny"\n[axes]\n"solver.eps_hot" = [1]\n[[solvers]]\n'
     'name = "nocoop"', "axes.solver.eps_hot"),
    ('name = "x"\nscenario = "tiny"', "solvers"),
    ('name = "x"\nscenario = "tiny"\n[[solvers]]\nname = "nocoop"\n[report]\nx = "zipf"',
     "report.x"),
    ('name = [1', ""),
])
def test_bad_specs_name_file_and_key(tmp_path, text, key):
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_spec(p)
    msg = str(err.value)
    assert msg.startswith(str(p)) and "\n" not in msg
    if key:
        assert f": {key}: " in msg


def test_cli_bad_spec_is_one_line_exit_2(tmp_path, capsys):
    p = write(tmp_path, 'name = "x"\nscenario = "tiny"\n[axes]\nwarp = [1]\n'
                        '[[solvers]]\nname = "nocoop"')
    assert bench_main([str(p), "-o", str(tmp_path / "o"), "--inline"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "axes.warp" in err and str(p) in err


def test_every_solver_sees_the_same_instance(tmp_path):
    spec = load_spec(write(tmp_path, TINY + '\n[[solvers]]\nname = "tdma"\n'
                                            "seeds = 2\n".replace("seeds = 2\n", "")))
    cells = spec.cells()
    by_point = {}
    for c in cells:
        key = (json.dumps(c["point"]), c["replicate"])
        by_point.setdefault(key, set()).add(
            (c["scenario"], json.dumps(c["generator_params"], sort_keys=True),
             c["instance_seed"]))
    assert all(len(v) == 1 for v in by_point.values())
    # per-point seeds differ across points (and only the instance axes feed them)
    text = TINY.replace('seeds = 1', 'seeds = 2\nseed_policy = "per_point"')
    sp = load_spec(write(tmp_path, text, "pp.toml"))
    seeds = {(json.dumps(c["point"]), c["replicate"]): c["instance_seed"] for c in sp.cells()}
    assert len(set(seeds.values())) == 4
    sp2 = load_spec(write(tmp_path, text.replace('eps_hot = 1', 'eps_hot = 3'), "pp2.toml"))
    assert {(json.dumps(c["point"]), c["replicate"]): c["instance_seed"]
            for c in sp2.cells()} == seeds


def test_sizes_override_and_hash(tmp_path):
    text = TINY + "\n[sizes.quick]\nseeds = 2\naxes.storage_gb = [0.1]\n"
    p = write(tmp_path, text)
    base, quick = load_spec(p), load_spec(p, "quick")
    assert quick.axes == {"storage_gb": [0.1]} and quick.replicates == [0, 1]
    assert base.hash != quick.hash
    with pytest.raises(SpecError, match="no size 'full'"):
        load_spec(p, "full")


# ---- sweep, store, resume -----------------------------------------------------------------
def test_sweep_resume_failures_and_csv(tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN_SOLVER)
    p = write(tmp_path, TINY + '\n[[solvers]]\nname = "broken.py:Broken"\nlabel = "broken"\n')
    spec = load_spec(p)
    out = tmp_path / "out"
    counts = run_sweep(spec, out, InlineExecutor(), progress=False)
    assert counts == {**counts, "cells": 6, "ran": 6, "done": 4, "failed": 2}
    header, rows = read_store(out)
    assert header["spec_hash"] == spec.hash
    bad = [r for r in rows if r["solver_label"] == "broken"]
    assert all(r["state"] == "failed" and "boom on purpose" in r["message"] for r in bad)
    ok = [r for r in rows if r["state"] == "done"]
    assert all(r["total_delay_s"] is None or r["total_delay_s"] > 0 for r in ok)
    # a null total (incomplete plan) goes with undelivered users, never with a 0 delay
    assert all((r["total_delay_s"] is None) == (not r["complete"]) for r in ok)
    csv_text = (out / "results.csv").read_text()
    assert csv_text.splitlines()[0].startswith("spec,cell,state")
    assert len(csv_text.splitlines()) == 7
    # resume: finished cells are kept, only the failed ones are redone
    counts2 = run_sweep(spec, out, InlineExecutor(), progress=False)
    assert counts2["resumed_done"] == 4 and counts2["ran"] == 2
    lines = (out / "store.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 6 + 2


def test_corrupt_foreign_and_locked_stores_are_refused(tmp_path):
    spec = load_spec(write(tmp_path, TINY))
    out = tmp_path / "out"
    run_sweep(spec, out, InlineExecutor(), progress=False)
    store = out / "store.jsonl"
    good = store.read_bytes()
    # foreign: another spec's results
    other = load_spec(write(tmp_path, TINY.replace('name = "t"', 'name = "u"'), "u.toml"))
    with pytest.raises(StoreError, match="not of this spec"):
        run_sweep(other, out, InlineExecutor(), progress=False)
    assert store.read_bytes() == good
    # corrupt line in the middle
    lines = good.split(b"\n")
    lines[2] = b'{"cell": "x", trunc'
    store.write_bytes(b"\n".join(lines))
    with pytest.raises(StoreError, match="line 3: not valid JSON"):
        run_sweep(spec, out, InlineExecutor(), progress=False)
    assert store.read_bytes() == b"\n".join(lines)
    # not a store at all
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "store.jsonl").write_text("my notes\n")
    with pytest.raises(StoreError, match="not a results store header"):
        run_sweep(spec, notes, InlineExecutor(), progress=False)
    assert (notes / "store.jsonl").read_text() == "my notes\n"
    # a torn last line (killed mid-write) is moved aside, the rest is kept
    store.write_bytes(good + b'{"cell": "abc", "sta')
    counts = run_sweep(spec, out, InlineExecutor(), progress=False)
    assert counts["ran"] == 0 and counts["resumed_done"] == 4
    assert (out / "store.jsonl.torn-1").read_bytes() == b'{"cell": "abc", "sta'
    assert store.read_bytes() == good
    # two writers
    s1 = Store(store, spec.name, spec.hash)
    try:
        with pytest.raises(StoreError, match="in use"):
            Store(store, spec.name, spec.hash)
    finally:
        s1.close()


def _rows(out):
    return sorted((comparable(r) for r in read_store(out)[1]), key=lambda r: r["cell"])


def test_local_processes_and_dask_give_the_same_rows(tmp_path):
    pytest.importorskip("distributed")
    from fgamcd_opt.experiments.executors import DaskExecutor

    spec = load_spec(write(tmp_path, TINY))
    run_sweep(spec, tmp_path / "inline", InlineExecutor(), progress=False)
    ex = LocalExecutor(2)
    try:
        run_sweep(spec, tmp_path / "local", ex, progress=False)
    finally:
        ex.close()
    dx = DaskExecutor(workers=2)
    try:
        assert all(a.startswith("tcp://127.0.0.1:")
                   for a in dx.client.scheduler_info()["workers"])
        run_sweep(spec, tmp_path / "dask", dx, progress=False)
    finally:
        dx.close()
    inline, local, dask = (_rows(tmp_path / d) for d in ("inline", "local", "dask"))
    assert len(inline) == 4 and all(r["state"] == "done" for r in inline)
    assert local == inline
    assert dask == inline
    workers = {r["worker"] for r in read_store(tmp_path / "local")[1]}
    assert len(workers) >= 1


def test_suite_ranks_a_user_solver_against_builtins(tmp_path):
    from pathlib import Path

    from fgamcd_opt.experiments.suite import run_suite

    example = Path(__file__).resolve().parents[1] / "examples" / "nearest_solver.py"
    suite = write(tmp_path, """
        name = "mini"
        version = 1
        time_limit_s = 30
        builtins = ["nocoop", "milp"]
        [[instances]]
        name = "tiny0"
        scenario = "tiny"
        seed = 1
        params = { storage_gb = 0.2 }
        """, "mini.toml")
    board = run_suite(str(suite), [f"{example}:NearestSolver"], tmp_path / "s", InlineExecutor(),
                      progress=False)
    md = board.read_text()
    assert "conformance" in md.lower() and "nearest" in md
    assert (tmp_path / "s" / "leaderboard.html").read_text().startswith("<!DOCTYPE html>")
    rank_lines = [ln for ln in md.splitlines() if ln.startswith("| 1 |") or ln.startswith(
        "| 2 |") or ln.startswith("| 3 |")]
    assert len(rank_lines) == 3
    # the bound row exists and every complete ratio is >= 1 (the bound is a lower bound)
    _, rows = read_store(tmp_path / "s")
    bound = max(r["bound_s"] for r in rows if r.get("bound_s"))
    assert all(r["total_delay_s"] >= bound * (1 - 1e-9) for r in rows
               if r["state"] == "done" and r["total_delay_s"] is not None)
    # a rerun reuses every finished run
    run_suite(str(suite), [f"{example}:NearestSolver"], tmp_path / "s", InlineExecutor(),
              progress=False, check=False)
    assert json.loads((tmp_path / "s" / "sweep-log.jsonl").read_text().splitlines()[-1])[
        "ran"] == 0


SPECS = sorted((__import__("pathlib").Path(__file__).resolve().parents[1] / "reports" / "specs")
               .glob("*.toml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_specs_are_valid(path):
    """Every committed spec (the paper's figures) loads at each of its sizes; a sweep's quick
    size is smaller than its full size."""
    import tomllib

    sizes = list(tomllib.loads(path.read_text()).get("sizes", {})) or [None]
    loaded = {s: load_spec(path, s) for s in sizes}
    for spec in loaded.values():
        if spec.kind == "sweep":
            cells = spec.cells()
            assert cells and len({c["cell"] for c in cells}) == len(cells)
    if {"quick", "full"} <= set(loaded) and loaded["quick"].kind == "sweep":
        assert len(loaded["quick"].cells()) < len(loaded["full"].cells())
