"""The beamforming oracle on Table III's grid: the paper's SDR method vs ``fast``.

    python benchmarks/bench_oracle.py [--seeds 3] [--blocks 2] [--sdr-time-limit 300]
    python benchmarks/bench_oracle.py sizes --label after [--first-order on]  (then --compare)
    python benchmarks/bench_oracle.py warm [--cases 40]

Grid: (N, M) in {(6, 20), (6, 60), (12, 60)}; participation p = 1, 2, 3 nodes (the typical
cluster) and p = N (full CoMP). Cases are real multicast subproblems: PBs with >= 2 requesters
of paper-default instances with that N and M (seeds 0..S-1), served by the p nodes with the
strongest links to the group. For each case, on the same (span-reduced) problem:
  fast      : time and exact robust min-SNR of ``solve_fast`` (the oracle's default method);
  multistart: ``solve_fast`` with 10 extra random starts (a quality reference);
  sdr       : the paper's method (``solve_sdr``, aggregate error budget N as in eq. 28), its
              time, exact robust min-SNR and DC iterations;
  sdr_p     : the same with budget p (the tightest aggregate set containing the per-node one);
  oracle    : the full per-PB oracle call with method fast (QoS search included), fresh cache.
Cases where a requester is out of every participant's reach (min-SNR 0 for any beam, detected
by the oracle without a solve) are counted and left out of the ratios.
Prints per-cell medians and the headline ratios; writes benchmarks/results/oracle.json
(resumable: finished cases are kept on a rerun).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ResultsFile, table  # noqa: E402

from fgamcd_opt.bounds import link_amplitude_bound  # noqa: E402
from fgamcd_opt.generators import generate  # noqa: E402
from fgamcd_opt.jsonio import jsonable, write_json_atomic  # noqa: E402
from fgamcd_opt.oracle import BeamformingOracle, normalised_problem  # noqa: E402
from fgamcd_opt.oracle.fast import solve_fast  # noqa: E402
from fgamcd_opt.oracle.sdr import solve_sdr  # noqa: E402

GRID = [(6, 20), (6, 60), (12, 60)]


def pick_blocks(inst, n: int) -> list[int]:
    """The multicast PBs with the most requesters, and one with the median count."""
    multi = [int(k) for k in inst.requested_blocks if len(inst.requesters(k)) >= 2]
    multi.sort(key=lambda k: (-len(inst.requesters(k)), k))
    out = multi[: max(n - 1, 1)]
    if n > 1 and len(multi) > n:
        out.append(multi[len(multi) // 2])
    return out[:n]


def pick_nodes(inst, k: int, users, p: int) -> tuple[int, ...]:
    link = link_amplitude_bound(inst, k, users)  # (N, v)
    share = link / np.maximum(link.sum(axis=0, keepdims=True), 1e-300)
    order = np.argsort(-share.sum(axis=1), kind="stable")
    return tuple(sorted(int(n) for n in order[:p]))


SIZES = (1, 3, 10, 30, 100)


def size_cases(seeds: int, blocks: int, sizes=SIZES, ps=(1, 3)) -> list[tuple]:
    """Multicast subproblems by group size, on paper-default with U = 3,000 (every PB has
    dozens of requesters) and N = 12: for a PB, the node with the most requesters as its home
    and its p - 1 nearest nodes, and the v requesters with the largest link bounds to those
    nodes (the kind of local group the planner forms). Only groups every user of which some
    node reaches (else the rate is 0 without a solve) are kept."""
    out = []
    for seed in range(seeds):
        inst = generate("paper-default", seed=seed, n_users=3000, n_nodes=12)
        picked = 0
        for k in inst.requested_blocks[::7]:
            req = inst.requesters(k)
            if len(req) < max(sizes):
                continue
            link = link_amplitude_bound(inst, k, req)  # (N, v)
            home = int(np.bincount(np.argmax(link, axis=0), minlength=inst.n_nodes).argmax())
            d = np.hypot(*(inst.nodes.positions_m - inst.nodes.positions_m[home]).T)
            for p in ps:
                nodes = tuple(sorted(int(n) for n in np.argsort(d, kind="stable")[:p]))
                strength = link[list(nodes)].sum(axis=0)
                order = np.argsort(-strength, kind="stable")
                for v in sizes:
                    if strength[order[v - 1]] <= 0:
                        continue
                    users = tuple(sorted(int(u) for u in req[order[:v]]))
                    out.append((seed, int(k), nodes, users))
            picked += 1
            if picked >= blocks:
                break
    return out


def run_sizes(args) -> None:
    """Time per PB by group size (one oracle call with a fresh memo, QoS search included) and
    the exact min-SNR, for the code on the path (run once with the code before a change and
    once after, under different --label, then ``--compare``)."""
    import inspect

    res = ResultsFile(args.out, {"command": "python benchmarks/bench_oracle.py "
                                            + " ".join(sys.argv[1:])})
    options = {}
    if args.first_order:
        options["first_order"] = args.first_order
    insts = {}
    for seed, k, nodes, users in size_cases(args.seeds, args.blocks):
        key = dict(label=args.label, seed=seed, block=k, p=len(nodes), v=len(users))
        if res.has(**key):
            continue
        inst = insts.get(seed) or insts.setdefault(
            seed, generate("paper-default", seed=seed, n_users=3000, n_nodes=12))
        oracle = BeamformingOracle(**options)
        t0 = time.process_time()
        r = oracle.solve(inst, k, nodes, users)
        cpu = time.process_time() - t0
        res.add({**key, "nodes": list(nodes), "cpu_s": cpu, "time_s": r.time_s,
                 "min_rate_bps": r.min_rate_bps, "status": r.status.value,
                 "iterations": r.iterations, "first_order": bool(options),
                 "code": inspect.getsourcefile(BeamformingOracle)})
        print(f"{args.label} seed={seed} k={k} p={len(nodes)} v={len(users)}: "
              f"{1e3 * cpu:.1f} ms CPU, {r.min_rate_bps / 1e9:.4f} Gbps {r.status.value}",
              flush=True)


def compare_sizes(args) -> None:
    """Median CPU per PB by group size for each label, and the quality ratio (exact min-rate
    of ``--label`` over ``--against``) with the count of zero rates where the other is
    positive."""
    res = ResultsFile(args.out)
    rows = res.rows
    labels = sorted({r["label"] for r in rows})
    cells = []
    for v in SIZES:
        cell = {"v": v}
        for lab in labels:
            cpu = [r["cpu_s"] for r in rows if r["label"] == lab and r["v"] == v]
            cell[lab] = 1e3 * float(np.median(cpu)) if cpu else None
        a = {(r["seed"], r["block"], r["p"]): r for r in rows
             if r["label"] == args.label and r["v"] == v}
        b = {(r["seed"], r["block"], r["p"]): r for r in rows
             if r["label"] == args.against and r["v"] == v}
        common = sorted(set(a) & set(b))
        ratio = [a[c]["min_rate_bps"] / b[c]["min_rate_bps"] for c in common
                 if b[c]["min_rate_bps"] > 0]
        cell["cases"] = len(common)
        cell["quality"] = float(np.median(ratio)) if ratio else None
        cell["quality_min"] = float(np.min(ratio)) if ratio else None
        cell["zero_where_positive"] = sum(a[c]["min_rate_bps"] <= 0 < b[c]["min_rate_bps"]
                                          for c in common)
        cell["positive_where_zero"] = sum(b[c]["min_rate_bps"] <= 0 < a[c]["min_rate_bps"]
                                          for c in common)
        cells.append(cell)
    cols = [("v", "v", "d"), ("cases", "cases", "d")] + [
        (f"{lab} ms", lab, ".1f") for lab in labels] + [
        (f"{args.label}/{args.against} rate (median)", "quality", ".4f"),
        ("min", "quality_min", ".4f"), ("0 where >0", "zero_where_positive", "d"),
        (">0 where 0", "positive_where_zero", "d")]
    print(table(cells, cols))
    res.data.setdefault("summaries", {})[f"{args.label}/{args.against}"] = jsonable(cells)
    write_json_atomic(res.path, res.data)


def run_warm(args) -> None:
    """Growth steps as the planner makes them: for a local group of v users and its p strongest
    nodes S, the call for S + the next node cold (three raced starts) and warm-started from the
    beams on S (``solve(..., warm=)``): CPU, SCA iterations and the exact min-rate ratio; the
    warm result is never below S's."""
    res = ResultsFile(args.out, {"command": "python benchmarks/bench_oracle.py "
                                            + " ".join(sys.argv[1:])})
    rng = np.random.default_rng(1)
    inst = generate("paper-default", seed=2, n_users=600, n_nodes=12)
    done = 0
    for k in inst.requested_blocks[::3]:
        req = inst.requesters(k)
        if len(req) < 4 or done >= args.cases:
            continue
        v = int(rng.integers(2, min(len(req), 16) + 1))
        link = link_amplitude_bound(inst, k, req)
        n0 = int(np.argmax(link.sum(axis=1)))
        users = tuple(sorted(int(u) for u in req[np.argsort(-link[n0], kind="stable")[:v]]))
        share = link[:, np.searchsorted(req, users)].sum(axis=1)
        order = np.argsort(-share, kind="stable")
        p = int(rng.integers(1, 4))
        sub, grown = tuple(sorted(int(n) for n in order[:p])), tuple(sorted(
            int(n) for n in order[:p + 1]))
        done += 1
        key = dict(mode="warm", block=int(k), v=v, p=p + 1)
        if res.has(**key):
            continue
        parent = BeamformingOracle().solve(inst, k, sub, users)
        row = {**key, "parent_rate_bps": parent.min_rate_bps}
        for label, kw in (("cold", {}), ("warm", {"warm": parent})):
            oracle = BeamformingOracle()
            t0 = time.process_time()
            r = oracle.solve(inst, k, grown, users, **kw)
            row[f"{label}_cpu_s"] = time.process_time() - t0
            row[f"{label}_iterations"] = r.iterations
            row[f"{label}_rate_bps"] = r.min_rate_bps
        res.add(row)
    rows = [r for r in res.rows if r.get("mode") == "warm"]
    pos = [r for r in rows if r["cold_rate_bps"] > 0]
    ratio = np.array([r["warm_rate_bps"] / r["cold_rate_bps"] for r in pos])
    head = {
        "cases": len(rows),
        "cpu_ratio_median": float(np.median([r["warm_cpu_s"] / r["cold_cpu_s"] for r in rows])),
        "iterations_cold_mean": float(np.mean([r["cold_iterations"] for r in rows])),
        "iterations_warm_mean": float(np.mean([r["warm_iterations"] for r in rows])),
        "rate_ratio_median": float(np.median(ratio)), "rate_ratio_min": float(ratio.min()),
        "rate_ratio_below_0.99": int((ratio < 0.99).sum()),
        "rate_ratio_above_1.01": int((ratio > 1.01).sum()),
        "warm_below_parent": sum(r["warm_rate_bps"] < r["parent_rate_bps"] * (1 - 1e-9)
                                 for r in rows),
        "cold_below_parent": sum(r["cold_rate_bps"] < r["parent_rate_bps"] * (1 - 1e-9)
                                 for r in rows),
    }
    print("\n".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                    for k, v in head.items()))
    res.data["warm_summary"] = jsonable(head)
    write_json_atomic(res.path, res.data)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "warm":
        ap = argparse.ArgumentParser(prog="bench_oracle.py warm", description=run_warm.__doc__)
        ap.add_argument("mode", choices=["warm"])
        ap.add_argument("--cases", type=int, default=40)
        ap.add_argument("--out", default="oracle_warm.json")
        run_warm(ap.parse_args())
        return
    if len(sys.argv) > 1 and sys.argv[1] == "sizes":
        ap = argparse.ArgumentParser(prog="bench_oracle.py sizes",
                                     description=run_sizes.__doc__)
        ap.add_argument("mode", choices=["sizes"])
        ap.add_argument("--label", required=True, help="e.g. before, after, after-fo")
        ap.add_argument("--seeds", type=int, default=3)
        ap.add_argument("--blocks", type=int, default=4)
        ap.add_argument("--first-order", choices=["on", "off", "auto"], default=None,
                        help="the oracle's first_order option (the code after issue 20)")
        ap.add_argument("--compare", action="store_true", help="summarise instead of running")
        ap.add_argument("--against", default="before")
        ap.add_argument("--out", default="oracle_sizes.json")
        args = ap.parse_args()
        if args.compare:
            compare_sizes(args)
        else:
            run_sizes(args)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--sdr-time-limit", type=float, default=300.0)
    ap.add_argument("--out", default="oracle.json")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    res = ResultsFile(args.out, {"command": "python benchmarks/bench_oracle.py "
                                            + " ".join(sys.argv[1:])})
    if args.fresh:
        res.data["rows"] = []
    for n_nodes, m in GRID:
        for seed in range(args.seeds):
            inst = generate("paper-default", seed=seed, n_nodes=n_nodes, antennas=m)
            for k in pick_blocks(inst, args.blocks):
                users = tuple(int(u) for u in inst.requesters(k))
                for p in sorted({1, 2, 3, n_nodes}):
                    key = dict(N=n_nodes, M=m, seed=seed, block=k, p=p)
                    if res.has(**key):
                        continue
                    nodes = pick_nodes(inst, k, users, p)
                    full = normalised_problem(inst, k, nodes, users)
                    row = {**key, "v": len(users), "nodes": list(nodes),
                           "dead": bool(full.dead_users().size)}
                    if row["dead"]:
                        res.add(row)
                        continue
                    t0 = time.perf_counter()
                    red, _ = full.reduce()
                    f = solve_fast(red)
                    row["fast_s"] = time.perf_counter() - t0
                    row["fast_snr"] = red.min_snr(f.x)
                    ms = solve_fast(red, n_random_starts=10, seed=seed)
                    row["multistart_snr"] = max(red.min_snr(ms.x), row["fast_snr"])
                    oracle = BeamformingOracle()
                    t0 = time.perf_counter()
                    oracle.solve(inst, k, nodes, users)
                    row["oracle_fast_s"] = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    s = solve_sdr(red, budget=float(n_nodes), time_limit=args.sdr_time_limit)
                    row["sdr_s"] = time.perf_counter() - t0
                    row["sdr_snr"] = red.min_snr(s.x)
                    row["sdr_status"] = s.status.value
                    row["sdr_dc_iterations"] = s.iterations
                    row["sdr_rank_ratio"] = float(s.extra.get("rank_ratio", np.nan))
                    # the same method with the tightest valid aggregate budget (p, not N): the
                    # paper's subroutine at its least conservative
                    t0 = time.perf_counter()
                    s2 = solve_sdr(red, budget=float(p), time_limit=args.sdr_time_limit)
                    row["sdr_p_s"] = time.perf_counter() - t0
                    row["sdr_p_snr"] = red.min_snr(s2.x)
                    row["sdr_p_dc_iterations"] = s2.iterations
                    row["dim"] = int(red.n_nodes * red.dim)
                    res.add(row)
                    print(f"N={n_nodes} M={m} seed={seed} k={k} v={len(users)} p={p}: "
                          f"fast {1e3 * row['fast_s']:.1f} ms snr {row['fast_snr']:.1f} | "
                          f"sdr {row['sdr_s']:.2f} s snr {row['sdr_snr']:.1f} "
                          f"it {s.iterations} {s.status.value}", flush=True)
    summarise(res)


