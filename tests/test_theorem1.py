"""Theorem 1's bound (eqs. 34-35, docs/theorem1.md): hand-computed parts, the properties the
formula implies, the grid search and the ``fgamcd theorem1`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fgamcd_opt.cli.main import main
from fgamcd_opt.errors import ParameterError
from fgamcd_opt.marl.theorem1 import (
    Theorem1Constants,
    bound_parts,
    effective_samples,
    minimise,
    nu_max_parts,
    optimal_k_prime,
    output_norm_bound,
    parse_axis,
    valley_xi,
)

C = Theorem1Constants()


# ---- the parts at the paper's point, by hand ----------------------------------------------
def test_parts_at_the_paper_point_by_hand():
    # section V-C constants: B = 1, psi = 0.5, phi_in = 0.5, phi_out = 10, vs = 0.1, U = 201,
    # L = 46.2, gamma = 0.95, K = 450, E = 600; theta = 1 (assumed)
    m = 0.5 * 0.5 * math.sqrt(2) * 2 + math.sqrt(2)  # 0.5^450 is 3e-136: dropped
    assert m == pytest.approx(1.5 * math.sqrt(2)) and output_norm_bound(C) == pytest.approx(m)
    kp = 450 * (1 + 0.8 - 0.8 / 1.12 * m)  # eq. 47
    assert kp == pytest.approx(128.147, abs=1e-3)
    v = 1 / 0.05  # V = 20
    bias = 4 * (v - 0.1 * 46.2) ** 2  # 4 * 15.38^2
    assert bias == pytest.approx(946.1776)
    d1 = 8 * math.sqrt(2 * kp) + 256 / v
    d2 = 4 * math.sqrt(2 * kp) + 52
    var = d1 * v ** 2 * math.log(201) / kp + d2 * v ** 2 * 0.1
    alg = 4 * 0.95 ** 601 * 1 / 0.05 ** 2
    stat = 2 * 0.95 / 0.05 ** 2 * (math.sqrt(bias + var) + 1.12 * (1 + 0.95 * 10 * 0.5))
    p = bound_parts(0.8, 1.12, C)
    assert bool(p.valid)
    assert float(p.k_prime) == pytest.approx(kp, rel=1e-12)
    assert float(p.nu_bias) == pytest.approx(bias, rel=1e-12)
    assert float(p.nu_variance) == pytest.approx(var, rel=1e-12)
    assert float(p.algorithmic) == pytest.approx(alg, rel=1e-12) and alg < 1e-10
    assert float(p.statistical) == pytest.approx(stat, rel=1e-12)
    assert float(p.total) == pytest.approx(72528.597, rel=1e-7)


def test_proof_form_takes_the_esn_term_out_of_the_factor():
    a = bound_parts(0.8, 1.12, C)
    b = bound_parts(0.8, 1.12, C, proof_form=True)
    factor = 2 * 0.95 / 0.05 ** 2
    esn = 1.12 * (1 + 0.95 * 10 * 0.5)
    assert float(a.total - b.total) == pytest.approx((factor - 1) * esn, rel=1e-9)


# ---- properties the formula implies --------------------------------------------------------
def test_k_prime_monotonicity_and_the_markov_clip():
    t = np.linspace(0.1, 1, 10)[:, None]
    x = np.linspace(0.5, 4, 50)[None, :]
    kp = effective_samples(t, x, C)
    assert (np.diff(kp, axis=1) > 0).all()  # a looser filter accepts more
    m = output_norm_bound(C)
    below, above = x[0] < m, x[0] > m
    assert (np.diff(kp[:, below], axis=0) < 0).all()  # xi < M: the printed bound loses samples
    assert (np.diff(kp[:, above], axis=0) > 0).all()
    assert effective_samples(0.7, m, C) == pytest.approx(450)
    clipped = effective_samples(t, x, C, clip_markov=True)
    assert (clipped >= 450 - 1e-9).all() and (clipped <= 450 * (1 + t) + 1e-9).all()


def test_nu_max_falls_then_rises_in_k_prime_around_k_star():
    ks = optimal_k_prime(C)
    grid = np.linspace(1, 2000, 200_000)
    bias, var = nu_max_parts(grid, C)
    assert grid[np.argmin(bias + var)] == pytest.approx(ks, abs=0.02)
    assert ks == pytest.approx(127.335, abs=1e-3)
    below, above = grid < ks, grid > ks
    assert (np.diff((bias + var)[below]) < 0).all() and (np.diff((bias + var)[above]) > 0).all()
    # the statistical error, hence the bound, follows nu_max at fixed xi
    kp_lo, kp_hi = nu_max_parts(np.array([50.0, 100.0, 300.0, 900.0]), C)
    total = kp_lo + kp_hi
    assert total[0] > total[1] and total[2] < total[3]


def test_valley_puts_k_prime_at_k_star_and_passes_the_paper_point():
    t = np.array([0.1, 0.5, 0.8, 1.0])
    kp = effective_samples(t, valley_xi(t, C), C)
    np.testing.assert_allclose(kp, optimal_k_prime(C), rtol=1e-10)
    assert abs(float(valley_xi(0.8, C)) - 1.12) < 0.0015
    assert np.isnan(valley_xi(0.0, C))
    assert np.isnan(valley_xi(0.8, C, clip_markov=True))  # K* < K: unreachable when clipped


@settings(max_examples=40, deadline=None)
@given(gamma=st.floats(0.5, 0.99), varsigma=st.floats(0.01, 1.0), u=st.floats(2.0, 1e4),
       tau0=st.floats(0.05, 1.0))
def test_valley_is_the_floor_for_any_constants(gamma, varsigma, u, tau0):
    c = Theorem1Constants(gamma=gamma, varsigma=varsigma, u_drqn=u)
    ks = optimal_k_prime(c)
    b, v = nu_max_parts(np.array([ks * 0.97, ks, ks * 1.03]), c)
    assert (b + v)[1] <= min((b + v)[0], (b + v)[2])
    x = float(valley_xi(tau0, c))
    if math.isfinite(x):
        assert float(effective_samples(tau0, x, c)) == pytest.approx(ks, rel=1e-9)


def test_along_the_valley_the_bound_grows_with_tau0_so_no_interior_minimum():
    t = np.linspace(0.05, 1, 20)
    for proof in (False, True):
        p = bound_parts(t, valley_xi(t, C), C, proof_form=proof)
        assert (np.diff(p.total) > 0).all()
    g = minimise(np.linspace(0, 1, 41), np.linspace(0.5, 2.5, 201), C)
    assert "xi min" in g.edges and g.k_prime == pytest.approx(optimal_k_prime(C), rel=0.1)


def test_concentration_and_episodes_scale_but_never_move_the_minimiser():
    t, x = np.linspace(0, 1, 11), np.linspace(1, 1.5, 26)
    base = minimise(t, x, C)
    other = minimise(t, x, C.with_values(concentration=3.0, episodes=5))
    assert other.index == base.index
    p0, p1 = bound_parts(0.8, 1.12, C), bound_parts(0.8, 1.12, C.with_values(concentration=3.0))
    assert float(p1.statistical) == pytest.approx(3 * float(p0.statistical), rel=1e-12)
    assert float(bound_parts(0.8, 1.12, C.with_values(episodes=0)).algorithmic) == \
        pytest.approx(4 * 0.95 / 0.05 ** 2)


# ---- the grid search ------------------------------------------------------------------------
def test_minimiser_on_a_paper_like_grid():
    t, x = np.linspace(0, 1, 11), np.linspace(1, 1.5, 26)
    proof = minimise(t, x, C, proof_form=True)
    assert (proof.tau0, round(proof.xi, 9)) == (0.8, 1.12) and proof.edges == ()
    printed = minimise(t, x, C)
    assert (round(printed.tau0, 9), printed.xi) == (0.6, 1.0) and printed.edges == ("xi min",)
    clipped = minimise(t, x, C, clip_markov=True)
    assert clipped.tau0 == 0.0 and clipped.k_prime == pytest.approx(450)


def test_cells_without_samples_are_invalid_never_minimal():
    p = bound_parts(1.0, 0.5, C)  # K' = 450 (2 - 2.12 / 0.5) < 0
    assert not bool(p.valid) and float(p.k_prime) < 0 and math.isnan(float(p.total))
    g = minimise(np.linspace(0, 1, 5), np.array([0.5, 0.6]), C)
    assert g.n_valid < 10 and bool(g.parts.valid[g.index])
    with pytest.raises(ParameterError, match="no grid cell has K' > 0"):
        minimise([0.9, 1.0], [0.3, 0.4], C)


@pytest.mark.parametrize("field,value", [("gamma", 1.0), ("psi_re", 1.0), ("steps", 0),
                                         ("varsigma", 0.0), ("u_drqn", 0.5), ("b_r", -1.0),
                                         ("phi_out", float("nan")), ("episodes", 2.5)])
def test_excluded_constants_are_refused(field, value):
    with pytest.raises(ParameterError, match=field):
        C.with_values(**{field: value})


def test_parse_axis():
    np.testing.assert_allclose(parse_axis("0:1:11", "tau0"), np.linspace(0, 1, 11))
    assert parse_axis("1.12:1.12:1", "xi").tolist() == [1.12]
    for bad, name in [("0:1", "tau0"), ("a:b:3", "xi"), ("1:0:5", "xi"), ("0:1:0", "xi"),
                      ("0:1.5:4", "tau0"), ("0:2:5", "xi"), ("1:2:1", "xi")]:
        with pytest.raises(ParameterError):
            parse_axis(bad, name)


# ---- the command ----------------------------------------------------------------------------
def test_cli_writes_the_report(tmp_path, capsys):
    out = tmp_path / "fig06"
    rc = main(["theorem1", "--tau0", "0:1:11", "--xi", "1:1.5:26", "--proof-form",
               "-o", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "minimiser: tau0 = 0.8, xi = 1.12" in text
    res = json.loads((out / "result.json").read_text())
    assert res["minimiser"]["tau0"] == 0.8 and res["minimiser"]["xi"] == pytest.approx(1.12)
    assert res["constants"]["phi_out"] == 10.0 and res["grid"]["cells"] == 286
    rows = (out / "grid.csv").read_text().splitlines()
    assert rows[0].startswith("tau0,xi,k_prime") and len(rows) == 287
    assert (out / "fig06.png").read_bytes()[:4] == b"\x89PNG"
    assert "Minimiser: tau0 = 0.8, xi = 1.12" in (out / "index.md").read_text()


def test_cli_clipped_markov_bound_has_no_valley(tmp_path, capsys):
    assert main(["theorem1", "--tau0", "0:1:3", "--xi", "1:2:3", "--clip-markov",
                 "-o", str(tmp_path)]) == 0
    assert "no xi reaches it" in capsys.readouterr().out
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["valley_xi_at_paper_tau0"] is None and res["minimiser"]["tau0"] == 0.0
    assert res["minimiser"]["k_prime"] == pytest.approx(450)


def test_cli_json_and_set(tmp_path, capsys):
    rc = main(["theorem1", "--tau0", "0:1:3", "--xi", "1:2:3", "--set", "varsigma=0.2",
               "--json", "-o", str(tmp_path)])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["constants"]["varsigma"] == 0.2
    assert res["k_star"] == pytest.approx(optimal_k_prime(C.with_values(varsigma=0.2)))


@pytest.mark.parametrize("argv,needle", [
    (["--set", "gamma=1.5"], "gamma"),
    (["--set", "nope=1"], "unknown parameter 'nope'"),
    (["--set", "steps=many"], "steps"),
    (["--xi", "0:1:5"], "--xi"),
    (["--tau0", "0:1"], "--tau0"),
    (["--tau0", "0.9:1:2", "--xi", "0.3:0.4:2"], "K' > 0"),
    (["--tau0", "0:1:2000", "--xi", "1:2:2000"], "at most 2,000,000"),
    (["--set", "phi_out=nan"], "phi_out"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    assert main(["theorem1", *argv, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()
