"""Drawing the sweep figures (matplotlib, Agg): curves per solver against the x axis, the
paper's method in a style of its own, incomplete plans as k/n markers above the plot, axis
scales that fit the data, and the figure's provenance printed on the image.

Rules (docs/experiments.md, "Reports"):

- a numeric axis whose positive values span a factor of 10 or more is logarithmic;
- points sit at their true x (no sideways shift on a numeric axis: a point at x = 0 stays at
  0); coincident series stay visible through hollow markers of decreasing size; only a
  categorical axis spreads series sideways, inside each category's slot;
- an incomplete mean (some seed left a requested PB undelivered: infinite delay) is a triangle
  with its k/n above the axes, in lanes allocated so that no two labels overlap;
- the paper's method (``maasn``, MAASN-DA) or the solver that stands in for it (the spec's
  ``[paper] ours``) is drawn thick and black with star markers, and its legend entry says which;
- the footer carries the spec, its hash, the seeds, the size, the code and the command.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

PAPER_METHOD = "MAASN-DA"
PAPER_SOLVER = "maasn"
LANE_PT = 19.0  # height of one lane of k/n markers above the axes, points
LOG_SPAN = 10.0  # positive values spanning this factor or more get a log axis


def _unkey(v):
    return json.loads(v) if isinstance(v, str) and v.startswith("[") else v


def _sort_key(v):
    v = _unkey(v)
    if v is None:
        return (0,)
    if isinstance(v, list | tuple):
        return tuple(float(x) for x in v)
    return (v,) if isinstance(v, int | float) else (0, str(v))


def _axis_text(v) -> str:
    v = _unkey(v)
    if isinstance(v, list | tuple):
        return "-".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else ("" if v is None else str(v))


def spans_decades(values) -> bool:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) >= LOG_SPAN


def paper_label(solver_label: str, solver: str, ours: str | None) -> str | None:
    """The legend note of the paper's method or its stand-in (None for other solvers)."""
    if solver == PAPER_SOLVER or solver_label == PAPER_SOLVER:
        return f"{PAPER_METHOD}, the paper's method"
    if ours and solver_label == ours:
        return f"stand-in for {PAPER_METHOD}"
    return None


def allocate_lanes(intervals: list[tuple[float, float]]) -> list[int]:
    """Lane per interval (pixel spans, in drawing order) such that intervals sharing a lane do
    not overlap: greedy, lowest free lane first."""
    ends: list[list[tuple[float, float]]] = []
    out = []
    for lo, hi in intervals:
        for i, lane in enumerate(ends):
            if all(hi <= a or lo >= b for a, b in lane):
                lane.append((lo, hi))
                out.append(i)
                break
        else:
            ends.append([(lo, hi)])
            out.append(len(ends) - 1)
    return out


def add_footer(fig, text: str, width: int = 150) -> None:
    """The provenance line(s) at the bottom of the image."""
    if text:
        fig.text(0.01, 0.004, textwrap.fill(text, width), fontsize=6, color="#444",
                 va="bottom", ha="left", family="monospace")


def footer_lines(text: str, width: int = 150) -> int:
    return len(textwrap.wrap(text, width)) if text else 0


def plot_curves(data, metric: str, metric_label: str, x: str | None, panel: str | None,
                path: Path, title: str, x_label: str, logy: bool | None = None,
                footer: str = "", paper: dict | None = None) -> list[dict] | None:
    """Draw ``data`` ({panel: {series: {x: aggregate}}}) to ``path``.png/.pdf; returns the
    rows of the CSV it is drawn from (None when there is nothing to draw).

    logy : True/False, or None to decide from the data (:func:`spans_decades`).
    paper : series name -> legend note, for the paper's method or its stand-in.
    """
    import matplotlib.pyplot as plt

    drawn = draw_curves(data, metric_label, x, panel, title, x_label, logy, footer, paper)
    if drawn is None:
        return None
    fig, csv_rows = drawn
    fig.savefig(path.with_suffix(".png"), dpi=110)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    return csv_rows


