"""The report of a learning study (learning.py): learning-curve figures with the spread over
training seeds, the final greedy delay on held-out seeds, the paper's ordering per variant, and
where, how long and at which load it ran. Reads only the run folders; writes ``DIR/index.md``,
``index.html``, ``curves.csv``, ``final.csv`` and ``figures/``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .learning import episodes_done, mean_std, read_curve, run_dir
from .reporting import Doc
from .spec import Spec


def _smooth(y: np.ndarray, w: int) -> np.ndarray:
    """Trailing moving average over at most ``w`` episodes."""
    c = np.cumsum(np.insert(np.asarray(y, float), 0, 0.0))
    i = np.arange(1, len(y) + 1)
    lo = np.maximum(i - w, 0)
    return (c[i] - c[lo]) / (i - lo)


def _fmt(m: float, s: float, digits: int = 3) -> str:
    if np.isinf(m):
        return "inf (incomplete plans)"
    if not np.isfinite(m):
        return "-"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if np.isfinite(s) else f"{m:.{digits}f}"


def collect(plan: dict, out: Path) -> dict:
    """Per (storage tag, variant): the finished runs' reward curves (seeds x episodes), their
    per-episode wall times, final rewards and held-out results."""
    data: dict = {}
    for run in plan["runs"]:
        d = run_dir(out, run)
        cell = data.setdefault((run["storage"], run["variant"]), {
            "seeds": [], "rewards": [], "wall": [], "heldout": [], "missing": [], "aug": [],
            "episodes": run["episodes"]})
        if episodes_done(d) < run["episodes"]:
            cell["missing"].append(run["seed"])
            continue
        rows = read_curve(d)[: run["episodes"]]
        cell["seeds"].append(run["seed"])
        cell["rewards"].append([float(r["reward"]) for r in rows])
        cell["wall"].append([float(r["wall_s"]) for r in rows])
        cell["aug"] += [(float(r["synthetic_kept"] or 0), float(r["steps"] or 0),
                         float(r["esn_error"]) if r.get("esn_error") else float("nan"),
                         float(r["esn_s"] or 0)) for r in rows]
        try:
            cell["heldout"].append(json.loads((d / "heldout.json").read_text())["rows"])
        except (OSError, ValueError, KeyError):
            cell["heldout"].append(None)
    return data


def _final(cell: dict, smooth: int) -> dict:
    """Final numbers of one (storage, variant) over its training seeds."""
    fin = [float(np.mean(r[-smooth:])) for r in cell["rewards"] if r]
    per_seed_delay, pen, complete, total = [], [], 0, 0
    for rows in cell["heldout"]:
        if not rows:
            continue
        d = [r["delay_s"] for r in rows]
        total += len(d)
        complete += sum(x is not None for x in d)
        # a seed's held-out delay is the mean over the held-out instances, infinite when one
        # of its plans is incomplete (never better than a complete one)
        per_seed_delay.append(float(np.mean(d)) if all(x is not None for x in d)
                              else float("inf"))
        pen.append(float(np.mean([r["penalised_pbs"] for r in rows])))
    finite = [x for x in per_seed_delay if np.isfinite(x)]
    return {"seeds": len(cell["seeds"]), "reward": mean_std(fin), "reward_seeds": fin,
            "delay": mean_std(finite) if len(finite) == len(per_seed_delay) else
            (float("inf"), float("nan")),
            "delay_seeds": per_seed_delay, "penalised": mean_std(pen),
            "complete": (complete, total),
            "s_per_episode": float(np.mean([w for ws in cell["wall"] for w in ws]))
            if cell["wall"] else float("nan")}


def verdict(better: tuple, worse: tuple, lower_is_better: bool) -> str:
    """'holds' / 'contradicted' for the claim 'better beats worse' on (mean, std) over seeds,
    with 'within the spread' when the mean +- std intervals overlap."""
    (mb, sb), (mw, sw) = better, worse
    if np.isnan(mb) or np.isnan(mw) or (np.isinf(mb) and np.isinf(mw)):
        return "n/a"
    if mb == mw:
        return "tie"
    holds = mb < mw if lower_is_better else mb > mw  # an infinite delay loses to a finite one
    word = "holds" if holds else "**contradicted**"
    if not (np.isfinite(mb) and np.isfinite(mw)):
        return word
    sb = sb if np.isfinite(sb) else 0.0
    sw = sw if np.isfinite(sw) else 0.0
    overlap = (mb - sb <= mw + sw) and (mw - sw <= mb + sb)
    return f"{word}, within the spread" if overlap else word


def _figure(st: dict, plan: dict, data: dict, finals: dict, png: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = plan["smooth"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.4), gridspec_kw={"width_ratios": [2.2, 1]})
    drawn = False
    styles = ["-", "--", "-.", ":"]
    labels, means, errs, pts = [], [], [], []
    for i, v in enumerate(plan["variants"]):
        cell = data.get((st["tag"], v["name"]))
        if not cell or not cell["rewards"]:
            continue
        n = min(len(r) for r in cell["rewards"])
        if n == 0:
            continue
        r = np.array([x[:n] for x in cell["rewards"]])
        ep = np.arange(1, n + 1)
        color = f"C{i % 10}"
        lw = 2.2 if v["name"] == plan["reference"] else 1.3
        ax.plot(ep, _smooth(r.mean(0), w), styles[(i // 10) % 4] if i < 10 else ":",
                color=color, lw=lw, label=f"{v['label']} ({len(r)} seeds)")
        if len(r) > 1:
            ax.fill_between(ep, _smooth(r.min(0), w), _smooth(r.max(0), w), color=color,
                            alpha=0.12, lw=0)
        drawn = True
        f = finals[(st["tag"], v["name"])]
        labels.append(v["label"])
        means.append(f["delay"][0])
        errs.append(f["delay"][1] if np.isfinite(f["delay"][1]) else 0.0)
        pts.append([x for x in f["delay_seeds"] if np.isfinite(x)])
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel("episode")
    ax.set_ylabel(f"cumulative reward per episode (mean of last {w})")
    ax.set_title("learning curves: mean over training seeds, band = min-max", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    y = np.arange(len(labels))
    ok = [np.isfinite(m) for m in means]
    bx.barh(y[ok], np.asarray(means)[ok], xerr=np.asarray(errs)[ok], color="0.75",
            ecolor="0.2", capsize=3)
    for yi, p in zip(y, pts, strict=True):
        bx.plot(p, [yi] * len(p), "o", color="C3", ms=3)
    for yi, m in zip(y, means, strict=True):
        if not np.isfinite(m):
            bx.text(0.02, yi, "incomplete plan(s)" if np.isinf(m) else "not evaluated",
                    va="center", fontsize=7, color="C3", transform=bx.get_yaxis_transform())
    bx.set_yticks(y, labels, fontsize=7)
    bx.invert_yaxis()
    fin = [m for m in means if np.isfinite(m)]
    if fin:
        lo, hi = min(min(p) for p in pts if p), max(max(p) for p in pts if p)
        pad = 0.15 * max(hi - lo, 1e-3)
        bx.set_xlim(max(lo - pad, 0), hi + pad)
    bx.set_xlabel("final greedy delay on held-out seeds (s)")
    bx.set_title("mean ± std over training seeds (dots: seeds)", fontsize=9)
    bx.grid(alpha=0.3, axis="x")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    fig.savefig(png.with_suffix(".pdf"))
    plt.close(fig)
    return True


def _logs(out: Path) -> list[dict]:
    try:
        return [json.loads(x) for x in (out / "study-log.jsonl").read_text().splitlines() if x]
    except OSError:
        return []


def _run_records(plan: dict, out: Path) -> list[dict]:
    recs = []
    for run in plan["runs"]:
        try:
            lines = (run_dir(out, run) / "runs.jsonl").read_text().splitlines()
        except OSError:
            continue
        recs += [{**json.loads(x), "storage": run["storage"], "variant": run["variant"]}
                 for x in lines if x]
    return recs


def _full_estimate(spec: Spec, s_per_episode: dict) -> str:
    """Hours the spec's full size would take on one core, from the measured s/episode."""
    if not spec.path:
        return ""
    from .learning import study_plan
    from .spec import load_spec

    try:
        full = study_plan(load_spec(spec.path, "full"))
    except Exception:  # noqa: BLE001 - no full size: nothing to estimate
        return ""
    total, eps = 0.0, 0
    for r in full["runs"]:
        rate = s_per_episode.get((r["storage"], r["variant"])) or s_per_episode.get("all")
        if rate is None or not np.isfinite(rate):
            return ""
        total += r["episodes"] * rate
        eps += r["episodes"]
    return (f"The spec's full size ({len(full['runs'])} runs, {eps} episodes) would take about "
            f"**{total / 3600:.1f} hours** of training on one core at the seconds per episode "
            f"measured here (per storage and variant; the held-out evaluation comes on top).")


