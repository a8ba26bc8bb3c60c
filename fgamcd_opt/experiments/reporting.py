"""Reports from a results store: figures (PNG + PDF + the CSV each is drawn from), tables, an
index page in Markdown and a self-contained HTML page (images embedded).

Delay semantics (docs/model.md): ``total_delay_s`` null means the plan leaves some requested
(user, PB) pair unserved, i.e. infinite delay. Such a run is never averaged as 0 and never
dropped: a mean over seeds that contains one is infinite, drawn as a marker on the top edge of
the plot, printed as "inf (k/n incomplete)", and ranked last.
"""

from __future__ import annotations

import base64
import html
import json
import math
import time
from collections import defaultdict
from pathlib import Path

from .store import export_csv

INF = math.inf
METRIC_LABEL = {
    "total_delay_s": "total download delay (s)",
    "solve_time_s": "solve time (s)",
    "gap_pct": "delay above the certified bound (%)",
    "qos_violating_users": "users below QoS (mean)",
    "undelivered_users": "undelivered users (mean)",
    "unserved_pairs": "unserved (user, PB) pairs (mean)",
}


# ---- small document model, rendered to Markdown and HTML ------------------------------------
class Doc:
    def __init__(self):
        self.parts: list[tuple] = []

    def h(self, level: int, text: str):
        self.parts.append(("h", level, text))

    def p(self, text: str):
        self.parts.append(("p", text))

    def pre(self, text: str):
        self.parts.append(("pre", text))

    def table(self, headers: list[str], rows: list[list], caption: str = ""):
        self.parts.append(("table", headers, rows, caption))

    def img(self, png: Path, caption: str, rel: str):
        self.parts.append(("img", png, caption, rel))

    def markdown(self) -> str:
        out = []
        for part in self.parts:
            if part[0] == "h":
                out.append("#" * part[1] + " " + part[2])
            elif part[0] == "p":
                out.append(part[1])
            elif part[0] == "pre":
                out.append("```\n" + part[1] + "\n```")
            elif part[0] == "table":
                _, headers, rows, caption = part
                if caption:
                    out.append(f"*{caption}*\n")
                lines = ["| " + " | ".join(headers) + " |",
                         "|" + "|".join("---" for _ in headers) + "|"]
                lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif part[0] == "img":
                _, png, caption, rel = part
                pdf = rel[:-4] + ".pdf"
                csv = rel[:-4] + ".csv"
                out.append(f"![{caption}]({rel})\n\n*{caption}* ([PDF]({pdf}), [CSV]({csv}))")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        esc = html.escape
        body = []
        for part in self.parts:
            if part[0] == "h":
                body.append(f"<h{part[1]}>{esc(part[2])}</h{part[1]}>")
            elif part[0] == "p":
                body.append(f"<p>{_inline_md(part[1])}</p>")
            elif part[0] == "pre":
                body.append(f"<pre>{esc(part[1])}</pre>")
            elif part[0] == "table":
                _, headers, rows, caption = part
                cap = f"<caption>{esc(caption)}</caption>" if caption else ""
                head = "".join(f"<th>{esc(str(x))}</th>" for x in headers)
                trs = "".join("<tr>" + "".join(f"<td>{_inline_md(str(c))}</td>" for c in r)
                              + "</tr>" for r in rows)
                body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{trs}</tbody>"
                            "</table>")
            elif part[0] == "img":
                _, png, caption, _rel = part
                data = base64.b64encode(Path(png).read_bytes()).decode()
                body.append(f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,'
                            f'{data}"><figcaption>{esc(caption)}</figcaption></figure>')
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
                 "color:#222}table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
                 "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
                 "th{background:#eee}td:first-child,th:first-child{text-align:left}"
                 "caption{font-style:italic;text-align:left;padding:4px 0}"
                 "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}"
                 "figcaption{font-style:italic;color:#444}pre{background:#f4f4f4;padding:8px;"
                 "overflow-x:auto;white-space:pre-wrap}code{background:#f4f4f4}")
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{esc(title)}</title><style>{style}</style></head><body>\n"
                + "\n".join(body) + "\n</body></html>\n")


