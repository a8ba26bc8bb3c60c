"""A benchmark suite that a hostile or broken plugin cannot fool (issue 19): every failure is
driven through the real command line with the plugins of tests/hostile_solvers.py, on a one-
instance test-only suite (tiny scenario, two cheap built-ins, a 4 s time limit, 3 s grace).

What must hold: the leaderboard ranks the hostile plugins as documented (tampering and crashes
disqualify, lies are flagged, the kill is reported), the built-ins' rows are identical to a run
without any plugin, the command finishes with a clear last line and exit status 1, a resumed
run completes, SIGTERM stops the running cells at once and keeps the finished rows, and a Dask
run without workers stops and says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fgamcd_opt.cli.bench import main as bench_main
from fgamcd_opt.experiments.store import read_store
from fgamcd_opt.experiments.sweep import comparable

HOSTILE = Path(__file__).resolve().parent / "hostile_solvers.py"
ROOT = Path(__file__).resolve().parents[1]
SUITE = """
name = "hostile"
version = 1
description = "test-only suite: one tiny instance"
time_limit_s = 4
oracle = "fast"
builtins = ["nocoop", "tdma"]

[[instances]]
name = "tiny0"
scenario = "tiny"
seed = 0
"""
PLUGINS = ["Mutator", "Writer", "Liar", "StorageBreaker", "Crasher", "Sleeper", "Hanger"]


def _suite(tmp_path, text=SUITE, name="hostile.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def _solvers(*names) -> list[str]:
    return [a for n in names for a in ("--solver", f"{HOSTILE}:{n}")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The suite without plugins, then with every hostile plugin (check skipped, so that each
    failure reaches the runs), then resumed with the crasher alone and its check on."""
    d = tmp_path_factory.mktemp("hostile")
    suite = _suite(d)
    common = ["--workers", "2", "--no-progress", "--grace", "3"]
    clean = bench_main(["--suite", str(suite), "-o", str(d / "clean"), *common])
    t0 = time.monotonic()
    hostile = bench_main(["--suite", str(suite), "-o", str(d / "hostile"), *common,
                          "--skip-check", *_solvers(*PLUGINS)])
    took = time.monotonic() - t0
    log_lines = (d / "hostile" / "sweep-log.jsonl").read_text().splitlines()
    first = d / "first"  # the leaderboard of the run with every plugin (the resume rewrites it)
    first.mkdir()
    for name in ("leaderboard.json", "leaderboard.md"):
        (first / name).write_text((d / "hostile" / name).read_text())
    resumed = bench_main(["--suite", str(suite), "-o", str(d / "hostile"), *common,
                          *_solvers("Crasher")])
    return {"dir": d, "clean": clean, "hostile": hostile, "resumed": resumed, "took": took,
            "first_log": json.loads(log_lines[-1])}


def _board(out: Path) -> dict:
    return {b["solver"]: b for b in json.loads((out / "leaderboard.json").read_text())["board"]}


def _rows(out: Path) -> dict:
    return {r["solver_label"]: r for r in read_store(out)[1]}


def test_exit_status_and_last_line(runs, capsys):
    assert runs["clean"] == 0
    assert runs["hostile"] == 1 and runs["resumed"] == 1
    # seven plugins, one of them never returning, on two slots: the kill is at 4 + 3 s
    assert runs["took"] < 60


def test_each_failure_is_recorded_with_its_state(runs):
    rows = _rows(runs["dir"] / "hostile")
    assert rows["mutator"]["state"] == "tampered"
    assert "modified the instance (fingerprint" in rows["mutator"]["message"]
    assert rows["writer"]["state"] == "tampered" and "read-only" in rows["writer"]["message"]
    assert rows["crasher"]["state"] == "crashed" and "exit code 3" in rows["crasher"]["message"]
    assert rows["hanger"]["state"] == "killed"
    assert "over the time limit of 4 s plus 3 s grace" in rows["hanger"]["message"]
    # the sleeper returns within the grace: scored, and over the limit
    assert rows["sleeper"]["state"] == "done" and rows["sleeper"]["solve_time_s"] > 4
    # the storage breaker's claim "feasible" meets the evaluator's structural verdict
    sb = rows["storage-breaker"]
    assert sb["state"] == "done" and sb["solver_status"] == "feasible"
    assert sb["verdict"] == "infeasible" and sb["violations"].get("storage", 0) >= 1
    assert sb["total_delay_s"] is None and sb["complete"] is True
    # the liar's bound is a claim, never the row's bound or gap
    liar = rows["liar"]
    assert liar["claimed_bound_s"] == 100.0 and liar["bound_s"] is None and liar["gap"] is None
    assert all(r["solver_origin"] == ("builtin" if k in ("nocoop", "tdma") else "plugin")
               for k, r in rows.items())


