"""Reports: figures + CSVs + index pages from a store; incomplete plans (null total delay) are
infinite, never 0, never dropped, and rank last; reductions; the oracle-level figures."""

from __future__ import annotations

import math
import textwrap

import pytest

from fgamcd_opt.cli.report import main as report_main
from fgamcd_opt.experiments.executors import InlineExecutor
from fgamcd_opt.experiments.reporting import aggregate, build_report, reductions
from fgamcd_opt.experiments.spec import load_spec
from fgamcd_opt.experiments.sweep import run_sweep

SPEC = """
name = "rep"
title = "tiny report"
scenario = "tiny"
seeds = 2
[axes]
storage_gb = [0.02, 0.2]
[[solvers]]
name = "nocoop"
[[solvers]]
name = "hybrid"
params = { eps_hot = 1 }
[[solvers]]
name = "milp"
[report]
x = "storage_gb"
notes = "A note paragraph."
[paper]
ours = "milp"
reductions = { nocoop = 20.0 }
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    (d / "spec.toml").write_text(textwrap.dedent(SPEC))
    spec = load_spec(d / "spec.toml")
    run_sweep(spec, d / "out", InlineExecutor(), progress=False, command="test")
    return d / "out"


def test_report_files_and_pages(swept):
    md = build_report(swept)
    text = md.read_text()
    figs = swept / "figures"
    for name in ("rep-delay", "rep-runtime", "rep-gap"):
        for ext in (".png", ".pdf", ".csv"):
            assert (figs / f"{name}{ext}").stat().st_size > 0, name + ext
        assert f"figures/{name}.png" in text
    html = (swept / "index.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") >= 3
    assert "src=\"figures/" not in html  # self-contained
    assert "A note paragraph." in text and "Relative delay reduction" in text
    assert "paper (MAASN-DA)" in text and "20.00%" in text
    assert "`test`" in text  # the command that filled the store


def test_incomplete_runs_are_infinite_and_rank_last(swept):
    build_report(swept)
    text = (swept / "index.md").read_text()
    # at C_n = 0.02 GB nocoop leaves users without their PBs: infinite delay, shown as such
    rank_rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "/4 incomplete" in ln]
    assert rank_rows, "an incomplete solver must show 'inf (k/n incomplete)'"
    csv = (swept / "figures" / "rep-delay.csv").read_text().splitlines()
    nocoop_small = [ln for ln in csv if ln.startswith("nocoop,0.02,")]
    assert nocoop_small and nocoop_small[0].split(",")[3] == "inf"
    table = [ln for ln in text.splitlines() if ln.startswith("| 1 |") or ln.startswith("| 2 |")
             or ln.startswith("| 3 |")]
    ranks = [ln.split("|")[2].strip() for ln in table]
    incomplete = [ln.split("|")[2].strip() for ln in table if "incomplete" in ln]
    assert ranks[-len(incomplete):] == incomplete if incomplete else True


def test_aggregate_and_reductions_treat_null_as_infinite():
    a = aggregate([1.0, math.inf, 3.0])
    assert math.isinf(a["mean"]) and a["incomplete"] == 1 and a["lo"] == 1.0
    assert aggregate([2.0, 4.0])["mean"] == 3.0
    rows = []
    for rep, (ta, tb) in enumerate([(1.0, 2.0), (3.0, 4.0), (1.0, None), (None, None)]):
        rows += [{"solver_label": "A", "point": {"x": 1}, "replicate": rep,
                  "total_delay_s": ta},
                 {"solver_label": "B", "point": {"x": 1}, "replicate": rep,
                  "total_delay_s": tb}]
    red = reductions(rows, ["A", "B"])
    ab = red[("A", "B")]
    assert ab["pairs"] == 2 and ab["mean"] == pytest.approx((50.0 + 25.0) / 2)
    assert ab["a_only_complete"] == 1 and ab["both_incomplete"] == 1
    assert red[("B", "A")]["b_only_complete"] == 1


def test_report_cli_bad_store_is_one_line(tmp_path, capsys):
    (tmp_path / "store.jsonl").write_text("hello\n")
    assert report_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a fgamcd-sweep-store header" in err
    assert report_main([str(tmp_path / "missing")]) == 2


def test_oracle_level_figures_on_tiny(tmp_path):
    from fgamcd_opt.experiments.figures import run_figure

    specs = {
        "cdf": 'kind = "rate-cdf"\n[options]\nerror_c = [1e11, 1e10]\ndraws = 30\ncases = 3\n',
        "beams": 'kind = "beampattern"\n[options]\ncases = 1\npoints = 181\n',
        "times": 'kind = "oracle-time"\n[options]\ngrid = [[3, 4]]\nseeds = [1]\ncases = 2\n',
    }
    for name, body in specs.items():
        p = tmp_path / f"{name}.toml"
        kind, opts = body.split("\n", 1)
        p.write_text(f'name = "{name}"\nscenario = "tiny"\n{kind}\n[params]\nstorage_gb = 0.2\n'
                     + opts)
        out = tmp_path / name
        md = run_figure(load_spec(p), out, command="t").read_text()
        assert "| " in md
        if name != "times":
            assert list((out / "figures").glob("*.png"))
    cdf = (tmp_path / "cdf" / "index.md").read_text()
    # the robust beams never fall below their own worst-case rate: a draw inside the ellipsoid
    # cannot do worse than the exact worst case
    from fgamcd_opt.experiments.store import read_store

    _, rows = read_store(tmp_path / "cdf")
    robust = [r for r in rows if r["method"] == "fast" and not r.get("excluded")]
    assert robust
    for r in robust:
        q = r["qos_bps"]
        floor = [w / qq for w, qq in zip(r["worst_case_bps"], q, strict=True)]
        assert min(r["rate_over_qos"]) >= min(floor) * (1 - 1e-9)
    assert "robust" in cdf
    # the robust vs non-robust difference in a figure of its own, with its provenance
    assert (tmp_path / "cdf" / "figures" / "cdf-worstcase.png").stat().st_size > 0
    wc = (tmp_path / "cdf" / "figures" / "cdf-worstcase.csv").read_text().splitlines()
    assert wc[0].startswith("error_c,method,users,users_below_qos_worst_case_pct")
    assert {ln.split(",")[1] for ln in wc[1:]} == {"fast", "nonrobust"}


# ---- figures: provenance, the paper's method, markers, scales -------------------------------
def _agg(mean, n=2, inc=0):
    return {"n": n, "mean": mean, "lo": None if mean == math.inf else mean,
            "hi": None if mean == math.inf else mean, "incomplete": inc}


def test_incomplete_markers_never_overlap():
    """Six series incomplete at four close x values (fig18's 12-30 GB, regime's panels): every
    k/n label and every triangle gets its own place."""
    from fgamcd_opt.experiments.plotting import draw_curves

    xs = [12.0, 16.0, 20.0, 30.0, 125.0]
    series = {f"s{i}": {x: (_agg(math.inf, 2, 2) if x <= 30 - 4 * i else _agg(2.0 + i / 10))
                        for x in xs} for i in range(6)}
    for panels in ({None: series}, {20: series, 40: series}):
        fig, _ = draw_curves(panels, "delay (s)", "storage_gb", "n_users" if len(panels) > 1
                             else None, "t", "C_n (GB)", footer="spec t (hash abc)")
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            labels = [t.get_window_extent(renderer) for t in ax.texts
                      if t.get_gid() == "incomplete-label"]
            marks = [ln.get_window_extent(renderer) for ln in ax.lines
                     if ln.get_gid() == "incomplete-marker"]
            assert len(labels) == len(marks) == sum(1 for i in range(6) for x in xs
                                                    if x <= 30 - 4 * i)
            for group in (labels, marks):
                for i, a in enumerate(group):
                    for b in group[i + 1:]:
                        assert not a.overlaps(b), (a, b)
            top = ax.get_window_extent(renderer).y1
            assert all(b.y0 >= top for b in labels + marks)  # above the plot, not on data
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_scales_true_positions_paper_style_and_footer():
    import matplotlib.pyplot as plt

    from fgamcd_opt.experiments.plotting import draw_curves

    data = {None: {"milp": {0.0: _agg(1.38), 0.087: _agg(1.35), 0.3341: _agg(1.25)},
                   "coarse": {0.0: _agg(1.38), 0.087: _agg(1.38), 0.3341: _agg(1.38)}}}
    fig, _ = draw_curves(data, "delay (s)", "reuse_ratio", None, "t", "reuse",
                         footer="spec fig13 (hash e955ea5da916eed5)  |  command: fgamcd-bench x",
                         paper={"milp": "stand-in for MAASN-DA"})
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_yscale() == "linear"
    lines = {ln.get_label(): ln for ln in ax.lines}
    ours = lines["milp (stand-in for MAASN-DA)"]
    # no point is shifted: x = 0 stays at 0 (fig13 drew one at a negative reuse ratio)
    assert list(ours.get_xdata()) == [0.0, 0.087, 0.3341]
    assert list(lines["coarse"].get_xdata()) == [0.0, 0.087, 0.3341]
    assert ours.get_color() == "black" and ours.get_linewidth() > lines["coarse"].get_linewidth()
    assert ours.get_marker() == "*"
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "hash e955ea5da916eed5" in texts and "command: fgamcd-bench x" in texts
    plt.close(fig)
    # C_n from 12 to 375 GB and solve times over decades: logarithmic axes
    data = {None: {"maasn": {12.0: _agg(0.5), 375.0: _agg(40.0)},
                   "nocoop": {12.0: _agg(0.01), 375.0: _agg(0.02)}}}
    fig, _ = draw_curves(data, "solve time (s)", "storage_gb", None, "t", "C_n",
                         paper={"maasn": "MAASN-DA, the paper's method"})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "maasn (MAASN-DA, the paper's method)" in [ln.get_label() for ln in ax.lines]
    plt.close(fig)


def test_paper_series_names_the_method_or_its_stand_in():
    from fgamcd_opt.experiments.reporting import paper_series

    rows = [{"solver_label": "milp", "solver_class": "milp", "point": {"x": 1}},
            {"solver_label": "maasn-ft", "solver_class": "maasn", "point": {"x": 1}},
            {"solver_label": "hybrid-2", "solver_class": "hybrid", "point": {"x": 1}}]
    got = paper_series(rows, ["x"], "x", None, {"paper": {"ours": "milp"}})
    assert got == {"milp": "stand-in for MAASN-DA",
                   "maasn-ft": "MAASN-DA, the paper's method"}