def _inline_md(text: str) -> str:
    """Escape, then the two inline marks the pages use: `code` and **bold**."""
    import re

    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
    return t.replace("\n", "<br>")


# ---- numbers -------------------------------------------------------------------------------
def delay_of(row: dict) -> float:
    """Total delay with null = infinite (incomplete plan)."""
    v = row.get("total_delay_s")
    return INF if v is None else float(v)


def fmt(v, spec: str = ".4g", inf_text: str = "inf") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return inf_text
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    return format(v, spec)


def _axis_key(v):
    return json.dumps(v) if isinstance(v, list | tuple) else v


def _axis_text(v) -> str:
    if isinstance(v, list | tuple):
        return "-".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _sort_key(v):
    if isinstance(v, list | tuple):
        return tuple(float(x) for x in v)
    return (v,) if isinstance(v, int | float) else (0, str(v))


def _x_value(row: dict, axis: str | None):
    if axis is None:
        return None
    if axis.startswith("solver."):
        return (row.get("solver_point") or {}).get(axis[7:])
    return (row.get("point") or {}).get(axis)


def series_name(row: dict, axes: list[str], x: str | None, panel: str | None) -> str:
    extra = [a for a in axes if a not in (x, panel)]
    label = row["solver_label"]
    if extra:
        label += " (" + ", ".join(f"{a}={_axis_text(_x_value(row, a))}" for a in extra) + ")"
    return label


def instance_key(row: dict) -> str:
    return json.dumps([row.get("point"), row.get("replicate")], sort_keys=True)


def trusted_bound(row: dict) -> bool:
    """A bound a report may use: one a built-in solver computed (a plugin's is a claim)."""
    from ..registry import BUILTIN_SOLVERS

    origin = row.get("solver_origin")
    if origin is not None:
        return origin == "builtin"
    return row.get("solver") in BUILTIN_SOLVERS  # rows written before origins were recorded


def attach_gap(rows: list[dict]) -> None:
    """gap_pct = 100 (T - B) / B with B the best certified bound a built-in solver reported on
    that instance (grid point and replicate); inf if the plan is incomplete."""
    best: dict[str, float] = {}
    for r in rows:
        if not trusted_bound(r):
            continue
        b = r.get("bound_s")
        if b is not None and b > 0:
            k = instance_key(r)
            best[k] = max(best.get(k, 0.0), float(b))
    for r in rows:
        b = best.get(instance_key(r))
        if b is None:
            r["gap_pct"] = None
        else:
            t = delay_of(r)
            r["gap_pct"] = INF if math.isinf(t) else 100.0 * (t - b) / b


def aggregate(values: list[float]) -> dict:
    finite = [v for v in values if v is not None and not math.isinf(v)]
    n_inf = sum(1 for v in values if v is not None and math.isinf(v))
    n = sum(1 for v in values if v is not None)
    if n == 0:
        return {"n": 0, "mean": None, "lo": None, "hi": None, "incomplete": 0}
    mean = INF if n_inf else sum(finite) / len(finite)
    return {"n": n, "mean": mean, "lo": min(finite) if finite else None,
            "hi": max(finite) if finite else None, "incomplete": n_inf,
            "finite_mean": sum(finite) / len(finite) if finite else None}


def curves(rows, metric: str, x: str | None, panel: str | None, axes: list[str]):
    """{panel value: {series: {x value: aggregate}}}."""
    acc: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        if metric == "total_delay_s":
            v = delay_of(r)
        else:
            v = r.get(metric)
            v = None if v is None else float(v)
        pv = _axis_key(_x_value(r, panel)) if panel else None
        xv = _axis_key(_x_value(r, x)) if x else None
        acc[pv][series_name(r, axes, x, panel)][xv].append(v)
    return {pv: {s: {xv: aggregate(vals) for xv, vals in d.items()} for s, d in ser.items()}
            for pv, ser in acc.items()}


