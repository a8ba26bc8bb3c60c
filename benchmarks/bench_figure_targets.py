"""Issue 17's targets for the paper's method, read from the committed figure reports.

    python benchmarks/bench_figure_targets.py                      # every report that runs maasn
    python benchmarks/bench_figure_targets.py reports/fig08-full reports/fig09-full
    python benchmarks/bench_figure_targets.py --json benchmarks/results/maasn_figure_targets.json

Per report and grid point (the instance axes; a solver axis such as fig17's eps_hot makes each
of its values a solver of its own): the mean total delay over the seeds of ``maasn`` (or the
spec's ``[paper] ours``), of the best other solver except ``milp``, of ``milp`` and of the
certified bound (the largest ``bound_s`` of a built-in milp row on the same instance); an
incomplete run makes a solver's mean infinite. Targets (issue 17): complete with 0 QoS
violations wherever milp is; no worse than the best non-milp solver at 90% of the points;
within 10% of milp on average. "No worse" allows a millionth (the oracle's solve tolerance:
the same plan delivered through another code path differs in the 8th-9th digit). Every finished
row is read, whatever code made it; the report's own page says which code made which rows (a
report re-run for some solvers only, ``rerun_reports.py --solvers``, holds two).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rerun_reports import gunzip_store  # noqa: E402


def key(d: dict | None) -> str:
    return json.dumps(d or {}, sort_keys=True)


def analyse(folder: Path, ours: str | None = None) -> dict | None:
    from fgamcd_opt.experiments.store import read_store

    header, rows = read_store(folder)
    spec = header.get("spec") or {}
    paper = spec.get("paper") or {} if isinstance(spec, dict) else {}
    ours = ours or paper.get("ours") or "maasn"
    rows = [r for r in rows if r.get("state") == "done"]
    if not any(r.get("solver") == ours for r in rows):
        return None
    # delays[point][solver variant][replicate]; inf for an incomplete plan
    delays: dict = defaultdict(lambda: defaultdict(dict))
    qos: dict = defaultdict(lambda: defaultdict(int))
    bound: dict = defaultdict(float)
    for r in rows:
        p = key(r.get("point"))
        label = r.get("solver_label") or r.get("solver")
        sp = r.get("solver_point") or {}
        name = label + (" " + " ".join(f"{k}={v}" for k, v in sorted(sp.items())) if sp else "")
        d = r.get("total_delay_s")
        delays[p][(r.get("solver"), name)][r.get("replicate")] = \
            float(d) if d is not None and r.get("complete") else math.inf
        qos[p][(r.get("solver"), name)] += int(r.get("qos_violating_users") or 0)
        if r.get("solver") == "milp" and r.get("bound_s") is not None:
            rep = r.get("replicate")
            bound[(p, rep)] = max(bound[(p, rep)], float(r["bound_s"]))

    def mean(v: dict) -> float:  # fsum: the same delays in another order give the same mean
        return math.fsum(v.values()) / len(v) if v else math.nan

    points = []
    for p, by in delays.items():
        mine = [k for k in by if k[0] == ours]
        milp = [k for k in by if k[0] == "milp"]
        if not mine:
            continue
        m = mine[0]
        others = {k: mean(v) for k, v in by.items() if k[0] not in (ours, "milp")}
        best = min(others.items(), key=lambda kv: kv[1]) if others else (None, math.nan)
        reps = sorted(by[m])
        b = [bound.get((p, rep)) for rep in reps]
        row = {"point": json.loads(p), "seeds": len(reps), "ours": mean(by[m]),
               "ours_qos_violations": qos[p][m],
               "best_other": best[1], "best_other_solver": best[0][1] if best[0] else None,
               "milp": mean(by[milp[0]]) if milp else None,
               "milp_complete": (all(math.isfinite(x) for x in by[milp[0]].values())
                                 if milp else None),
               "milp_qos_violations": qos[p][milp[0]] if milp else None,
               "bound": (sum(b) / len(b)) if b and all(x for x in b) else None}
        # a millionth: below the oracle's solve tolerance (the same caching delivered through
        # another path differs in the 8th-9th digit), not a difference between plans
        row["no_worse_than_best_other"] = bool(row["ours"] <= row["best_other"] * (1 + 1e-6))
        row["within_0.5pct_of_best_other"] = bool(row["ours"] <= row["best_other"] * 1.005)
        row["vs_milp_pct"] = (100 * (row["ours"] / row["milp"] - 1)
                              if row["milp"] and math.isfinite(row["milp"]) else None)
        row["vs_bound_pct"] = 100 * (row["ours"] / row["bound"] - 1) if row["bound"] else None
        row["complete_qos_where_milp_is"] = (
            None if not row["milp_complete"] or row["milp_qos_violations"]
            else bool(math.isfinite(row["ours"]) and row["ours_qos_violations"] == 0))
        points.append(row)
    points.sort(key=lambda r: [(k, str(type(v)), v) for k, v in sorted(r["point"].items())])
    vs = [r["vs_milp_pct"] for r in points if r["vs_milp_pct"] is not None
          and math.isfinite(r["vs_milp_pct"])]
    cq = [r["complete_qos_where_milp_is"] for r in points
          if r["complete_qos_where_milp_is"] is not None]
    # whose plan maasn returned (its fallback, docs/maasn.md section 5): "policy" or
    # "guard-only"; rows made before the fallback existed have none
    sources: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.get("solver") == ours:
            meta = r.get("metadata") or {}
            sources[str(meta.get("plan_source"))] += 1
            fb = meta.get("fallback") or {}
            a, b = fb.get("policy_delay_s"), fb.get("guard_only_delay_s")
            if a is not None and b is not None:  # the policy's plan strictly better (> 1e-6)
                sources["policy strictly better"] += float(a) < float(b) * (1 - 1e-6)
    return {"report": str(folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder),
            "ours": ours, "size": spec.get("size") if isinstance(spec, dict) else None,
            "points": points, "n_points": len(points),
            "no_worse_than_best_other": sum(r["no_worse_than_best_other"] for r in points),
            "within_0.5pct": sum(r["within_0.5pct_of_best_other"] for r in points),
            "mean_vs_milp_pct": sum(vs) / len(vs) if vs else None,
            "worst_vs_milp_pct": max(vs) if vs else None,
            "complete_qos_where_milp_is": f"{sum(cq)}/{len(cq)}",
            "plan_source": dict(sorted(sources.items()))}


def fmt(x, pct=False):
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return "inf"
    return f"{x:+.2f}%" if pct else f"{x:.4f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="*", type=Path,
                    help="report folders (default: every reports/*/ with a store)")
    ap.add_argument("--ours", default=None, help="the solver judged (default: [paper] ours)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    folders = args.reports or sorted({p.parent for pat in ("*/store.jsonl", "*/store.jsonl.gz")
                                      for p in (ROOT / "reports").glob(pat)})
    results = []
    for f in folders:
        f = f if f.is_absolute() else (Path.cwd() / f)
        if not gunzip_store(f):  # a full report keeps its store gzipped in git
            print(f"{f}: no results store", file=sys.stderr)
            continue
        res = analyse(f.resolve(), args.ours)
        if res is None:
            continue
        results.append(res)
        print(f"\n## {res['report']} ({res['ours']}): no worse than the best non-milp at "
              f"{res['no_worse_than_best_other']}/{res['n_points']} points "
              f"({res['within_0.5pct']} within 0.5%), mean vs milp "
              f"{fmt(res['mean_vs_milp_pct'], True)}, worst {fmt(res['worst_vs_milp_pct'], True)}"
              f", complete with 0 QoS where milp is: {res['complete_qos_where_milp_is']}"
              f"; plan source {res['plan_source']}")
        print("| point | seeds | ours | best other | (solver) | milp | bound | vs milp |")
        print("|---|---|---|---|---|---|---|---|")
        for r in res["points"]:
            print(f"| {key(r['point'])} | {r['seeds']} | {fmt(r['ours'])} | "
                  f"{fmt(r['best_other'])} | {r['best_other_solver']} | {fmt(r['milp'])} | "
                  f"{fmt(r['bound'])} | {fmt(r['vs_milp_pct'], True)} |")
    tot = sum(r["n_points"] for r in results)
    ok = sum(r["no_worse_than_best_other"] for r in results)
    if tot:
        print(f"\nall reports: no worse than the best non-milp at {ok}/{tot} points "
              f"({100 * ok / tot:.0f}%)")
    if args.json:
        from fgamcd_opt.jsonio import write_json_atomic

        def clean(o):
            if isinstance(o, float) and not math.isfinite(o):
                return None if math.isnan(o) else "inf"
            if isinstance(o, dict):
                return {k: clean(v) for k, v in o.items()}
            if isinstance(o, list):
                return [clean(v) for v in o]
            return o

        write_json_atomic(args.json, clean({"reports": results, "points": tot,
                                            "no_worse_than_best_other": ok}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
