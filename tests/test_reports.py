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