def test_leaderboard_ranks_disqualifies_and_flags(runs):
    out = runs["dir"] / "first"
    board = _board(out)
    order = [b["solver"] for b in json.loads((out / "leaderboard.json").read_text())["board"]]
    dq = {"mutator", "writer", "crasher"}
    assert set(order[-3:]) == dq  # every disqualified entry below every qualified one
    assert all(board[s]["rank"] is None for s in dq)
    assert "tampered with its instance" in board["mutator"]["disqualified"][0]
    assert "crashed" in board["crasher"]["disqualified"][0]
    assert order[0] == "tdma"  # the only complete, structurally valid plan
    assert board["hanger"]["over_limit"] == 1 and board["sleeper"]["over_limit"] == 1
    assert board["storage-breaker"]["claims_contradicted"] == 1
    md = (out / "leaderboard.md").read_text()
    assert "FALSE: above the delay" in md and "| liar | tiny0 | 100 |" in md
    assert "infeasible: storage x" in md and "(claimed feasible)" in md
    assert "DISQUALIFIED: tampered with its instance" in md
    assert "killed after" in md


def test_builtin_rows_are_identical_to_a_run_without_plugins(runs):
    clean = {r["cell"]: comparable(r) for r in read_store(runs["dir"] / "clean")[1]}
    hostile = {r["cell"]: comparable(r) for r in read_store(runs["dir"] / "hostile")[1]
               if r["solver_origin"] == "builtin"}
    assert len(clean) == 2 and clean == hostile


def test_resume_completes_and_reuses_the_finished_runs(runs):
    out = runs["dir"] / "hostile"
    assert runs["first_log"]["ran"] == 9
    last = json.loads((out / "sweep-log.jsonl").read_text().splitlines()[-1])
    assert last["ran"] == 1 and last["resumed_done"] == 2  # only the crasher ran again
    checks = json.loads((out / "conformance.json").read_text())
    assert not checks["crasher"]["ok"]
    assert "the check's process died (exit code 3)" in checks["crasher"]["failures"][0]
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["failed_checks"] == ["crasher"]
    assert [b["solver"] for b in board["board"]][-1] == "crasher"


