"""How tight is the certified bound, and how good is the milp plan (docs/milp.md section 7).

    python benchmarks/bench_bound.py groups [--seeds 0]      # bound vs best plan, by group size
    python benchmarks/bench_bound.py tiny [--cases 8]        # milp vs exhaustive search

``groups``: for every requested PB of paper-default with all useful nodes holding it, the
partition bound (per-user and multicast SDP, fgamcd_opt/group_bound.py) against the best plan
the planner finds (exact partition search, every node free), and the per-user bound alone;
gap = (best plan - bound) / best plan, by number of requesters.

``tiny``: hand-built instances (3 nodes, 2-3 requested PBs, binding storage). Exhaustive search
over every caching, and per PB over every partition of its requesters and every node set of each
group (oracle beams, fast method), with the participants' migrations from the cheapest holder;
compared with the milp plan's evaluated delay and its certified bound.
Writes benchmarks/results/bound_groups.json or bound_tiny.json.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine  # noqa: E402

from fgamcd_opt.backhaul import MatrixBackhaul  # noqa: E402
from fgamcd_opt.channels import ArrayChannels, ErrorShape  # noqa: E402
from fgamcd_opt.generators import generate  # noqa: E402
from fgamcd_opt.group_bound import (
    PartitionBound,  # noqa: E402, set_partitions
    set_partitions,  # noqa: E402
)
from fgamcd_opt.instance import Instance, Nodes, Users  # noqa: E402
from fgamcd_opt.jsonio import write_json_atomic  # noqa: E402
from fgamcd_opt.oracle import BeamformingOracle  # noqa: E402
from fgamcd_opt.planner import PlannerOptions, plan_partition  # noqa: E402
from fgamcd_opt.rates import transfer_delay_s  # noqa: E402
from fgamcd_opt.registry import get_solver  # noqa: E402
from fgamcd_opt.repository import Block, Model, Repository  # noqa: E402
from fgamcd_opt.runner import run_solver  # noqa: E402


# ---------------------------------------------------------------------------------------------
def groups(seeds: list[int]) -> dict:
    rows = []
    for seed in seeds:
        inst = generate("paper-default", seed=seed)
        oracle = BeamformingOracle("fast")
        everyone = np.arange(inst.n_nodes)
        opts = PlannerOptions(exact_users=7, max_group_plans=40)
        for k in inst.requested_blocks:
            users = [int(u) for u in inst.requesters(k)]
            t0 = time.perf_counter()
            pb = PartitionBound(inst, int(k), users)
            full = (1 << len(users)) - 1
            per_user = pb.group_delay_lb(everyone, full)
            lb, info = pb.delay_lb(everyone)
            t_bound = time.perf_counter() - t0
            parts = plan_partition(inst, int(k), users, everyone, oracle, opts)
            best = float(sum(g.broadcast_s for g in parts))
            rows.append({"seed": seed, "block": int(k), "users": len(users), "bound_s": lb,
                         "per_user_bound_s": per_user, "best_plan_s": best,
                         "groups_in_plan": len(parts), "bound_time_s": t_bound,
                         "bound_groups": len(info["groups"])})
    print(f"{'users':>5} {'PBs':>4} {'per-user gap %':>15} {'bound gap %':>12} "
          f"{'(median)':>9} {'bound s/PB':>10}")
    summary = []
    for v in sorted({r["users"] for r in rows}):
        rs = [r for r in rows if r["users"] == v]
        pu = [100 * (r["best_plan_s"] - r["per_user_bound_s"]) / r["best_plan_s"] for r in rs]
        gb = [100 * (r["best_plan_s"] - r["bound_s"]) / r["best_plan_s"] for r in rs]
        tb = float(np.mean([r["bound_time_s"] for r in rs]))
        summary.append({"users": v, "blocks": len(rs), "per_user_gap_pct": float(np.mean(pu)),
                        "bound_gap_pct": float(np.mean(gb)),
                        "bound_gap_median_pct": float(np.median(gb)), "bound_time_s": tb})
        print(f"{v:>5} {len(rs):>4} {np.mean(pu):>15.2f} {np.mean(gb):>12.2f} "
              f"{np.median(gb):>9.2f} {tb:>10.2f}")
    tot = {key: float(sum(r[key] for r in rows))
           for key in ("bound_s", "per_user_bound_s", "best_plan_s")}
    print(f"sum over PBs: per-user bound {tot['per_user_bound_s']:.4f} s, bound "
          f"{tot['bound_s']:.4f} s, best plan {tot['best_plan_s']:.4f} s")
    bad = [r for r in rows if r["bound_s"] > r["best_plan_s"] * (1 + 1e-9)]
    print(f"PBs whose bound exceeds the best plan found: {len(bad)}")
    return {"rows": rows, "summary": summary, "totals": tot, "violations": len(bad)}


# ---------------------------------------------------------------------------------------------
def tiny_instance(seed: int, n_nodes: int = 3, n_blocks: int = 3, n_users: int = 4,
                  storage_frac: float = 0.35) -> Instance:
    """3 nodes, few PBs of 1-9 MB, 2 models, users near different nodes; each node stores
    ``storage_frac`` of the repository (binding)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 10, n_blocks) * 1_000_000
    blocks = [Block(f"k{i}", f"b{i}", int(sizes[i]), "x") for i in range(n_blocks)]
    models = [Model("m0", "m0", "x", None, tuple(range(n_blocks))),
              Model("m1", "m1", "x", None, tuple(sorted(
                  int(k) for k in rng.choice(n_blocks, size=max(1, n_blocks - 1),
                                             replace=False))))]
    repo = Repository(blocks, models)
    radius, antennas = 1e-5, 2
    scale = rng.uniform(0.3, 6.0, (n_nodes, n_users)) * radius
    g = (rng.standard_normal((n_blocks, n_nodes, n_users, antennas))
         + 1j * rng.standard_normal((n_blocks, n_nodes, n_users, antennas))) / np.sqrt(2)
    cap = max(int(storage_frac * sizes.sum()), int(sizes.max()))
    nodes = Nodes(tuple(f"n{i}" for i in range(n_nodes)), rng.uniform(0, 300, (n_nodes, 2)),
                  antennas, np.full(n_nodes, 20.0), np.full(n_nodes, cap, dtype=np.int64))
    users = Users(tuple(f"u{i}" for i in range(n_users)), rng.uniform(0, 300, (n_users, 2)),
                  rng.integers(0, n_nodes, n_users), rng.integers(0, 2, n_users),
                  np.full(n_users, 1e8), np.full(n_users, 1e-11))
    return Instance(name=f"tiny-exh-{seed}", nodes=nodes, users=users, repository=repo,
                    bandwidth_hz=400e6,
                    backhaul=MatrixBackhaul(rng.uniform(2e9, 8e9, (n_nodes, n_nodes))),
                    channels=ArrayChannels(g * scale[None, :, :, None]),
                    error=ErrorShape(1.0 / radius**2, n_nodes, n_users))


