"""``fgamcd theorem1``: evaluate Theorem 1's bound (eqs. 34-35) on a (tau0, xi) grid, print its
minimiser and write the report of Fig. 6 (docs/theorem1.md).

    fgamcd theorem1 [--tau0 0:1:21] [--xi 0.5:2.5:101] [--set NAME=VALUE ...] [--proof-form]
                    [--clip-markov] [-o DIR] [--json]

DIR (default ``runs/theorem1``) receives ``grid.csv`` (every cell and its parts), ``result.json``
(constants, grid, minimiser, the paper's points, sensitivity), ``fig06.png`` and ``index.md``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..jsonio import jsonable, write_json_atomic
from ..marl.theorem1 import (
    ABLATION_POINT,
    PAPER_POINT,
    GridMinimum,
    Theorem1Constants,
    bound_parts,
    constant_params,
    minimise,
    optimal_k_prime,
    output_norm_bound,
    parse_axis,
    sensitivity,
    valley_xi,
)
from ..params import parse_assignments, resolve
from .shared import _common

DEFAULT_TAU0 = "0:1:21"
DEFAULT_XI = "0.5:2.5:101"
SENSITIVITY_FACTORS = (0.9, 1.1)
_CSV_FIELDS = ("tau0", "xi", "k_prime", "nu_bias", "nu_variance", "nu_max", "algorithmic",
               "statistical", "bound", "valid")


def theorem1_args(p) -> None:
    p.add_argument("--tau0", default=DEFAULT_TAU0, metavar="LO:HI:N",
                   help=f"tau0 axis, N evenly spaced values in [0, 1] (default {DEFAULT_TAU0})")
    p.add_argument("--xi", default=DEFAULT_XI, metavar="LO:HI:N",
                   help=f"xi axis, N evenly spaced values > 0 (default {DEFAULT_XI})")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override a constant (--list shows them with their sources)")
    p.add_argument("--proof-form", action="store_true",
                   help="the ESN term as eqs. 39-40 derive it (outside the factor "
                        "2 theta gamma/(1-gamma)^2) instead of eq. 34 as printed")
    p.add_argument("--clip-markov", action="store_true",
                   help="clip the Markov bound of eq. 43 at 0 (K' >= K) instead of eq. 47 as "
                        "printed")
    p.add_argument("-o", "--output", default="runs/theorem1", metavar="DIR",
                   help="report folder (default runs/theorem1)")
    p.add_argument("--json", action="store_true", help="print result.json instead of a summary")
    p.add_argument("--list", action="store_true", help="list the constants and exit")
    _common(p)


def _point(c, tau0, xi, clip, proof, grid_min) -> dict:
    p = bound_parts(tau0, xi, c, clip, proof)
    out = {"tau0": tau0, "xi": xi, "k_prime": float(p.k_prime), "nu_max": float(p.nu_max),
           "algorithmic": float(p.algorithmic), "statistical": float(p.statistical),
           "bound": float(p.total)}
    out["excess_over_grid_min_pct"] = 100.0 * (out["bound"] / grid_min - 1.0) \
        if bool(p.valid) else None
    return out


def _command(args) -> str:
    parts = ["fgamcd theorem1", f"--tau0 {args.tau0}", f"--xi {args.xi}"]
    parts += [f"--set {s}" for s in args.set or []]
    parts += ["--proof-form"] * args.proof_form + ["--clip-markov"] * args.clip_markov
    return " ".join(parts + [f"-o {args.output}"])


def _result(args, c: Theorem1Constants, g: GridMinimum) -> dict:
    clip, proof = args.clip_markov, args.proof_form
    p = g.parts
    i, j = g.index
    k_star = optimal_k_prime(c)
    return {
        "theorem": "Fu et al., Theorem 1, eqs. 34-35 (reconstruction: docs/theorem1.md)",
        "command": _command(args),
        "form": "proof (eqs. 39-40)" if proof else "eq. 34 as printed",
        "clip_markov": clip,
        "constants": c.as_dict(),
        "grid": {"tau0": args.tau0, "xi": args.xi, "cells": int(p.valid.size),
                 "valid_cells": g.n_valid},
        "minimiser": {"tau0": g.tau0, "xi": g.xi, "bound": g.bound, "k_prime": g.k_prime,
                      "nu_max": float(p.nu_max[i, j]),
                      "algorithmic": float(p.algorithmic[i, j]),
                      "statistical": float(p.statistical[i, j]), "edges": list(g.edges)},
        "output_norm_bound_M": output_norm_bound(c),
        "k_star": k_star,
        "valley_xi_at_paper_tau0": float(valley_xi(PAPER_POINT[0], c, clip)),
        "paper_point": _point(c, *PAPER_POINT, clip, proof, g.bound),
        "ablation_point": _point(c, *ABLATION_POINT, clip, proof, g.bound),
        "sensitivity": sensitivity(c, SENSITIVITY_FACTORS, clip_markov=clip),
    }


def _write_atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder and rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _grid_csv(g: GridMinimum) -> str:
    p = g.parts
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV_FIELDS)
    cols = [p.tau0, p.xi, p.k_prime, p.nu_bias, p.nu_variance, p.nu_max, p.algorithmic,
            p.statistical, p.total]
    for idx in np.ndindex(p.valid.shape):
        w.writerow([f"{col[idx]:.8g}" if np.isfinite(col[idx]) else "" for col in cols]
                   + [int(p.valid[idx])])
    return buf.getvalue()


def _draw(path: Path, c: Theorem1Constants, g: GridMinimum, res: dict, clip: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    p = g.parts
    t, x = g.tau0_values, g.xi_values
    total = np.where(p.valid, p.total, np.nan)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.25, 1]})
    if t.size > 1 and x.size > 1:
        vmax = min(np.nanmax(total), 1.5 * g.bound)
        mesh = ax.pcolormesh(x, t, total, shading="nearest", cmap="viridis",
                             norm=LogNorm(vmin=g.bound, vmax=max(vmax, g.bound * 1.0001)))
        cb = fig.colorbar(mesh, ax=ax, extend="max")
        cb.set_label(f"upper bound on E|Q^piE - Q*| ({res['form']})")
        invalid = np.where(p.valid, np.nan, 1.0)
        if np.isfinite(invalid).any():
            ax.pcolormesh(x, t, invalid, shading="nearest", cmap="Greys", vmin=0, vmax=2)
        levels = g.bound * np.array([1.01, 1.03, 1.1, 1.3])
        cs = ax.contour(x, t, total, levels=levels, colors="white", linewidths=0.7)
        ax.clabel(cs, fmt={lv: f"+{round(100 * (lv / g.bound - 1))}%" for lv in levels},
                  fontsize=7)
    tt = np.linspace(max(t.min(), 1e-3), t.max(), 200)
    vx = valley_xi(tt, c, clip)
    if np.isfinite(vx).any():
        ax.plot(vx, tt, "w--", lw=1.2, label=f"valley K' = K* = {res['k_star']:.1f}")
    m = res["output_norm_bound_M"]
    if x.min() <= m <= x.max() and not clip:
        ax.axvline(m, color="w", ls=":", lw=1, label=f"xi = M = {m:.2f} (K' = K)")
    ax.plot(g.xi, g.tau0, "r*", ms=14, mec="k", label=f"grid minimiser ({g.tau0:g}, {g.xi:g})")
    ax.plot(PAPER_POINT[1], PAPER_POINT[0], "o", mfc="none", mec="orange", mew=2, ms=10,
            label="paper (0.8, 1.12)")
    ax.plot(ABLATION_POINT[1], ABLATION_POINT[0], "x", color="orange", mew=2, ms=9,
            label="ablation (0.9, 1.2)")
    if x.max() > x.min():
        ax.set_xlim(x.min(), x.max())
    if t.max() > t.min():
        ax.set_ylim(t.min(), t.max())
    ax.set_xlabel("xi (ESN filter threshold, eq. 17)")
    ax.set_ylabel("tau0 (synthetic share, eq. 18)")
    ax.set_title("(a) Theorem 1 bound over (tau0, xi); grey: K' <= 0, no bound")
    ax.legend(loc="lower right", fontsize=7, framealpha=0.8)

    for tau in sorted({float(t[np.argmin(np.abs(t - v))]) for v in (0.2, 0.5, 0.8, 1.0, g.tau0)}):
        row = int(np.argmin(np.abs(t - tau)))
        bx.plot(x, total[row], lw=1.3, label=f"tau0 = {tau:g}")
    bx.plot(PAPER_POINT[1], res["paper_point"]["bound"], "o", mfc="none", mec="orange", mew=2,
            ms=9, label="paper (0.8, 1.12)")
    bx.plot(g.xi, g.bound, "r*", ms=12, mec="k", label="grid minimiser")
    finite = total[np.isfinite(total)]
    if finite.size:
        bx.set_ylim(g.bound * 0.995, min(finite.max(), 1.3 * g.bound))
    bx.set_xlabel("xi")
    bx.set_ylabel("upper bound")
    form = res["form"] + (", Markov bound clipped" if clip else "")
    bx.set_title(f"(b) slices at fixed tau0 ({form})", fontsize=9)
    bx.grid(alpha=0.3)
    bx.legend(fontsize=7)
    fig.tight_layout()
    _write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.6g}"


def _index_md(res: dict) -> str:
    m, pp, ab = res["minimiser"], res["paper_point"], res["ablation_point"]
    edge = (f" It lies on the grid's edge ({', '.join(m['edges'])}): the bound has no interior "
            "minimum, so the minimiser moves with the grid (docs/theorem1.md)."
            if m["edges"] else "")
    lines = [
        "# Fig. 6: Theorem 1's bound on the Q-value approximation error over (tau0, xi)", "",
        f"Command: `{res['command']}` (form: {res['form']}; Markov bound "
        f"{'clipped at 0' if res['clip_markov'] else 'as printed (eq. 47)'}). Equations, "
        "constants and the discussion: docs/theorem1.md.", "",
        f"Grid: tau0 `{res['grid']['tau0']}` x xi `{res['grid']['xi']}` (lo:hi:n), "
        f"{res['grid']['cells']} cells, {res['grid']['valid_cells']} with K' > 0.", "",
        f"**Minimiser: tau0 = {m['tau0']:g}, xi = {m['xi']:g}**, bound {_fmt(m['bound'])} "
        f"(algorithmic {_fmt(m['algorithmic'])}, statistical {_fmt(m['statistical'])}; "
        f"nu_max {_fmt(m['nu_max'])}, K' = {_fmt(m['k_prime'])}).{edge}", "",
        f"Valley: nu_max is smallest at K' = K* = {_fmt(res['k_star'])}; at tau0 = 0.8 that is "
        f"xi = {_fmt(res['valley_xi_at_paper_tau0'])} (n/a: no xi reaches it). "
        f"M = {_fmt(res['output_norm_bound_M'])}.",
        "",
        "| point | K' | nu_max | bound | above the grid minimum |", "|---|---|---|---|---|",
    ]
    for name, q in (("grid minimiser", {**m, "excess_over_grid_min_pct": 0.0}),
                    ("paper", pp), ("ablation", ab)):
        ex = q["excess_over_grid_min_pct"]
        lines.append(f"| {name} ({q['tau0']:g}, {q['xi']:g}) | {_fmt(q['k_prime'])} | "
                     f"{_fmt(q['nu_max'])} | {_fmt(q['bound'])} | "
                     f"{'n/a' if ex is None else f'{ex:+.3f} %'} |")
    lines += ["", "![Fig. 6](fig06.png)", "", "## Constants", "",
              "| constant | value |", "|---|---|"]
    lines += [f"| {k} | {v:g} |" for k, v in res["constants"].items()]
    lines += ["", f"## Sensitivity of the valley (each constant x{SENSITIVITY_FACTORS[0]:g} and "
              f"x{SENSITIVITY_FACTORS[1]:g})", "",
              "| constant | value | K* | valley xi at tau0 = 0.8 |", "|---|---|---|---|"]
    base = res["sensitivity"][0]

    def differs(a, b, tol):  # None: no valley at tau0 = 0.8
        return (a is None) != (b is None) or (a is not None and abs(a - b) > tol)

    moving = [r for r in res["sensitivity"]
              if r is base or differs(r["k_star"], base["k_star"], 1e-9 * base["k_star"])
              or differs(r["valley_xi"], base["valley_xi"], 1e-9)]
    still = sorted({r["constant"] for r in res["sensitivity"]} - {r["constant"] for r in moving})
    for r in moving:
        value = "" if r["value"] is None else f"{r['value']:g}"
        lines.append(f"| {r['constant']} | {value} | {_fmt(r['k_star'])} | "
                     f"{_fmt(r['valley_xi'])} |")
    if still:
        lines += ["", f"Not moving the valley: {', '.join(still)} (they scale the bound or "
                  "only its xi term)."]
    lines += ["", "Files: `grid.csv` (every cell and its parts), `result.json`, `fig06.png`.", ""]
    return "\n".join(lines)


def cmd_theorem1(args) -> int:
    if args.list:
        for prm in constant_params():
            print("  " + prm.describe())
        return 0
    typed = resolve(constant_params(), parse_assignments(args.set or []), owner="theorem1")
    c = Theorem1Constants(**typed).check()
    tau0 = parse_axis(args.tau0, "tau0")
    xi = parse_axis(args.xi, "xi")
    g = minimise(tau0, xi, c, args.clip_markov, args.proof_form)
    res = jsonable(_result(args, c, g))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "grid.csv", lambda tmp: Path(tmp).write_text(_grid_csv(g)))
    write_json_atomic(out / "result.json", res)
    _draw(out / "fig06.png", c, g, res, args.clip_markov)
    _write_atomic(out / "index.md", lambda tmp: Path(tmp).write_text(_index_md(res)))
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    m, pp = res["minimiser"], res["paper_point"]
    print(f"Theorem 1 bound ({res['form']}{', Markov bound clipped' if args.clip_markov else ''})"
          f" on tau0 {args.tau0} x xi {args.xi}: {res['grid']['cells']} cells, "
          f"{res['grid']['valid_cells']} with K' > 0")
    print(f"minimiser: tau0 = {m['tau0']:g}, xi = {m['xi']:g}, bound {m['bound']:.6g} "
          f"(K' = {m['k_prime']:.4g})" + (f"; on the grid's edge ({', '.join(m['edges'])})"
                                          if m["edges"] else ""))
    vx = res["valley_xi_at_paper_tau0"]
    print(f"valley K' = K* = {res['k_star']:.4g}: " + (
        f"at tau0 = 0.8 it lies at xi = {vx:.4g}" if vx is not None
        else "no xi reaches it at tau0 = 0.8"))
    ex = pp["excess_over_grid_min_pct"]
    print(f"paper's (0.8, 1.12): bound {pp['bound']:.6g}, K' = {pp['k_prime']:.4g}"
          + ("" if ex is None else f", {ex:+.3f} % over the grid minimum"))
    print(f"wrote {out}/grid.csv, result.json, fig06.png, index.md")
    return 0