def reductions(rows: list[dict], labels: list[str]) -> dict:
    """Mean relative delay reduction of A against B over paired complete runs (same instance,
    same solver-axis point): 100 (T_B - T_A) / T_B; with counts of pairs where only one of the
    two is complete (those are not in the mean, and are reported next to it)."""
    by = defaultdict(dict)
    for r in rows:
        key = json.dumps([r.get("point"), r.get("replicate"), r.get("solver_point")],
                         sort_keys=True)
        by[key][r["solver_label"]] = delay_of(r)
    out = {}
    for a in labels:
        for b in labels:
            if a == b:
                continue
            vals, a_only, b_only, both_inf = [], 0, 0, 0
            for d in by.values():
                if a not in d or b not in d:
                    continue
                ta, tb = d[a], d[b]
                if math.isinf(ta) and math.isinf(tb):
                    both_inf += 1
                elif math.isinf(tb):
                    a_only += 1
                elif math.isinf(ta):
                    b_only += 1
                elif tb > 0:
                    vals.append(100.0 * (tb - ta) / tb)
            out[(a, b)] = {"mean": sum(vals) / len(vals) if vals else None, "pairs": len(vals),
                           "a_only_complete": a_only, "b_only_complete": b_only,
                           "both_incomplete": both_inf}
    return out


# ---- figures -------------------------------------------------------------------------------
def _plot(data, metric: str, x: str | None, panel: str | None, path: Path, title: str,
          x_label: str, logy: bool | None = None, footer: str = "",
          paper: dict | None = None) -> bool:
    """Draw one figure (:func:`.plotting.plot_curves`) and the CSV it is drawn from."""
    from .plotting import plot_curves

    rows = plot_curves(data, metric, METRIC_LABEL.get(metric, metric), x, panel, path, title,
                       x_label, logy, footer, paper)
    if rows is None:
        return False
    _write_csv(rows, path.with_suffix(".csv"), x or "x", panel)
    return True


def _write_csv(rows: list[dict], path: Path, x: str, panel: str | None) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        head = ([panel] if panel else []) + ["series", x, "seeds", "mean", "min", "max",
                                             "incomplete_seeds"]
        w.writerow(head)
        for r in rows:
            mean = r["mean"]
            w.writerow(([r["panel"]] if panel else []) + [
                r["series"], r["x"], r["n"], "inf" if mean is not None and math.isinf(mean)
                else mean, r["lo"], r["hi"], r["incomplete"]])


