"""The command line: gen, info, solve, eval, schema; one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fgamcd_opt.cli.main import main
from fgamcd_opt.instance_io import load_instance
from fgamcd_opt.plan_io import PLAN_SCHEMA, load_plan
from fgamcd_opt.schema import INSTANCE_SCHEMA


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def inst_file(workdir) -> Path:
    path = workdir / "x.json"
    assert main(["gen", "tiny", "-o", str(path), "--seed", "3"]) == 0
    return path


@pytest.fixture(scope="module")
def solved(inst_file, workdir):
    plan = workdir / "p.plan.json"
    code = main(["solve", str(inst_file), "--solver", "coarse", "-o", str(plan)])
    return code, plan, workdir / "p.eval.json"


def test_gen_writes_a_loadable_instance(capsys, tmp_path):
    code, out, err = run(capsys, "gen", "tiny", "-o", tmp_path / "y.json", "--seed", "5",
                         "--set", "n_users=7", "--name", "mine")
    assert code == 0 and err == ""
    inst = load_instance(tmp_path / "y.json", verify_channels="full")
    assert inst.n_users == 7 and inst.name == "mine"
    assert f"wrote {tmp_path / 'y.json'}: N=3 U=7 J=4 K=38 M=4" in out


def test_gen_bad_parameter(capsys, tmp_path):
    code, _, err = run(capsys, "gen", "tiny", "-o", tmp_path / "y.json", "--set", "foo=1")
    assert code == 2
    assert_one_line_error(err, "unknown parameter 'foo'")
    code, _, err = run(capsys, "gen", "tiny", "-o", tmp_path / "y.json", "--set", "n_nodes=0")
    assert code == 2
    assert_one_line_error(err, "n_nodes")
    code, _, err = run(capsys, "gen", "tiny", "-o", tmp_path / "y.json", "--set", "n_nodes=x")
    assert code == 2
    assert_one_line_error(err, "n_nodes", "'x'")
    assert not (tmp_path / "y.json").exists()


def test_info_prints_the_statistics(capsys, inst_file):
    code, out, err = run(capsys, "info", inst_file)
    assert code == 0 and err == ""
    s = load_instance(inst_file).summary()
    assert "PBs K=38" in out
    assert f"unique bytes {s['unique_bytes'] / 1e6:.2f} MB" in out
    assert f"naive bytes {s['naive_bytes'] / 1e6:.2f} MB" in out
    assert f"reuse ratio per model: mean {100 * s['reuse_ratio_mean']:.2f}%" in out
    assert f"requested models {s['requested_models']}, requested PBs " \
           f"{s['requested_blocks']}" in out
    assert f"requesters per PB: mean {s['requesters_per_block_mean']:.2f}, max " \
           f"{s['requesters_per_block_max']}" in out


def test_info_json_and_verify_channels(capsys, inst_file):
    code, out, _ = run(capsys, "info", inst_file, "--json", "--verify-channels")
    assert code == 0
    s = json.loads(out)
    inst = load_instance(inst_file)
    assert s["K"] == 38 and s["unique_bytes"] == inst.repository.unique_bytes
    assert s["naive_bytes"] == inst.repository.naive_bytes
    assert s["fingerprint"] == inst.fingerprint
    assert 0 <= s["qos_reachability"]["blocks_qos_reachable_share"] <= 1
    code, out, _ = run(capsys, "info", inst_file, "--verify-channels")
    assert code == 0 and "matched the recorded full fingerprint" in out


def test_solve_writes_plan_and_evaluation(solved):
    code, plan_path, eval_path = solved
    assert code == 0
    inst = load_instance(plan_path.with_name("x.json"))
    plan = load_plan(plan_path, inst)
    assert plan.solver == "coarse" and plan.model_copies is not None
    ev = json.loads(eval_path.read_text())
    assert ev["run"]["solver"] == "coarse" and ev["run"]["instance_name"] == inst.name
    assert ev["run"]["instance_fingerprint"] == inst.fingerprint
    assert ev["evaluation"]["delivered_delay_s"] == ev["run"]["delivered_delay_s"] > 0
    assert ev["evaluation"]["total_delay_s"] == ev["run"]["total_delay_s"]
    assert (ev["run"]["total_delay_s"] is None) == (not ev["run"]["complete"])
    assert json.loads(plan_path.with_name("p.run.json").read_text()) == ev["run"]
    assert ev["evaluation"]["status"] in ("feasible", "infeasible")


def test_eval_reproduces_the_solve_delay(capsys, solved, inst_file):
    _, plan_path, eval_path = solved
    code, out, _ = run(capsys, "eval", inst_file, plan_path, "--json")
    assert code == 0
    got = json.loads(out)
    want = json.loads(eval_path.read_text())["evaluation"]
    assert got["delivered_delay_s"] == pytest.approx(want["delivered_delay_s"], rel=1e-12)
    assert got["total_delay_s"] == want["total_delay_s"] or got["total_delay_s"] == \
        pytest.approx(want["total_delay_s"], rel=1e-12)
    assert got["status"] == want["status"]
    assert got["violations_by_kind"] == want["violations_by_kind"]
    code, out, _ = run(capsys, "eval", inst_file, plan_path)
    assert code == 0 and "total delay" in out


def test_eval_plan_of_another_instance(capsys, solved, tmp_path):
    _, plan_path, _ = solved
    assert main(["gen", "tiny", "-o", str(tmp_path / "z.json"), "--seed", "4"]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "eval", tmp_path / "z.json", plan_path)
    assert code == 2
    assert_one_line_error(err, str(plan_path), "instance.fingerprint")


def test_solve_unknown_solver(capsys, inst_file, tmp_path):
    code, _, err = run(capsys, "solve", inst_file, "--solver", "nonexistent",
                       "-o", tmp_path / "p.json")
    assert code == 2
    assert_one_line_error(err, "unknown solver 'nonexistent'", "coarse")
    assert not (tmp_path / "p.json").exists()


def test_solve_unknown_param(capsys, inst_file, tmp_path):
    code, _, err = run(capsys, "solve", inst_file, "--solver", "coarse", "--param", "unknown=1",
                       "-o", tmp_path / "p.json")
    assert code == 2
    assert_one_line_error(err, "unknown parameter 'unknown'")
    code, _, err = run(capsys, "solve", inst_file, "--solver", "coarse", "--param",
                       "max_cluster=abc", "-o", tmp_path / "p.json")
    assert code == 2
    assert_one_line_error(err, "max_cluster", "'abc'")


USER_SOLVER = '''
from fgamcd_opt.plan import Plan
from fgamcd_opt.params import Param
from fgamcd_opt.solver import SolveResult, SolveStatus


class Lazy:
    name = "lazy"
    description = "caches nothing, delivers nothing"
    params = (Param("fail", bool, False, "raise instead"),)

    def solve(self, instance, ctx, params):
        if params["fail"]:
            raise RuntimeError("boom")
        plan = Plan.empty(instance.n_nodes, solver=self.name)
        plan.metadata["seen_users"] = instance.n_users
        return SolveResult(plan, SolveStatus.FEASIBLE, "did nothing")
'''


def test_solve_with_a_user_solver_file(capsys, inst_file, tmp_path):
    (tmp_path / "my_solver.py").write_text(USER_SOLVER)
    plan_path = tmp_path / "lazy.plan.json"
    code, out, err = run(capsys, "solve", inst_file, "--solver",
                         f"{tmp_path / 'my_solver.py'}:Lazy", "-o", plan_path)
    assert code == 0, err
    assert "solver lazy" in out and "did nothing" in out
    inst = load_instance(inst_file)
    plan = load_plan(plan_path, inst)
    assert plan.solver == "lazy" and plan.units == [] and plan.metadata["seen_users"] == 6
    ev = json.loads((tmp_path / "lazy.eval.json").read_text())
    assert ev["evaluation"]["status"] == "infeasible"
    assert ev["evaluation"]["undelivered_users"] == inst.n_users
    # nothing delivered: the total is infinite (null in JSON), the delivered part 0
    assert ev["evaluation"]["total_delay_s"] is None
    assert ev["evaluation"]["delivered_delay_s"] == 0.0
    assert ev["run"]["total_delay_s"] is None and ev["run"]["complete"] is False
    assert "total delay inf" in out and f"{inst.n_users} user(s) not fully served" in out


def test_user_solver_that_raises_exits_1_without_traceback(capsys, inst_file, tmp_path):
    (tmp_path / "my_solver.py").write_text(USER_SOLVER)
    code, out, err = run(capsys, "solve", inst_file, "--solver",
                         f"{tmp_path / 'my_solver.py'}:Lazy", "--param", "fail=true",
                         "-o", tmp_path / "lazy.plan.json")
    assert code == 1
    assert "RuntimeError: boom" in out and "Traceback" not in out + err


def test_user_solver_file_errors(capsys, inst_file, tmp_path):
    code, _, err = run(capsys, "solve", inst_file, "--solver", f"{tmp_path / 'none.py'}:X")
    assert code == 2
    assert_one_line_error(err, "solver file not found")
    (tmp_path / "s.py").write_text(USER_SOLVER)
    code, _, err = run(capsys, "solve", inst_file, "--solver", f"{tmp_path / 's.py'}:Nope")
    assert code == 2
    assert_one_line_error(err, "no class 'Nope'")
    (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n")
    code, _, err = run(capsys, "solve", inst_file, "--solver", f"{tmp_path / 'broken.py'}:X")
    assert code == 2
    assert_one_line_error(err, "importing the solver file failed", "ModuleNotFoundError")


def test_schema_prints_valid_json(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0 and json.loads(out) == INSTANCE_SCHEMA
    code, out, _ = run(capsys, "schema", "plan")
    assert code == 0 and json.loads(out) == PLAN_SCHEMA


def test_solvers_lists_coarse(capsys):
    code, out, _ = run(capsys, "solvers")
    assert code == 0
    assert any(line.startswith("coarse  [builtin]") for line in out.splitlines())
    assert "--param max_cluster" in out


def _bad_instance(inst_file, tmp_path, mutate) -> Path:
    d = json.loads(inst_file.read_text())
    mutate(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    return path


@pytest.mark.parametrize("mutate,path,fragment", [
    (lambda d: d["users"][3].update(requested_model="m61"), "users[3].requested_model",
     "'m61' is not a model of the repository"),
    (lambda d: d["nodes"][1].update(id="n0"), "nodes[1].id", "duplicate id 'n0'"),
    (lambda d: d["repository"]["blocks"][0].update(size_bytes=0),
     "repository.blocks[0].size_bytes", "minimum"),
    (lambda d: d.update(bandwidth_hz=0), "bandwidth_hz", "minimum"),
    (lambda d: d["users"][0].pop("noise_w"), "users[0]", "'noise_w' is required"),
])
@pytest.mark.parametrize("command", ["info", "solve", "eval"])
def test_bad_instance_one_line_exit_2(capsys, inst_file, tmp_path, mutate, path, fragment,
                                      command):
    bad = _bad_instance(inst_file, tmp_path, mutate)
    argv = {"info": ["info", bad], "solve": ["solve", bad, "--solver", "coarse"],
            "eval": ["eval", bad, tmp_path / "p.json"]}[command]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert_one_line_error(err, f"{bad}: {path}: ", fragment)


def test_missing_file_and_directory(capsys, tmp_path):
    code, _, err = run(capsys, "info", tmp_path / "nope.json")
    assert code == 2
    assert_one_line_error(err, "nope.json", "file not found")
    code, _, err = run(capsys, "info", tmp_path)
    assert code == 2
    assert_one_line_error(err, "is a directory")


def test_debug_shows_the_exception(inst_file, tmp_path):
    from fgamcd_opt.errors import InstanceError

    bad = _bad_instance(inst_file, tmp_path, lambda d: d["users"][3].update(requested_model="m61"))
    with pytest.raises(InstanceError):
        main(["info", str(bad), "--debug"])


def _console_script(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else shutil.which(name)


def test_console_script_fgamcd_info_real_subprocess(inst_file, tmp_path):
    exe = _console_script("fgamcd-info")
    assert exe, "fgamcd-info console script not installed"
    bad = _bad_instance(inst_file, tmp_path, lambda d: d["users"][3].update(requested_model="m61"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([exe, str(bad)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: {bad}: users[3].requested_model: 'm61' is not a "
                                   "model of the repository")
    assert proc.stdout == ""
    ok = subprocess.run([exe, str(inst_file), "--json"], capture_output=True, text=True,
                        timeout=120, env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["K"] == 38


def test_solver_with_unserialisable_metadata_does_not_crash(capsys, inst_file, tmp_path):
    (tmp_path / "meta_solver.py").write_text(
        "from fgamcd_opt.plan import Plan\n"
        "from fgamcd_opt.solver import SolveResult, SolveStatus\n\n\n"
        "class Meta:\n"
        "    name = 'meta'\n\n"
        "    def solve(self, instance, ctx, params):\n"
        "        plan = Plan.empty(instance.n_nodes, solver=self.name)\n"
        "        plan.metadata['handle'] = object()\n"
        "        return SolveResult(plan, SolveStatus.FEASIBLE)\n")
    code, _, err = run(capsys, "solve", inst_file, "--solver",
                       f"{tmp_path / 'meta_solver.py'}:Meta", "-o", tmp_path / "m.plan.json")
    assert code in (0, 1, 2) and "Traceback" not in err


# ---- solver refusals: one line on stderr, exit 2, nothing written (issue 22) ------------------
def test_solve_refusal_is_one_line_on_stderr_exit_2(capsys, inst_file, tmp_path):
    # the shipped N = 6 MAASN-DA policy (by name; the default generalist serves any N up to
    # 12) refuses the tiny instance's N = 3
    code, out, err = run(capsys, "solve", inst_file, "--solver", "maasn", "--param",
                         "policy=paper-default", "-o", tmp_path / "p.plan.json")
    assert code == 2 and out == ""
    assert_one_line_error(err, str(inst_file), "solver maasn refused the instance", "N=")
    assert not list(tmp_path.iterdir())
    code, out, err = run(capsys, "solve", inst_file, "--solver", "maasn", "--param",
                         "episodes=-1", "-o", tmp_path / "p.plan.json")
    assert code == 2 and out == ""
    assert_one_line_error(err, "episodes: must be >= 0")


def test_solve_refusal_of_a_plugin(capsys, inst_file, tmp_path):
    src = tmp_path / "picky.py"
    src.write_text(
        "from fgamcd_opt.errors import FgamcdError\n"
        "class Picky:\n"
        "    name = 'picky'\n"
        "    description = 'refuses everything'\n"
        "    params = ()\n"
        "    def solve(self, instance, ctx, params):\n"
        "        raise FgamcdError(f'needs N >= 10, got N={instance.n_nodes}')\n")
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "solve", inst_file, "--solver", f"{src}:Picky",
                         "--runs-dir", out_dir)
    assert code == 2 and out == ""
    assert_one_line_error(err, "solver picky refused the instance: needs N >= 10, got N=3")
    assert not out_dir.exists()