def write_report(spec: Spec, plan: dict, out: Path) -> Path:
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    data = collect(plan, out)
    finals = {k: _final(c, plan["smooth"]) for k, c in data.items()}
    doc = Doc()
    doc.h(1, spec.title)
    if spec.description:
        doc.p(spec.description)
    # curves.csv: per storage, variant and episode, the reward over the finished seeds
    with open(out / "curves.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["storage_gb", "variant", "episode", "seeds", "reward_mean", "reward_std",
                    "reward_min", "reward_max", "reward_mean_smoothed"])
        for st in plan["storages"]:
            for v in plan["variants"]:
                cell = data.get((st["tag"], v["name"]))
                if not cell or not cell["rewards"]:
                    continue
                n = min(len(r) for r in cell["rewards"])
                r = np.array([x[:n] for x in cell["rewards"]])
                sm = _smooth(r.mean(0), plan["smooth"]) if n else []
                for e in range(n):
                    col = r[:, e]
                    w.writerow([st["gb"], v["name"], e + 1, len(col), f"{col.mean():.6g}",
                                f"{col.std(ddof=1) if len(col) > 1 else 0.0:.6g}",
                                f"{col.min():.6g}", f"{col.max():.6g}", f"{sm[e]:.6g}"])
    rates: dict = {}
    all_w = []
    for st in plan["storages"]:
        name = f"fig0{st['figure']}" if not st["figure"].startswith("fig") else st["figure"]
        png = figs / f"{name}.png"
        title = (f"Fig. {st['figure']}: C_n = {st['gb']:g} GB, {st['episodes']} episodes, "
                 f"training seeds {st['seeds']}, held-out seeds {plan['heldout_seeds']}")
        doc.h(2, f"Fig. {st['figure']}: C_n = {st['gb']:g} GB")
        if _figure(st, plan, data, finals, png, title):
            doc.img(png, title, f"figures/{png.name}")
            with open(out / "curves.csv") as src, open(png.with_suffix(".csv"), "w") as dst:
                lines = src.readlines()
                dst.writelines([lines[0]] + [ln for ln in lines[1:]
                                             if float(ln.split(",")[0]) == st["gb"]])
        else:
            doc.p("No finished run yet.")
        ref = finals.get((st["tag"], plan["reference"]))
        rows = []
        for v in plan["variants"]:
            f = finals.get((st["tag"], v["name"]))
            cell = data.get((st["tag"], v["name"]))
            if f is None:
                continue
            if cell["wall"]:
                rates[(st["tag"], v["name"])] = f["s_per_episode"]
                all_w += [x for ws in cell["wall"] for x in ws]
            vs = "reference" if v["name"] == plan["reference"] else (
                f"delay: {verdict(ref['delay'], f['delay'], True)}; reward: "
                f"{verdict(ref['reward'], f['reward'], False)}" if ref and ref["seeds"]
                and f["seeds"] else "n/a")
            c, t = f["complete"]
            rows.append([v["label"], f"{f['seeds']}" + (f" (missing {cell['missing']})"
                                                       if cell["missing"] else ""),
                         _fmt(*f["reward"], 2), _fmt(*f["delay"], 4),
                         " / ".join("inf" if not np.isfinite(x) else f"{x:.4f}"
                                    for x in f["delay_seeds"]) or "-",
                         _fmt(*f["penalised"], 1), f"{c}/{t}",
                         f"{f['s_per_episode']:.2f}" if np.isfinite(f["s_per_episode"]) else "-",
                         vs])
        doc.table(["variant", "training seeds", f"final reward (mean of last {plan['smooth']} "
                   "episodes)", "held-out greedy delay s (mean ± std over seeds)",
                   "per training seed", "penalised PBs per held-out instance", "complete plans",
                   "s / episode", f"paper: {plan['reference']} better?"], rows,
                  f"C_n = {st['gb']:g} GB: final numbers, mean ± std over training seeds; "
                  "held-out delay = the evaluator's total delay of the greedy policy's plan, "
                  "averaged over the held-out seeds")
        aug_rows = []
        for v in plan["variants"]:
            cell = data.get((st["tag"], v["name"]))
            if not cell or not cell["aug"]:
                continue
            a = np.array(cell["aug"])
            err = a[np.isfinite(a[:, 2]), 2]
            aug_rows.append([v["label"], f"{a[:, 0].mean():.1f}",
                             f"{a[:, 0].sum() / max(a[:, 1].sum(), 1):.2f}",
                             f"{np.median(err):.2f}" if len(err) else "-",
                             f"{a[:, 3].mean():.2f}"])
        if aug_rows:
            doc.table(["variant", "synthetic tuples kept per episode", "per real tuple",
                       "median out-of-sample error (eq. 17, std units)",
                       "augmentation s / episode"], aug_rows,
                      f"C_n = {st['gb']:g} GB: the augmentation over all episodes and seeds "
                      "(curve.csv: synthetic_kept, esn_error, esn_s)")
        extra = []
        for od in plan["orderings"]:
            fb, fw = finals.get((st["tag"], od["better"])), finals.get((st["tag"], od["worse"]))
            if not fb or not fw or not fb["seeds"] or not fw["seeds"]:
                continue
            lab = {v["name"]: v["label"] for v in plan["variants"]}
            extra.append([f"{lab[od['better']]} above {lab[od['worse']]}",
                          f"{_fmt(*fb['delay'], 4)} vs {_fmt(*fw['delay'], 4)}",
                          verdict(fb["delay"], fw["delay"], True),
                          f"{_fmt(*fb['reward'], 2)} vs {_fmt(*fw['reward'], 2)}",
                          verdict(fb["reward"], fw["reward"], False)])
        if extra:
            doc.table(["paper's claim", "held-out delay s", "verdict (delay)",
                       "final reward", "verdict (reward)"], extra,
                      f"C_n = {st['gb']:g} GB: the paper's other orderings")
    with open(out / "final.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["storage_gb", "variant", "training_seeds", "final_reward_mean",
                    "final_reward_std", "heldout_delay_s_mean", "heldout_delay_s_std",
                    "heldout_delay_s_per_seed", "penalised_pbs_mean", "complete_plans",
                    "heldout_plans", "s_per_episode"])
        for st in plan["storages"]:
            for v in plan["variants"]:
                f = finals.get((st["tag"], v["name"]))
                if f is None or not f["seeds"]:
                    continue
                w.writerow([st["gb"], v["name"], f["seeds"], *(f"{x:.6g}" for x in f["reward"]),
                            *(f"{x:.6g}" for x in f["delay"]),
                            " ".join(f"{x:.6g}" for x in f["delay_seeds"]),
                            f"{f['penalised'][0]:.6g}", *f["complete"],
                            f"{f['s_per_episode']:.4g}"])
    # where, how long, at which load
    logs, recs = _logs(out), _run_records(plan, out)
    doc.h(2, "Where and how long it ran")
    train_s = sum(r["wall_s"] for r in recs)
    loads = [x for r in recs for x in (r.get("load_before"), r.get("load_after")) if x]
    rates["all"] = float(np.mean(all_w)) if all_w else float("nan")
    lines = [f"Training: {len(recs)} fgamcd-train invocations, **{train_s / 60:.1f} min** of "
             f"wall time in total (sum over the runs, one at a time), "
             f"{len(all_w)} episodes, **{rates['all']:.2f} s per episode** on average "
             f"(episode wall time from the curves: environment, oracle, augmentation, "
             f"updates)."]
    if loads:
        one = [x[0] for x in loads]
        lines.append(f"1-minute load average before/after the runs: min {min(one):.2f}, "
                     f"median {float(np.median(one)):.2f}, max {max(one):.2f} (2-core machine "
                     "shared with other jobs).")
    hosts = sorted({r.get("host", "?") for r in recs})
    if hosts:
        lines.append(f"Hosts: {', '.join(hosts)}.")
    est = _full_estimate(spec, rates)
    if est:
        lines.append(est)
    for ln in lines:
        doc.p(ln)
    if logs:
        doc.table(["started (UTC)", "command", "executor", "size", "wall time", "counts"],
                  [[lg["started"], f"`{lg['command']}`", lg.get("executor", "?"),
                    str(lg.get("size")), f"{lg['elapsed_s']} s",
                    json.dumps(lg.get("counts", {}))] for lg in logs],
                  "Invocations (a rerun skips finished runs and resumes interrupted ones)")
    doc.h(2, "Provenance")
    doc.p(f"spec `{spec.path}`, size `{spec.size}`, scenario `{spec.scenario}`, generator "
          f"parameters `{json.dumps(spec.params)}`; every run's command, card and curve are in "
          f"`runs/<storage>/<variant>/seed<S>/` (`policy.json`, `curve.csv`, `train.log`, "
          f"`runs.jsonl`, `heldout.json`). Common fgamcd-train arguments: "
          f"`{' '.join(plan['train_args'])}`; variants: "
          + "; ".join(f"{v['label']} `{' '.join(v['args']) or '(none)'}`"
                      for v in plan["variants"]) + ".")
    notes = spec.report.get("notes")
    if notes:
        doc.h(2, "Notes")
        for para in str(notes).strip().split("\n\n"):
            doc.p(para.strip())
    (out / "index.md").write_text(doc.markdown())
    (out / "index.html").write_text(doc.html(spec.title))
    return out / "index.md"