# ---- the report ----------------------------------------------------------------------------
def build_report(store_dir, out_dir=None, title: str | None = None) -> Path:
    """Render figures, tables, index.md and index.html from ``store_dir``; returns index.md.
    Rows that fail their checksum or are not cells of the spec are left out and counted on the
    page; so are rows made by other code than the store's current one (said, not hidden)."""
    from .store import load_store

    store_dir = Path(store_dir)
    view = load_store(store_dir)
    header, rows_all = view.header, view.rows
    base = store_dir if store_dir.is_dir() else store_dir.parent
    spec_file = base / "spec.json"
    spec = json.loads(spec_file.read_text()) if spec_file.is_file() else \
        dict(header.get("spec_summary") or {})
    _refresh_presentation(spec, header)
    out = Path(out_dir) if out_dir else base
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    rep = spec.get("report") or {}
    name = spec.get("name", header.get("spec", "sweep"))
    for old in figdir.glob(f"{name}-*"):  # a re-render must not leave stale figures behind
        if old.suffix in (".png", ".pdf", ".csv"):
            old.unlink()
    axes = list(spec.get("axes") or {}) + [f"solver.{a}" for a in spec.get("solver_axes") or {}]
    x = rep.get("x") or (axes[0] if axes else None)
    panel = rep.get("panel")
    x_label = rep.get("x_label", x or "")
    done = [r for r in rows_all if r.get("state") == "done"]
    failed = [r for r in rows_all if r.get("state") != "done"]
    labels = [s["label"] for s in spec.get("solvers", [])] or sorted(
        {r["solver_label"] for r in rows_all})
    attach_gap(done)
    title = title or spec.get("title") or name
    logs = _logs(base)

    doc = Doc()
    doc.h(1, title)
    if spec.get("description"):
        doc.p(spec["description"])
    _provenance(doc, store_dir, spec, view, rows_all, done, failed, logs)

    figs = [("delay", "total_delay_s", None, "Total download delay"),
            ("runtime", "solve_time_s", True, "Solve time per run"),
            ("qos", "qos_violating_users", None, "Users below their QoS rate"),
            ("undelivered", "undelivered_users", None, "Users left undelivered")]
    if any("unserved_pairs" in r for r in done):  # run records v2: zero-rate pairs count too
        figs[-1] = ("unserved", "unserved_pairs", None,
                    "Requested (user, PB) pairs not served (undelivered or at zero rate)")
    if any(r.get("gap_pct") is not None for r in done):
        figs.insert(1, ("gap", "gap_pct", None, "Gap to the certified lower bound"))
    footer = figure_footer(spec, header, logs)
    paper = paper_series(done, axes, x, panel, spec)
    doc.h(2, "Figures")
    for fname, metric, logy, ftitle in figs:
        data = curves(done, metric, x, panel, axes)
        if metric in ("qos_violating_users", "undelivered_users", "unserved_pairs") and not any(
                (r.get(metric) or 0) for r in done):
            doc.p(f"{ftitle}: 0 in every run (no figure).")
            continue
        path = figdir / f"{name}-{fname}"
        if _plot(data, metric, x, panel, path, f"{title}: {ftitle}", x_label, logy, footer,
                 paper):
            doc.img(path.with_suffix(".png"), f"{ftitle} against {x_label or 'solver'}",
                    f"figures/{path.name}.png")

    _summary_table(doc, done, failed, labels)
    _point_table(doc, done, x, panel, axes, x_label)
    _reduction_tables(doc, done, labels, spec)
    _instance_table(doc, done, x, x_label, panel)
    notes = rep.get("notes")
    if notes:
        doc.h(2, "Notes")
        for para in str(notes).strip().split("\n\n"):
            doc.p(para.strip())
    if failed:
        doc.h(2, "Cells not done")
        doc.table(["solver", "point", "replicate", "state", "message"],
                  [[r.get("solver_label"), json.dumps(r.get("point")), r.get("replicate"),
                    r.get("state"), (r.get("message") or "")[:200]] for r in failed[:30]],
                  f"{len(failed)} cell(s) failed, were killed at the time limit, crashed or "
                  "tampered with their instance; a resumed sweep runs them again")
    export_csv(rows_all, out / "results.csv")
    md = out / "index.md"
    md.write_text(doc.markdown())
    (out / "index.html").write_text(doc.html(title))
    return md


def _logs(base: Path) -> list[dict]:
    path = base / "sweep-log.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def figure_footer(spec: dict, header: dict, logs: list[dict]) -> str:
    """The provenance printed on every figure: spec, hash, size, seeds, code, command."""
    from .provenance import code_text

    seeds = spec.get("replicates")
    policy = spec.get("seed_policy", "common")
    command = next((lg.get("command") for lg in reversed(logs) if lg.get("command")), "")
    bits = [f"spec {spec.get('name') or header.get('spec')} (hash {header.get('spec_hash')})",
            f"size {spec.get('size') or '-'}",
            f"seeds {seeds} ({policy}, base {spec.get('base_seed', 0)})"
            if seeds is not None else "",
            code_text(header.get("code")) if header.get("code") else "code: unknown (format 1)",
            f"command: {command}" if command else ""]
    return "  |  ".join(b for b in bits if b)


def paper_series(rows: list[dict], axes: list[str], x, panel, spec: dict) -> dict:
    """Series name -> legend note for the paper's method (solver ``maasn``) or the spec's
    stand-in for it (``[paper] ours``)."""
    from .plotting import paper_label

    ours = (spec.get("paper") or {}).get("ours")
    out = {}
    for r in rows:
        note = paper_label(r.get("solver_label", ""), str(r.get("solver_class") or
                                                          r.get("solver") or ""), ours)
        if note:
            out[series_name(r, axes, x, panel)] = note
    return out