_partitions = set_partitions  # one implementation, in group_bound.py


def exhaustive(inst: Instance, oracle: BeamformingOracle) -> float:
    """min over cachings, partitions, node sets per group (module docstring)."""
    n = inst.n_nodes
    subsets = [s for r in range(1, n + 1) for s in itertools.combinations(range(n), r)]
    blocks = [int(k) for k in inst.requested_blocks]
    per_pb = {}  # k -> {union U: best broadcast time with every group's nodes inside U}
    for k in blocks:
        users = [int(u) for u in inst.requesters(k)]
        size = int(inst.repository.sizes[k])
        d = {}
        for grp in (g for r in range(1, len(users) + 1)
                    for g in itertools.combinations(users, r)):
            for s in subsets:
                d[grp, s] = transfer_delay_s(size, oracle.solve(inst, k, s, grp).min_rate_bps)
        best_u = {}
        for union in subsets:
            inside = [s for s in subsets if set(s) <= set(union)]
            best_u[union] = min(sum(min(d[tuple(sorted(g)), s] for s in inside) for g in part)
                                for part in _partitions(users))
        per_pb[k] = (best_u, 8.0 * size / inst.backhaul_rates(k))
    sizes = inst.repository.sizes
    best = np.inf
    for bits in itertools.product((False, True), repeat=n * len(blocks)):
        holds = np.array(bits, dtype=bool).reshape(n, len(blocks))
        if np.any((holds * sizes[blocks][None, :]).sum(axis=1) > inst.nodes.storage_bytes):
            continue
        total = 0.0
        for j, k in enumerate(blocks):
            h = np.flatnonzero(holds[:, j])
            if h.size == 0:
                total = np.inf
                break
            best_u, mig = per_pb[k]
            total += min(t + sum(float(mig[h, m].min()) for m in union if m not in h)
                         for union, t in best_u.items())
        best = min(best, total)
    return best


def tiny(cases: int) -> dict:
    rows = []
    print(f"{'case':>4} {'PBs':>3} {'exhaustive s':>13} {'milp s':>9} {'milp/exh':>8} "
          f"{'bound s':>9} {'status':>9}")
    for seed in range(cases):
        inst = tiny_instance(seed)
        oracle = BeamformingOracle("fast")
        t0 = time.perf_counter()
        exh = exhaustive(inst, oracle)
        t_exh = time.perf_counter() - t0
        run = run_solver(inst, get_solver("milp"), {"mip_gap": 0.0}, seed=0, oracle=oracle)
        rec = run.record
        milp_delay = rec.total_delay_s
        ratio = milp_delay / exh if milp_delay and np.isfinite(exh) else None
        rows.append({"case": seed, "blocks": int(len(inst.requested_blocks)),
                     "exhaustive_s": exh, "milp_s": milp_delay, "ratio": ratio,
                     "bound_s": rec.bound_s, "verdict": rec.verdict,
                     "exhaustive_time_s": t_exh})
        print(f"{seed:>4} {len(inst.requested_blocks):>3} {exh:>13.6f} "
              f"{milp_delay if milp_delay is not None else float('nan'):>9.6f} "
              f"{ratio if ratio else float('nan'):>8.4f} "
              f"{rec.bound_s if rec.bound_s is not None else float('nan'):>9.6f} "
              f"{rec.verdict:>9}")
    eq = sum(1 for r in rows if r["ratio"] is not None and abs(r["ratio"] - 1) <= 1e-6)
    above = sum(1 for r in rows
                if r["bound_s"] and r["bound_s"] > r["exhaustive_s"] * (1 + 1e-9))
    print(f"milp equals the exhaustive optimum on {eq} of {len(rows)} cases; bound above the "
          f"optimum on {above}")
    return {"rows": rows, "equal": eq}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=("groups", "tiny"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cases", type=int, default=8)
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = groups(args.seeds) if args.part == "groups" else tiny(args.cases)
    out.update(machine=machine(), wall_s=time.perf_counter() - t0,
               command="python benchmarks/bench_bound.py " + " ".join(sys.argv[1:]))
    write_json_atomic(RESULTS / f"bound_{args.part}.json", out)
    print(f"wrote {RESULTS / f'bound_{args.part}.json'}")


if __name__ == "__main__":
    main()
