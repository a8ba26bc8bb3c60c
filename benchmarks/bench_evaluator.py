"""Time to evaluate a full paper-default plan (issue: well under 100 ms).

    python benchmarks/bench_evaluator.py [--repeat 20]

The plans come from the built-in solvers (beams stored in the plan, as a saved plan has them).
"cold" = first evaluation right after loading the instance file (channels regenerated for every
(PB, requester) pair), "warm" = repeated evaluations (channel slices cached). Writes
benchmarks/results/evaluator.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ResultsFile, table  # noqa: E402

from fgamcd_opt.evaluator import evaluate  # noqa: E402
from fgamcd_opt.generators import generate  # noqa: E402
from fgamcd_opt.instance_io import load_instance, save_instance  # noqa: E402
from fgamcd_opt.oracle import BeamformingOracle  # noqa: E402
from fgamcd_opt.registry import get_solver  # noqa: E402
from fgamcd_opt.runner import run_solver  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--solvers", nargs="+", default=["trimcaching", "tdma", "coarse"])
    args = ap.parse_args()
    res = ResultsFile("evaluator.json", {"command": "python benchmarks/bench_evaluator.py"})
    res.data["rows"] = []
    inst = generate("paper-default")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pd.json"
        save_instance(inst, path)
        for name in args.solvers:
            plan = run_solver(inst, get_solver(name), oracle=BeamformingOracle()).plan
            cold = []
            for _ in range(3):
                fresh = load_instance(path)
                t0 = time.perf_counter()
                ev = evaluate(fresh, plan)
                cold.append(time.perf_counter() - t0)
            warm = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                evaluate(fresh, plan)
                warm.append(time.perf_counter() - t0)
            res.add({"solver": name, "units": len(plan.units),
                     "requested_pairs": int(inst.demand.sum()),
                     "cold_ms": 1e3 * float(np.median(cold)),
                     "warm_ms": 1e3 * float(np.median(warm)),
                     "warm_min_ms": 1e3 * float(np.min(warm)),
                     "total_delay_s": ev.total_delay_s})
    print(table(res.rows, [("plan of", "solver", "12s"), ("units", "units", "d"),
                           ("cold ms (median of 3)", "cold_ms", ".1f"),
                           ("warm ms (median)", "warm_ms", ".1f"),
                           ("warm ms (min)", "warm_min_ms", ".1f")]))


if __name__ == "__main__":
    main()