def summarise(res: ResultsFile) -> None:
    rows = [r for r in res.rows if not r.get("dead")]
    cells = []
    for n_nodes, m in GRID:
        for label, sel in (("1", lambda r: r["p"] == 1), ("2", lambda r: r["p"] == 2),
                           ("3", lambda r: r["p"] == 3),
                           ("all", lambda r, n=n_nodes: r["p"] == n)):
            rs = [r for r in rows if r["N"] == n_nodes and r["M"] == m and sel(r)]
            if not rs:
                continue
            ref = [max(r["sdr_snr"], r["sdr_p_snr"], r["multistart_snr"]) for r in rs]
            ratio = [r["fast_snr"] / x for r, x in zip(rs, ref, strict=True) if x > 0]
            cells.append({
                "N": n_nodes, "M": m, "p": label, "cases": len(rs),
                "fast_ms": 1e3 * float(np.median([r["fast_s"] for r in rs])),
                "oracle_ms": 1e3 * float(np.median([r["oracle_fast_s"] for r in rs])),
                "sdr_s": float(np.median([r["sdr_s"] for r in rs])),
                "speedup": float(np.median([r["sdr_s"] / r["fast_s"] for r in rs])),
                "ratio": float(np.median(ratio)) if ratio else None,
                "ratio_min": float(np.min(ratio)) if ratio else None,
                "fast_vs_sdr": float(np.median([r["fast_snr"] / r["sdr_snr"] for r in rs
                                                if r["sdr_snr"] > 0] or [np.nan])),
                "fast_vs_sdr_p": float(np.median([r["fast_snr"] / r["sdr_p_snr"] for r in rs
                                                  if r["sdr_p_snr"] > 0] or [np.nan])),
                "sdr_zero": sum(r["sdr_snr"] <= 0 for r in rs),
                "sdr_p_s": float(np.median([r["sdr_p_s"] for r in rs])),
                "dc_it": float(np.mean([r["sdr_dc_iterations"] for r in rs])),
                "sdr_limit_hit": sum(r["sdr_status"] == "iteration_limit" for r in rs),
            })
    print(table(cells, [("N", "N", "d"), ("M", "M", "d"), ("p", "p", ""),
                        ("cases", "cases", "d"), ("fast ms", "fast_ms", ".1f"),
                        ("oracle ms", "oracle_ms", ".1f"), ("sdr s", "sdr_s", ".2f"),
                        ("speed-up", "speedup", ".0f"), ("fast/ref", "ratio", ".4f"),
                        ("min fast/ref", "ratio_min", ".4f"), ("fast/sdr", "fast_vs_sdr", ".3f"),
                        ("sdr=0", "sdr_zero", "d"), ("sdr_p s", "sdr_p_s", ".2f"),
                        ("fast/sdr_p", "fast_vs_sdr_p", ".3f"),
                        ("DC it", "dc_it", ".1f"), ("sdr limit", "sdr_limit_hit", "d")]))
    multi = [r for r in rows if r["p"] >= 2]
    head = {
        "speedup_median_p_ge_2": float(np.median([r["sdr_s"] / r["fast_s"] for r in multi])),
        "quality_median": float(np.median([
            r["fast_snr"] / max(r["sdr_snr"], r["sdr_p_snr"], r["multistart_snr"]) for r in rows
            if max(r["sdr_snr"], r["sdr_p_snr"], r["multistart_snr"]) > 0])),
        "speedup_vs_sdr_p_median_p_ge_2": float(np.median([r["sdr_p_s"] / r["fast_s"]
                                                            for r in multi])),
        "fast_ms_median_p_le_3_M20": 1e3 * float(np.median([
            r["fast_s"] for r in rows if r["p"] <= 3 and r["M"] == 20])),
        "oracle_ms_median_p_le_3_M20": 1e3 * float(np.median([
            r["oracle_fast_s"] for r in rows if r["p"] <= 3 and r["M"] == 20])),
        "dead_cases": sum(1 for r in res.rows if r.get("dead")),
        "mean_dc_iterations": float(np.mean([r["sdr_dc_iterations"] for r in rows])),
    }
    print("\n" + "\n".join(f"{k}: {v:.4g}" for k, v in head.items()))
    res.data["summary"] = jsonable({"cells": cells, "headline": head})
    write_json_atomic(res.path, res.data)


if __name__ == "__main__":
    main()