def test_sigterm_stops_running_cells_at_once_and_keeps_finished_rows(tmp_path):
    psutil = pytest.importorskip("psutil")
    suite = _suite(tmp_path, SUITE.replace("time_limit_s = 4", "time_limit_s = 300")
                   .replace('["nocoop", "tdma"]', '["nocoop"]'))
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-m", "fgamcd_opt.cli.bench", "--suite",
                             str(suite), "-o", str(out), "--workers", "2", "--no-progress",
                             "--skip-check", *_solvers("Hanger")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        store = out / "store.jsonl"
        while time.monotonic() < deadline:  # nocoop's row is in, the hanger is running
            if store.is_file() and len(store.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        time.sleep(1.0)
        family = psutil.Process(proc.pid).children(recursive=True)  # hosts, sandboxes
        assert len(family) >= 2
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and stopped_in < 10
    assert "interrupted: 1 running cell(s) stopped" in err
    rows = read_store(out)[1]
    assert [r["solver_label"] for r in rows] == ["nocoop"] and rows[0]["state"] == "done"
    log = json.loads((out / "sweep-log.jsonl").read_text().splitlines()[-1])
    assert len(log["interrupted"]) == 1
    time.sleep(1.5)
    alive = [p for p in family if p.is_running()
             and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {alive}"


def test_dask_run_without_live_workers_stops_and_says_so(tmp_path):
    pytest.importorskip("distributed")
    from fgamcd_opt.experiments.executors import DaskExecutor, NoWorkers
    from fgamcd_opt.experiments.spec import load_spec
    from fgamcd_opt.experiments.sweep import run_sweep

    spec = load_spec(_suite(tmp_path, 'name = "d"\nscenario = "tiny"\n[[solvers]]\n'
                                      'name = "nocoop"\n', "d.toml"))
    dx = DaskExecutor(workers=1, no_worker_timeout_s=2.0)
    try:
        dx._cluster.scale(0)
        deadline = time.monotonic() + 30
        while dx._live_workers() and time.monotonic() < deadline:
            time.sleep(0.2)
        t0 = time.monotonic()
        with pytest.raises(NoWorkers, match="no live Dask worker for 2 s: stopping"):
            run_sweep(spec, tmp_path / "o", dx, progress=False)
        assert time.monotonic() - t0 < 20
    finally:
        dx.close()
    assert read_store(tmp_path / "o")[1] == []  # nothing invented


def test_frozen_instance_refuses_writes_and_the_fingerprint_sees_rebinding():
    from fgamcd_opt.experiments.isolation import freeze_instance, tamper_reason
    from fgamcd_opt.generators import generate

    inst = freeze_instance(generate("tiny", seed=0))
    fp = inst.fingerprint
    with pytest.raises(ValueError, match="read-only"):
        inst.users.qos_bps[0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        inst.demand[0, 0] = True
    assert tamper_reason(inst, fp, "") == ""
    object.__setattr__(inst.nodes, "storage_bytes", inst.nodes.storage_bytes * 2)
    assert inst.fingerprint == fp  # cached: blind to the change
    assert inst.fresh_fingerprint() != fp
    assert "modified the instance" in tamper_reason(inst, fp, "")


@pytest.mark.parametrize("name", ["nocoop", "tdma", "hybrid", "trimcaching", "coarse",
                                  "full-comp"])
def test_builtins_run_on_a_frozen_instance_without_touching_it(name):
    from fgamcd_opt.experiments.isolation import freeze_instance, tamper_reason
    from fgamcd_opt.generators import generate
    from fgamcd_opt.registry import get_solver
    from fgamcd_opt.runner import run_solver

    inst = freeze_instance(generate("tiny", seed=1, storage_gb=0.2, n_users=4))
    fp = inst.fingerprint
    run = run_solver(inst, get_solver(name), seed=0)
    assert run.record.solver_status != "error", run.record.message
    assert tamper_reason(inst, fp, run.record.message) == ""


def test_oracle_call_budget_stops_a_run_deterministically():
    from fgamcd_opt.generators import generate
    from fgamcd_opt.oracle import BeamformingOracle
    from fgamcd_opt.solver import SolveContext

    inst = generate("tiny", seed=0)
    oracle = BeamformingOracle()
    oracle.solve(inst, int(inst.requested_blocks[0]), (0,), (0,))  # calls before the run
    ctx = SolveContext(oracle=oracle, oracle_call_budget=3)
    calls = 0
    while not ctx.should_stop():
        k = int(inst.requested_blocks[calls % len(inst.requested_blocks)])
        oracle.solve(inst, k, (0,), tuple(int(u) for u in inst.requesters(k)[:1]))
        calls += 1
    assert calls == 3 and ctx.oracle_calls() == 3 and ctx.time_left() == np.inf


def _row(label, inst, t, origin="builtin", state="done", **kw):
    return {"solver_label": label, "point": {"instance": inst}, "state": state,
            "solver_origin": origin, "total_delay_s": t, "complete": t is not None,
            "verdict": "feasible", "solver_status": "feasible", "violations": {},
            "solve_time_s": 1.0, "oracle_calls": 10, "message": "", **kw}


def test_leaderboard_trusts_only_the_bound_solver_and_can_rank_by_oracle_calls():
    from fgamcd_opt.experiments.suite import leaderboard_rows

    suite = {"instances": [{"name": "a"}, {"name": "b"}], "bound_solver": "milp",
             "time_limit_s": 60, "rank_by": "oracle_calls"}
    rows = [_row("milp", "a", 1.1, bound_s=1.0), _row("milp", "b", 2.2, bound_s=2.0),
            # a plugin claiming a huge bound, and a built-in whose bound is wrong
            _row("liar", "a", 1.2, origin="plugin", claimed_bound_s=100.0, bound_s=None),
            _row("liar", "b", 2.4, origin="plugin", claimed_bound_s=0.5, bound_s=None),
            _row("fast", "a", 1.2, oracle_calls=5), _row("fast", "b", 2.4, oracle_calls=5),
            _row("slow", "a", 1.2, oracle_calls=50), _row("slow", "b", 2.4, oracle_calls=50)]
    board, facts = leaderboard_rows(suite, rows, ["milp", "liar", "fast", "slow"])
    assert facts["a"]["bound"] == 1.0 and facts["b"]["bound"] == 2.0
    assert facts["a"]["claims"]["liar"] == {"value": 100.0, "false": True}
    assert facts["b"]["claims"]["liar"] == {"value": 0.5, "false": False}
    by = {b["solver"]: b for b in board}
    assert by["liar"]["gmean_ratio"] == pytest.approx(1.2)  # against milp's bounds, not 100
    # equal ratios (1.2): fewer oracle calls first, whatever the wall time
    assert [b["solver"] for b in board] == ["milp", "fast", "liar", "slow"]
    # a conformance FAIL ranks below every qualified entry, and says why
    board, _ = leaderboard_rows(suite, rows, ["milp", "liar", "fast", "slow"],
                                {"fast": {"ok": False, "failures": ["x"]}})
    assert board[-1]["solver"] == "fast" and board[-1]["reasons"] == ["conformance check FAIL"]


def test_conformance_check_sees_an_instance_edited_behind_its_cached_fingerprint():
    import importlib.util

    from fgamcd_opt.generators import generate
    from fgamcd_opt.testing import check_solver

    spec = importlib.util.spec_from_file_location("hostile_solvers_t", HOSTILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rep = check_solver(mod.Mutator, instances=[generate("tiny", seed=0, n_users=3)])
    assert any("modified the instance" in f for f in rep.failures), rep.failures


def test_a_plugin_that_kills_its_importer_is_refused_in_one_line(tmp_path, capsys):
    """fgamcd-bench never imports a plugin in its own process: the import that ends the process
    happens in a child, and the command says so (exit 2)."""
    (tmp_path / "boom.py").write_text("import os\nos._exit(3)\n")
    rc = bench_main(["--suite", str(_suite(tmp_path)), "-o", str(tmp_path / "o"),
                     "--no-progress", "--solver", f"{tmp_path / 'boom.py'}:Boom"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert "importing the solver (in a process of its own): the process died (exit code 3)" in err


def test_a_plugin_starts_from_the_memo_its_instance_s_builtins_left(tmp_path):
    """A plugin identical to a built-in, run after it: same delay, every oracle call a memo hit
    (the host hands its memo to the sandbox), so isolation does not make plugins recompute."""
    from fgamcd_opt.experiments.executors import LocalExecutor
    from fgamcd_opt.experiments.spec import load_spec
    from fgamcd_opt.experiments.sweep import run_sweep

    (tmp_path / "copy.py").write_text(
        "from fgamcd_solvers.hybrid import HybridSolver\n\n\n"
        "class Copy(HybridSolver):\n    name = 'hybrid-copy'\n")
    spec = load_spec(_suite(tmp_path, 'name = "m"\nscenario = "tiny"\n[params]\nn_users = 4\n'
                                      '[[solvers]]\nname = "hybrid"\n[[solvers]]\n'
                                      'name = "copy.py:Copy"\nlabel = "copy"\n', "m.toml"))
    run_sweep(spec, tmp_path / "o", LocalExecutor(1), progress=False)
    rows = {r["solver_label"]: r for r in read_store(tmp_path / "o")[1]}
    assert rows["copy"]["total_delay_s"] == rows["hybrid"]["total_delay_s"]
    assert rows["copy"]["oracle_calls"] == rows["hybrid"]["oracle_calls"] > 0
    assert rows["copy"]["oracle_cache_hits"] == rows["copy"]["oracle_calls"]
