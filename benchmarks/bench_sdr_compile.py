"""Benchmark of the SDR + DC reference method: first call (compile + solve) vs cached calls.

For each shape (p, d, v) and solver, the compiled-problem cache is cleared, one call measures the
first-call time (structure build / cvxpy DPP compilation + solves), then a few random problems of
the same shape measure cached calls: median wall time, median solver time, DC iterations.

Writes benchmarks/results/sdr_compile.json and prints a table. Runtime: about 1-2 minutes (the
Clarabel rows are limited to the shapes where one SDP takes about a second or less, plus one
(3, 5, 5) problem; at (6, 5, 5) a single Clarabel relaxation took ~220 s in development).

    PYTHONPATH=. python benchmarks/bench_sdr_compile.py
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from fgamcd_opt.oracle.problem import BeamProblem
from fgamcd_opt.oracle.sdr import clear_sdr_cache, solve_sdr

SHAPES = [(1, 3, 3), (2, 5, 5), (3, 5, 5), (6, 5, 5)]
# (solver, shapes it runs on, cached problems per shape)
PLAN = [
    ("SCS", SHAPES, 5),
    ("CLARABEL", [(1, 3, 3), (2, 5, 5)], 3),
    ("CLARABEL", [(3, 5, 5)], 0),  # first call only: ~10 s per SDP
]


def random_problem(rng: np.random.Generator, p: int, d: int, v: int) -> BeamProblem:
    """Table-II-like normalised data: g ~ 50 (LoS + scattering, path-loss spread), rho ~ 0.2|g|."""
    steer = np.exp(1j * np.pi * np.sin(rng.uniform(-np.pi / 2, np.pi / 2, (p, v, 1)))
                   * np.arange(d))
    scat = (rng.normal(size=(p, v, d)) + 1j * rng.normal(size=(p, v, d))) / np.sqrt(2)
    g = (np.sqrt(0.75) * steer + 0.5 * scat) * 50 * rng.uniform(0.3, 1.0, (p, v, 1))
    rho = 0.2 * np.linalg.norm(g, axis=2) * rng.uniform(0.5, 1.5, (p, v))
    return BeamProblem(g, rho, np.ones(v))


def run_one(pr: BeamProblem, solver: str) -> dict:
    t0 = time.perf_counter()
    out = solve_sdr(pr, solver=solver, budget=float(pr.n_nodes))
    wall = time.perf_counter() - t0
    e = out.extra
    return {
        "wall_s": wall, "compile_s": e["compile_time_s"], "setup_s": e["setup_time_s"],
        "solve_s": e["solve_time_s"], "solves": e["solves"], "dc_iterations": out.iterations,
        "status": out.status.value, "rank_ratio": e["rank_ratio"], "solver_used": e["solver"],
        "gamma_relaxation": e["gamma_relaxation"], "gamma": e["gamma"],
        "min_exact_snr": float(np.min(pr.amplitude(out.x) ** 2)),
    }


def main() -> None:
    import cvxpy  # noqa: F401 - import once up front so its ~1 s import is not timed as compile

    rows = []
    for solver, shapes, n_cached in PLAN:
        for p, d, v in shapes:
            rng = np.random.default_rng(1000 * p + 10 * d + v)
            clear_sdr_cache()
            first = run_one(random_problem(rng, p, d, v), solver)
            cached = [run_one(random_problem(rng, p, d, v), solver) for _ in range(n_cached)]
            row = {
                "solver": solver, "p": p, "d": d, "v": v, "n": p * d,
                "first_call_s": first["wall_s"], "first_compile_s": first["compile_s"],
                "first_solve_s": first["solve_s"], "first_dc_iterations": first["dc_iterations"],
                "first_status": first["status"],
                "cached_calls": len(cached),
                "cached_compile_s_max": max((c["compile_s"] for c in cached), default=None),
                "cached_wall_median_s": (statistics.median(c["wall_s"] for c in cached)
                                         if cached else None),
                "cached_solve_median_s": (statistics.median(c["solve_s"] for c in cached)
                                          if cached else None),
                "cached_setup_median_s": (statistics.median(c["setup_s"] for c in cached)
                                          if cached else None),
                "solve_per_sdp_median_s": statistics.median(
                    c["solve_s"] / max(c["solves"], 1) for c in [first, *cached]),
                "dc_iterations": [c["dc_iterations"] for c in [first, *cached]],
                "statuses": [c["status"] for c in [first, *cached]],
                "relax_gap": [1 - c["gamma"] / c["gamma_relaxation"]
                              if c["gamma_relaxation"] > 0 else 0.0 for c in [first, *cached]],
                "runs": [first, *cached],
            }
            rows.append(row)
            print(f"{solver:8s} p={p} d={d} v={v}: first {row['first_call_s']:.3f}s "
                  f"(compile {row['first_compile_s']:.3f}s)", file=sys.stderr, flush=True)

    head = (f"{'solver':8s} {'p,d,v':>7s} {'first':>8s} {'compile':>8s} {'cached':>8s} "
            f"{'setup':>8s} {'solve':>8s} {'per SDP':>8s}  DC iterations      statuses")
    print(head)
    print("-" * len(head))
    for r in rows:
        def fmt(x: float | None) -> str:
            return f"{x:8.3f}" if x is not None else f"{'-':>8s}"
        shape = f"{r['p']},{r['d']},{r['v']}"
        statuses = ",".join(s[:4] for s in r["statuses"])
        print(f"{r['solver']:8s} {shape:>7s} {fmt(r['first_call_s'])} "
              f"{fmt(r['first_compile_s'])} {fmt(r['cached_wall_median_s'])} "
              f"{fmt(r['cached_setup_median_s'])} "
              f"{fmt(r['cached_solve_median_s'])} {fmt(r['solve_per_sdp_median_s'])}  "
              f"{str(r['dc_iterations']):18s} {statuses}")
    print("(seconds; first = first call incl. compile; cached/setup/solve = medians over cached "
          "calls: wall, data assembly, solver; per SDP = median solver time per SDP solve)")

    out = Path(__file__).parent / "results" / "sdr_compile.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "note": "budget = p; data scale ~50 (Table II-like); wall-clock seconds"}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