def _refresh_presentation(spec: dict, header: dict) -> None:
    """Title, description, report settings and notes may be edited after a sweep (they are not
    part of the spec hash): take them from the spec file if it still describes this store."""
    path = spec.get("path")
    if not path or not Path(path).is_file():
        return
    from .spec import SpecError, load_spec

    try:
        current = load_spec(path, spec.get("size"))
    except SpecError:
        return
    if current.hash != header.get("spec_hash"):
        return
    spec.update(report=current.report, paper=current.paper, title=current.title,
                description=current.description)


def _provenance(doc, store_dir, spec, view, rows_all, done, failed, logs) -> None:
    from .provenance import code_identity, code_text, same_code

    header = view.header
    bits = [f"spec `{spec.get('path') or spec.get('name')}`",
            f"size `{spec.get('size')}`" if spec.get("size") else None,
            f"scenario `{spec.get('scenario')}`",
            f"fixed parameters `{json.dumps(spec.get('params') or {})}`",
            f"axes `{json.dumps(spec.get('axes') or {})}`",
            f"solver axes `{json.dumps(spec.get('solver_axes'))}`" if spec.get("solver_axes")
            else None,
            f"seeds (replicates) {spec.get('replicates')}, seed policy "
            f"`{spec.get('seed_policy')}`, base seed {spec.get('base_seed')}",
            f"time limit {spec.get('time_limit_s')} s, oracle `{spec.get('oracle')}`",
            f"spec hash `{header.get('spec_hash')}`"]
    doc.p("; ".join(b for b in bits if b) + ".")
    states: dict[str, int] = {}
    for r in rows_all:
        states[r.get("state", "?")] = states.get(r.get("state", "?"), 0) + 1
    doc.p(f"Cells: {len(rows_all)} in the store: "
          + ", ".join(f"{v} {k}" for k, v in sorted(states.items())) + ". "
          "Delays are total download delays (docs/model.md eq. 8); an incomplete plan (some "
          "requested PB never delivered) has infinite delay: it is shown as `inf`, drawn as a "
          "triangle above the plot with k/n (k of n seeds), and ranked last.")
    if not view.verified:
        doc.p("**Provenance unknown**: this store has format 1 (written before rows carried "
              "the code that made them and a checksum); run the spec again to replace it.")
    else:
        codes: dict[str, int] = {}
        for r in rows_all:
            codes[code_text(r.get("code"))] = codes.get(code_text(r.get("code")), 0) + 1
        now = code_identity()
        other = sum(1 for r in rows_all if not same_code(r.get("code"), now))
        doc.p("Code: " + "; ".join(f"{v} row(s) by {k}" for k, v in codes.items())
              + (f". **{other} row(s) were made by other code than the installed "
                 f"{code_text(now)}**: rerunning the spec runs them again."
                 if other else " (the installed code)."))
    if view.ignored:
        doc.p("Rows left out: " + "; ".join(f"{v} ({k})" for k, v in view.ignored.items())
              + ".")
    if logs:
        doc.table(["started (UTC)", "command", "executor", "cells run", "not done",
                   "stopped by an interruption", "wall time"],
                  [[lg.get("started"), f"`{lg.get('command')}`", lg.get("executor"),
                    lg.get("ran"), lg.get("not_done", lg.get("failed")),
                    len(lg.get("interrupted") or []), f"{lg.get('elapsed_s')} s"]
                   for lg in logs], "Runs that filled this store (machine: 2 shared cores)")
    doc.p(f"Report rendered {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
          f"`fgamcd-report {store_dir}`.")