def draw_curves(data, metric_label: str, x: str | None, panel: str | None, title: str,
                x_label: str, logy: bool | None = None, footer: str = "",
                paper: dict | None = None):
    """(figure, CSV rows) of :func:`plot_curves`, not saved (None when there is nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    paper = paper or {}
    panels = sorted(data, key=_sort_key)
    if not any(a["n"] for ser in data.values() for d in ser.values() for a in d.values()):
        return None
    finite_y = [v for ser in data.values() for d in ser.values() for a in d.values()
                for v in (a["mean"], a["lo"], a["hi"])
                if v is not None and not math.isinf(v)]
    if logy is None:
        logy = spans_decades(finite_y) and len(finite_y) > 1
    xs_every = sorted({xv for ser in data.values() for d in ser.values() for xv in d
                       if xv is not None}, key=_sort_key)
    categorical = x is None or any(not isinstance(_unkey(v), int | float) for v in xs_every)
    logx = not categorical and spans_decades([_unkey(v) for v in xs_every])
    n_panels = len(panels)
    fig, axs = plt.subplots(1, n_panels, figsize=(6.4 * n_panels ** 0.75 + 0.5, 4.6),
                            squeeze=False, sharey=True)
    series_all = sorted({s for ser in data.values() for s in ser})
    others = [s for s in series_all if s not in paper]
    cmap = plt.get_cmap("tab10")
    colour = {s: cmap(i % 10) for i, s in enumerate(others)}
    colour.update({s: "black" for s in paper})
    markers = "osDvPXh<>p"  # "^" marks incomplete points, "*" the paper's method
    marker = {s: markers[i % len(markers)] for i, s in enumerate(others)}
    marker.update({s: "*" for s in paper})
    size = {s: max(3.5, 7.5 - 0.6 * i) for i, s in enumerate(others)}
    size.update({s: 11.0 for s in paper})
    csv_rows: list[dict] = []
    marks = []  # (ax, x position, series, aggregate)
    for ax, pv in zip(axs[0], panels, strict=True):
        ser = data[pv]
        refs = {s: d[None] for s, d in ser.items() if x is not None and set(d) == {None}}
        ser = {s: d for s, d in ser.items() if s not in refs}
        for j, (s, a) in enumerate(sorted(refs.items())):
            csv_rows.append({"panel": pv, "series": s, "x": "all", **_agg(a)})
            if a["mean"] is not None and not math.isinf(a["mean"]):
                ax.axhline(a["mean"], color=colour[s], ls=(0, (4, 2)),
                           lw=2.6 if s in paper else 1.4, label=f"{s} (does not vary)")
                if a["hi"] != a["lo"]:
                    ax.axhspan(a["lo"], a["hi"], color=colour[s], alpha=0.08, lw=0)
            elif a["mean"] is not None:
                ax.annotate(f"{s}: incomplete in {a['incomplete']}/{a['n']} (infinite delay)",
                            (0.01, 0.98 - 0.05 * j), xycoords="axes fraction", fontsize=7,
                            va="top", color=colour[s])
        xs_all = sorted({xv for d in ser.values() for xv in d}, key=_sort_key)
        pos = {xv: (i if categorical else float(_unkey(xv))) for i, xv in enumerate(xs_all)}
        order = sorted(ser, key=lambda s: (s in paper, s))  # the paper's method on top
        for i, s in enumerate(order):
            d = ser[s]
            pts = [xv for xv in xs_all if xv in d and d[xv]["n"]]
            for xv in pts:
                csv_rows.append({"panel": pv, "series": s, "x": xv, **_agg(d[xv])})
            fin = [xv for xv in pts if d[xv]["mean"] is not None
                   and not math.isinf(d[xv]["mean"])]
            # categorical: spread sideways inside the category (never past its slot)
            off = (i - (len(order) - 1) / 2) * min(0.06, 0.5 / max(len(order), 1)) \
                if categorical else 0.0
            px = [pos[xv] + off for xv in fin]
            mine = s in paper
            ax.plot(px, [d[xv]["mean"] for xv in fin], marker=marker[s], color=colour[s],
                    label=s + (f" ({paper[s]})" if mine else ""), lw=2.8 if mine else 1.5,
                    ms=size[s], zorder=5 if mine else 3,
                    mfc=colour[s] if (mine or i % 2 == 0) else "white", mew=1.2)
            if len(fin) > 1:
                ax.fill_between(px, [d[xv]["lo"] for xv in fin], [d[xv]["hi"] for xv in fin],
                                color=colour[s], alpha=0.10 if mine else 0.13, lw=0)
            elif len(fin) == 1 and d[fin[0]]["hi"] != d[fin[0]]["lo"]:
                a = d[fin[0]]
                ax.errorbar(px, [a["mean"]], yerr=[[a["mean"] - a["lo"]], [a["hi"] - a["mean"]]],
                            color=colour[s], capsize=3)
            for xv in pts:
                if d[xv]["mean"] is not None and math.isinf(d[xv]["mean"]):
                    marks.append((ax, pos[xv] + off, s, d[xv]))
        if logy:
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        if categorical:
            ax.set_xticks(range(len(xs_all)))
            ax.set_xticklabels([_axis_text(v) for v in xs_all])
            ax.set_xlim(-0.5, len(xs_all) - 0.5)
        elif xs_all:
            ax.set_xticks([float(_unkey(v)) for v in xs_all])
            ax.set_xticklabels([_axis_text(v) for v in xs_all], fontsize=8)
            ax.minorticks_off()
        ax.set_xlabel(x_label + (" (log scale)" if logx else ""))
        if panel:
            ax.set_title(f"{panel} = {_axis_text(pv)}", fontsize=10)
        ax.grid(alpha=0.3)
    axs[0][0].set_ylabel(metric_label + (" (log scale)" if logy else ""))
    handles, labels = axs[0][0].get_legend_handles_labels()
    seen = set(labels)
    for ax in axs[0][1:]:  # series present only in another panel
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in seen:
                handles.append(h)
                labels.append(lab)
                seen.add(lab)
    if marks:
        handles.append(Line2D([], [], marker="^", color="grey", ls="none", markeredgecolor="k"))
        labels.append("incomplete (infinite delay): k of n seeds")
    ncol = min(4 if n_panels > 1 else 3, max(1, len(labels)))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False,
               markerscale=0.7,
               bbox_to_anchor=(0.5, 0.012 + 0.022 * footer_lines(footer)))
    fig.suptitle(textwrap.fill(title, 90), fontsize=10)
    add_footer(fig, footer + ("  |  line: mean over seeds; band: min-max over seeds"
                              if footer else "line: mean over seeds; band: min-max over seeds"))
    legend_rows = math.ceil(len(labels) / ncol)
    bottom = 0.05 + 0.045 * legend_rows + 0.022 * footer_lines(footer)
    top = 0.95 if "\n" not in textwrap.fill(title, 90) else 0.9
    fig.tight_layout(rect=(0, bottom, 1, top))
    if marks:
        _place_marks(fig, axs[0], marks, colour, top)
    return fig, csv_rows


def _agg(a: dict) -> dict:
    return {"n": a["n"], "mean": a["mean"], "lo": a["lo"], "hi": a["hi"],
            "incomplete": a["incomplete"]}


def _place_marks(fig, axes, marks, colour, top: float) -> None:
    """Triangles with their k/n above each axes, one label per lane slot: lanes are allocated
    from the labels' real pixel extents so that no two overlap; the axes shrink to make room."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    dpi_pt = fig.dpi / 72.0
    per_ax: dict = {}
    for ax, xpos, s, a in marks:
        per_ax.setdefault(ax, []).append((xpos, s, a))
    lanes_needed = 1
    placed = []
    for ax, items in per_ax.items():
        items.sort(key=lambda t: (t[1], t[0]))  # series by series, left to right
        spans = []
        for xpos, _s, a in items:
            px = ax.transData.transform((xpos, 0))[0]
            probe = ax.text(0, 0, f"{a['incomplete']}/{a['n']}", fontsize=7)
            # the label or the triangle (7 pt), whichever is wider, plus a margin
            w = max(probe.get_window_extent(renderer).width, 8 * dpi_pt) + 4 * dpi_pt
            probe.remove()
            spans.append((px - w / 2, px + w / 2))
        lanes = allocate_lanes(spans)
        lanes_needed = max(lanes_needed, max(lanes) + 1)
        placed.append((ax, items, lanes))
    # room above the axes for the lanes (points -> figure fraction)
    need = (lanes_needed * LANE_PT + 6) * dpi_pt / fig.bbox.height
    ax_top = max(ax.get_position().y1 for ax in axes)
    if ax_top + need > top:
        fig.subplots_adjust(top=max(0.3, top - need))
    from matplotlib.transforms import offset_copy

    for ax, items, lanes in placed:
        for (xpos, s, a), lane in zip(items, lanes, strict=True):
            y = 6 + lane * LANE_PT  # the triangle's centre, points above the axes
            ax.plot([xpos], [1.0], ls="none", marker="^", ms=7, color=colour[s],
                    markeredgecolor="k", clip_on=False, gid="incomplete-marker",
                    transform=offset_copy(ax.get_xaxis_transform(), fig=fig, y=y,
                                          units="points"))
            ax.annotate(f"{a['incomplete']}/{a['n']}", (xpos, 1.0),
                        xycoords=("data", "axes fraction"), textcoords="offset points",
                        xytext=(0, y + 4), ha="center", va="bottom", fontsize=7,
                        color=colour[s], annotation_clip=False, gid="incomplete-label")
            if lane:  # a thin stem from the axes up to the lane, so the x stays readable
                ax.annotate("", (xpos, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(0, y - 4), textcoords="offset points",
                            arrowprops={"arrowstyle": "-", "color": colour[s], "lw": 0.6,
                                        "ls": ":"}, annotation_clip=False)
