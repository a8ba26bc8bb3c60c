"""Worker processes die with their parent (fgamcd_opt/workers.py): a parent killed with SIGKILL
in the middle of a run leaves no worker behind (issue 22: two milp bound workers outlived a
killed run by two hours).

Each case starts a parent process whose workers are busy in a long task (patched to sleep, so
the test is quick and independent of the machine's speed), kills the parent with SIGKILL and
checks that the workers are gone within a few seconds. Worker pids are found in /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

SLOW = "import time\ndef slow(*a, **k):\n    time.sleep(120)\n"

PARENTS = {
    # the milp's multicast-bound workers (group_bound.refine_concurrently)
    "bound": SLOW + """
from fgamcd_opt import generate, group_bound
group_bound.amplitude_bound = slow
inst = generate("tiny", seed=1)
jobs = [(group_bound.partition_bound(inst, k, inst.requesters(k)), range(inst.n_nodes))
        for k in inst.requested_blocks if len(inst.requesters(k)) >= 2]
print("READY", flush=True)
group_bound.refine_concurrently(jobs, workers=2)
""",
    # MAASN-DA's delivery workers (FgamcdParallelEnv.deliver_pending)
    "maasn": SLOW + """
from fgamcd_opt import generate, get_solver, run_solver
from fgamcd_opt.marl import env
env._deliver = slow
inst = generate("paper-default")
print("READY", flush=True)
run_solver(inst, get_solver("maasn"), {"workers": 2}, debug=True)
""",
    # the MILP's solver process (formulation.solve_milp)
    "milp": SLOW + """
from fgamcd_opt import generate
from fgamcd_solvers.milp import formulation as milp
milp._solve_milp_here = slow
inst = generate("tiny", seed=1)
data = milp.optimistic_data(inst)
print("READY", flush=True)
for _ in range(2):  # a second one while the first is killed with its parent
    milp.solve_milp(data, inst.n_blocks)
""",
    # the sweep's isolated cell processes (experiments/pool.py: hosts and sandboxes), each
    # leading its own process group; the parent keeps their pipes open while it sleeps
    "sweep": """
import os, time
from fgamcd_opt.experiments.pool import Child
kids = [Child("host", dict(os.environ)) for _ in range(2)]
print("READY", flush=True)
time.sleep(120)
""",
}


NEEDED = {"milp": 1}  # worker processes each case starts


def _children(pid: int) -> set[int]:
    kids = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.add(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("case", sorted(PARENTS))
def test_workers_exit_when_the_parent_is_killed(case, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", PARENTS[case]], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path)
    workers: set[int] = set()
    try:
        assert parent.stdout.readline().strip() == "READY"
        t0 = time.monotonic()
        while len(workers) < NEEDED.get(case, 2) and time.monotonic() - t0 < 60:
            time.sleep(0.2)
            # a spawned pool also runs a resource tracker: keep only the pool's workers
            workers = {p for p in _children(parent.pid)
                       if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
                       .decode(errors="replace")}
        assert len(workers) >= NEEDED.get(case, 2), f"{case}: the workers did not start"
        time.sleep(1.0)  # the workers are inside their (sleeping) tasks
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        t1 = time.monotonic()
        while any(_alive(p) for p in workers) and time.monotonic() - t1 < 5:
            time.sleep(0.1)
        left = [p for p in workers if _alive(p)]
        assert not left, f"{case}: workers {left} outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        for p in workers:  # only the workers this test started, by pid
            if _alive(p):
                os.kill(p, signal.SIGKILL)