def _summary_table(doc, done, failed, labels) -> None:
    doc.h(2, "Per solver (all grid points and seeds)")
    rows = []
    for lab in labels:
        rs = [r for r in done if r["solver_label"] == lab]
        if not rs:
            rows.append([lab, "no finished run", "", "", "", "", "", "", "", ""])
            continue
        ts = [delay_of(r) for r in rs]
        agg = aggregate(ts)
        inc = agg["incomplete"]
        mean_txt = (f"inf ({inc}/{len(rs)} incomplete)" if inc else fmt(agg["mean"], ".4f"))
        deliv = [r.get("delivered_delay_s") for r in rs if r.get("delivered_delay_s") is not None]
        mig = [r["migration_delay_s"] / r["delivered_delay_s"] for r in rs
               if r.get("delivered_delay_s") and r.get("migration_delay_s") is not None]
        gaps = [r["gap_pct"] for r in rs if r.get("gap_pct") is not None]
        gap_fin = [g for g in gaps if not math.isinf(g)]
        gap_txt = "" if not gaps else (
            f"{fmt(sum(gap_fin) / len(gap_fin), '.2f')}%" if gap_fin else "inf") + (
            f" ({len(gaps) - len(gap_fin)} inf)" if len(gap_fin) < len(gaps) else "")
        rows.append([
            lab, mean_txt, fmt(sum(deliv) / len(deliv), ".4f") if deliv else "n/a",
            f"{100 * sum(mig) / len(mig):.1f}%" if mig else "n/a",
            fmt(sum(r.get("qos_violating_users") or 0 for r in rs) / len(rs), ".2f"),
            fmt(sum(r.get("undelivered_users") or 0 for r in rs) / len(rs), ".2f"),
            gap_txt, fmt(sum(r.get("solve_time_s") or 0 for r in rs) / len(rs), ".2f"),
            f"{len(rs)}", f"{sum(1 for r in failed if r.get('solver_label') == lab)}"])

    def rank_key(row):
        t = row[1]
        if t.startswith("inf"):  # fewer incomplete runs first, then the finite part
            inc = int(t.split("(")[1].split("/")[0])
            try:
                return (1, inc, float(row[2]))
            except ValueError:
                return (1, inc, INF)
        try:
            return (0, 0, float(t))
        except ValueError:
            return (2, 0, 0.0)

    rows.sort(key=rank_key)
    for i, r in enumerate(rows, 1):
        r.insert(0, i)
    doc.table(["rank", "solver", "mean delay s", "mean delivered delay s", "migration share",
               "users below QoS", "undelivered users", "gap to bound", "solve s", "runs",
               "failed"], rows,
              "Ranked by mean total delay; a solver with any incomplete run ranks below every "
              "complete one (fewer incomplete runs first). Delivered delay: the finite part.")


def _point_table(doc, done, x, panel, axes, x_label) -> None:
    """Mean total delay per grid point and solver (the delay figure's numbers), with the mean
    migration share of the delivered delay in brackets."""
    if x is None:
        return
    data = curves(done, "total_delay_s", x, panel, axes)
    mig_rows = [dict(r, mig_share=(r["migration_delay_s"] / r["delivered_delay_s"]
                                   if r.get("delivered_delay_s") and
                                   r.get("migration_delay_s") is not None else None))
                for r in done]
    mig = curves(mig_rows, "mig_share", x, panel, axes)
    series = sorted({s for ser in data.values() for s in ser})

    def unkey(v):
        return json.loads(v) if isinstance(v, str) and v.startswith("[") else v

    keys = sorted({(pv, xv) for pv, ser in data.items() for d in ser.values() for xv in d},
                  key=lambda k: tuple(_sort_key(unkey(v)) if v is not None else (0,)
                                      for v in k))
    rows = []
    for pv, xv in keys:
        label = _axis_text(unkey(xv)) if xv is not None else "all"
        if panel:
            label = f"{panel}={_axis_text(unkey(pv))}, {label}"
        row = [label]
        for s in series:
            a = data[pv].get(s, {}).get(xv)
            if a is None or not a["n"]:
                row.append("")
                continue
            m = mig[pv].get(s, {}).get(xv, {}).get("finite_mean")
            share = f" [{100 * m:.0f}%]" if m is not None else ""
            row.append(f"inf ({a['incomplete']}/{a['n']})" if math.isinf(a["mean"])
                       else f"{a['mean']:.3f}{share}")
        rows.append(row)
    doc.h(2, "Mean total delay per point (s)")
    doc.table([x_label or x] + series, rows,
              "Mean over seeds; [migration share of the delivered delay]; inf (k/n): k of n "
              "seeds left a requested PB undelivered")


