"""Provenance of stored results (issue 19): rows carry the code that made them and a checksum;
rows of other code are run again (or kept, or refused, as asked); an edited row or a row that is
not a cell of the spec is left out and counted; --compare takes a relative tolerance; format-1
stores are read with a warning and never appended to. One tiny spec, inline, nocoop only."""

from __future__ import annotations

import json
import textwrap

import pytest

from fgamcd_opt.cli.report import main as report_main
from fgamcd_opt.experiments import provenance
from fgamcd_opt.experiments.executors import InlineExecutor
from fgamcd_opt.experiments.reporting import build_report
from fgamcd_opt.experiments.spec import load_spec
from fgamcd_opt.experiments.store import StoreError, load_store
from fgamcd_opt.experiments.sweep import run_sweep

SPEC = """
name = "p"
scenario = "tiny"
seeds = 1
[axes]
storage_gb = [0.05, 0.2]
[[solvers]]
name = "nocoop"
"""


@pytest.fixture
def swept(tmp_path):
    (tmp_path / "spec.toml").write_text(textwrap.dedent(SPEC))
    spec = load_spec(tmp_path / "spec.toml")
    out = tmp_path / "out"
    run_sweep(spec, out, InlineExecutor(), progress=False, command="test")
    return spec, out


def _lines(out):
    return (out / "store.jsonl").read_text().splitlines()


def _write(out, lines):
    (out / "store.jsonl").write_text("\n".join(lines) + "\n")


def test_header_and_rows_carry_code_identity_and_checksums(swept):
    spec, out = swept
    header, *rows = [json.loads(x) for x in _lines(out)]
    now = provenance.code_identity()
    assert header["format"] == 2 and header["code"] == now and provenance.check_row(header)
    assert sorted(header["cells"]) == sorted(c["cell"] for c in spec.cells())
    assert header["solvers_resolved"]["nocoop"]["grouping"] is True  # defaults filled in
    assert len(rows) == 2 and all(provenance.check_row(r) and r["code"] == now for r in rows)
    assert all(r["params"] == header["solvers_resolved"]["nocoop"] for r in rows)


def test_rows_of_other_code_are_rerun_kept_or_refused(swept, monkeypatch, capsys):
    spec, out = swept
    real = provenance.code_identity()
    monkeypatch.setattr(provenance, "code_identity",
                        lambda: {"version": real["version"], "source": "0123456789abcdef"})
    counts = run_sweep(spec, out, InlineExecutor(), progress=False)
    assert counts["ran"] == 2 and counts["other_code"] == 2  # not reused silently
    err = capsys.readouterr().err
    assert "2 row(s)" in err and "made by other code" in err and "run again" in err
    assert run_sweep(spec, out, InlineExecutor(), progress=False, other_code="accept")["ran"] == 0
    monkeypatch.setattr(provenance, "code_identity", lambda: real)
    with pytest.raises(StoreError, match="made by other code.*refusing"):
        run_sweep(spec, out, InlineExecutor(), progress=False, other_code="refuse")
    # the report says which code made the rows
    text = build_report(out).read_text()
    assert "made by other code than the installed" in text


def test_an_edited_row_is_left_out_counted_and_rerun(swept, capsys):
    spec, out = swept
    lines = _lines(out)
    row = json.loads(lines[1])
    assert row["delivered_delay_s"] is not None
    row["delivered_delay_s"] *= 1.5  # valid JSON, a plausible number
    lines[1] = json.dumps(row)
    _write(out, lines)
    view = load_store(out)
    assert len(view.rows) == 1 and view.ignored == {
        "checksum mismatch (edited after it was written)": 1}
    assert "1 (checksum mismatch (edited after it was written))" in build_report(out).read_text()
    counts = run_sweep(spec, out, InlineExecutor(), progress=False)
    assert counts["ran"] == 1 and counts["rejected"] == 1
    assert "not used: line 2 (checksum mismatch" in capsys.readouterr().err
    # an edited header is refused outright
    lines = _lines(out)
    header = json.loads(lines[0])
    header["spec_hash"] = "0" * 16
    _write(out, [json.dumps(header)] + lines[1:])
    with pytest.raises(StoreError, match="header's checksum does not match"):
        load_store(out)


def test_rows_that_are_not_cells_of_the_spec_are_ignored_and_counted(swept):
    _, out = swept
    lines = _lines(out)
    foreign = json.loads(lines[1])
    foreign.pop(provenance.CHECKSUM_FIELD)
    foreign.update(cell="feedfacefeedface", total_delay_s=0.001)
    _write(out, lines + [json.dumps(provenance.with_checksum(foreign))])
    view = load_store(out)
    assert len(view.rows) == 2 and view.ignored == {"not a cell of the spec": 1}
    text = build_report(out).read_text()
    assert "Rows left out: 1 (not a cell of the spec)" in text


def test_compare_takes_a_relative_tolerance(swept, tmp_path, capsys):
    _, out = swept
    other = tmp_path / "other"
    other.mkdir()
    lines = _lines(out)
    row = json.loads(lines[1])
    row.pop(provenance.CHECKSUM_FIELD)
    row["delivered_delay_s"] *= 1 + 1e-13  # a last-digit difference
    (other / "store.jsonl").write_text("\n".join(
        [lines[0], json.dumps(provenance.with_checksum(row)), lines[2]]) + "\n")
    assert report_main([str(out), "--compare", str(other)]) == 0
    assert "same rows" in capsys.readouterr().out
    assert report_main([str(out), "--compare", str(other), "--rtol", "0"]) == 1
    assert "delivered_delay_s" in capsys.readouterr().out


def test_format_1_stores_are_read_with_a_warning_and_never_appended_to(swept):
    spec, out = swept
    lines = _lines(out)
    header = json.loads(lines[0])
    old_header = {k: v for k, v in header.items() if k not in ("code", "cells",
                                                               provenance.CHECKSUM_FIELD)}
    old_header["format"] = 1
    old_rows = []
    for line in lines[1:]:
        r = json.loads(line)
        for k in ("code", provenance.CHECKSUM_FIELD):
            r.pop(k)
        old_rows.append(json.dumps(r))
    _write(out, [json.dumps(old_header)] + old_rows)
    assert "Provenance unknown" in build_report(out).read_text()
    with pytest.raises(StoreError, match="store format 1.*cannot be checked or reused"):
        run_sweep(spec, out, InlineExecutor(), progress=False)