def _reduction_tables(doc, done, labels, spec) -> None:
    red = reductions(done, labels)
    if len(labels) < 2:
        return
    doc.h(2, "Relative delay reduction")
    rows = []
    for a in labels:
        row = [a]
        for b in labels:
            if a == b:
                row.append("")
                continue
            d = red[(a, b)]
            cell = fmt(d["mean"], ".2f") + "%" if d["mean"] is not None else "n/a"
            extra = []
            if d["a_only_complete"]:
                extra.append(f"+{d['a_only_complete']} where only {a} completes")
            if d["b_only_complete"]:
                extra.append(f"{d['b_only_complete']} where only {b} completes")
            row.append(cell + (" (" + "; ".join(extra) + ")" if extra else ""))
        rows.append(row)
    doc.table(["row vs column"] + labels, rows,
              "Mean over paired runs (same instance and seed) of 100 (T_col - T_row) / T_col: "
              "positive = the row solver is faster. Pairs where a plan is incomplete (infinite "
              "delay) are counted next to the mean, not in it.")
    paper = spec.get("paper") or {}
    ref = paper.get("ours")
    pv = paper.get("reductions") or {}
    if ref and pv and ref in labels:
        rows = []
        for b, val in pv.items():
            d = red.get((ref, b)) if b in labels else None
            ours = (fmt(d["mean"], ".2f") + "%") if d and d["mean"] is not None else "n/a"
            rows.append([b, f"{val:.2f}%", ours, d["pairs"] if d else 0])
        doc.table(["against", f"paper ({paper.get('proposed', 'MAASN-DA')})",
                   f"ours ({ref})", "paired runs"], rows,
                  f"The paper's reductions of {paper.get('proposed', 'MAASN-DA')} next to ours "
                  f"for {ref}")


def _instance_table(doc, done, x, x_label, panel=None) -> None:
    if not done or "inst_storage_binding_share" not in done[0]:
        return
    by = defaultdict(dict)
    for r in done:
        xv = _axis_key(_x_value(r, x)) if x else None
        pv = _axis_key(_x_value(r, panel)) if panel else None
        by[(pv, xv)][instance_key(r)] = r

    def unkey(v):
        return json.loads(v) if isinstance(v, str) and v.startswith("[") else v

    def order(key):
        return tuple(_sort_key(unkey(v)) if v is not None else (0,) for v in key)

    rows = []
    for key in sorted(by, key=order):
        pv, xv = key
        label = _axis_text(unkey(xv)) if xv is not None else "-"
        if panel:
            label = f"{panel}={_axis_text(unkey(pv))}, {label}"
        insts = list(by[key].values())
        n = len(insts)
        rows.append([
            label, n, f"{sum(r['inst_N'] for r in insts) / n:g}",
            f"{sum(r['inst_U'] for r in insts) / n:g}",
            f"{sum(r['inst_storage_bytes'] for r in insts) / n / 1e9:.3g}",
            f"{sum(r['inst_local_demand_max_bytes'] for r in insts) / n / 1e9:.3g}",
            f"{sum(r['inst_requested_unique_bytes'] for r in insts) / n / 1e9:.3g}",
            f"{100 * sum(r['inst_storage_binding_share'] for r in insts) / n:.0f}%",
            f"{sum(r.get('inst_requesters_per_pb', 0) for r in insts) / n:.2f}"
            if all("inst_requesters_per_pb" in r for r in insts) else "n/a"])
    doc.table([x_label or "point", "instances", "N", "U", "C_n GB",
               "max own-cell demand GB", "requested unique GB", "nodes where storage binds",
               "requesters per requested PB"],
              rows, "Does storage bind? A node binds when the unique bytes its own users request "
              "exceed C_n (means over the instances of each point).")
