"""The paper's oracle-level figures: Fig. 15 (rate CDF over channel-error draws, robust vs
non-robust beams), Fig. 16 (beam patterns) and Table III (oracle time per PB, planner clusters
vs full CoMP). They use the oracle and :mod:`fgamcd_opt.rates` directly (no solver sweep).

Spec kinds ``rate-cdf``, ``beampattern``, ``oracle-time``; their settings live in the spec's
``[options]`` table (see each function). Rows are appended to ``DIR/store.jsonl`` as they are
produced (same crash-safe store as sweeps; a rerun keeps finished rows), and the page is
written to ``DIR/index.md`` / ``DIR/index.html`` with its figures under ``DIR/figures/``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .plotting import add_footer, footer_lines
from .reporting import Doc
from .spec import Spec, SpecError, spec_summary
from .store import Store, export_csv


def _opt(spec: Spec, key: str, default, typ=None):
    v = spec.options.get(key, default)
    if typ is not None and not isinstance(v, typ):
        raise SpecError(spec.path, f"options.{key}", f"expected {typ}, got {v!r}")
    return v


def run_figure(spec: Spec, out_dir, command: str = "") -> Path:
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    store = Store(out / "store.jsonl", spec.name, spec.hash,
                  meta={"spec_summary": spec_summary(spec), "options": spec.options})
    t0 = time.time()
    try:
        doc = Doc()
        doc.h(1, spec.title)
        if spec.description:
            doc.p(spec.description)
        fn = {"rate-cdf": _rate_cdf, "beampattern": _beampattern,
              "oracle-time": _oracle_time}[spec.kind]
        fn(spec, store, doc, out, figure_footer(spec, command))
        rows = list(store.latest().values())
        export_csv(rows, out / "results.csv")
    finally:
        store.close()
    elapsed = time.time() - t0
    log = {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
           "elapsed_s": round(elapsed, 2), "executor": "inline", "size": spec.size}
    with open(out / "sweep-log.jsonl", "a") as fh:
        fh.write(json.dumps(log) + "\n")
    logs = [json.loads(x) for x in (out / "sweep-log.jsonl").read_text().splitlines() if x]
    doc.h(2, "Provenance")
    doc.p(f"spec `{spec.path}`, size `{spec.size}`, scenario `{spec.scenario}`, parameters "
          f"`{json.dumps(spec.params)}`, options `{json.dumps(spec.options)}`, spec hash "
          f"`{spec.hash}`. Raw rows: `store.jsonl`, `results.csv`.")
    doc.table(["started (UTC)", "command", "wall time"],
              [[lg["started"], f"`{lg['command']}`", f"{lg['elapsed_s']} s"] for lg in logs],
              "Runs (machine: 2 shared cores; a rerun reuses finished rows)")
    notes = spec.report.get("notes")
    if notes:
        doc.h(2, "Notes")
        for para in str(notes).strip().split("\n\n"):
            doc.p(para.strip())
    (out / "index.md").write_text(doc.markdown())
    (out / "index.html").write_text(doc.html(spec.title))
    return out / "index.md"


def figure_footer(spec: Spec, command: str) -> str:
    """The provenance printed on each figure of these kinds (as on sweep figures)."""
    from .provenance import code_identity, code_text

    seed = spec.options.get("seed", spec.base_seed)
    return "  |  ".join(b for b in (
        f"spec {spec.name} (hash {spec.hash})", f"size {spec.size or '-'}",
        f"seed {seed}", f"parameters {json.dumps(spec.params)}", code_text(code_identity()),
        f"command: {command}" if command else "") if b)


def _instance(spec: Spec, seed: int, **extra):
    from ..generators import generate

    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in {**spec.params,
                                                                     **extra}.items()}
    return generate(spec.scenario, seed=seed, **kw)


def _multicast_cases(inst, max_cases: int, cluster: int, max_group: int = 10**9):
    """PBs with 2..max_group requesters (most requesters first) and the ``cluster`` nodes with
    the strongest large-scale links to the group (the requesters' own nodes first)."""
    import numpy as np

    ks = [int(k) for k in inst.requested_blocks if 2 <= len(inst.requesters(k)) <= max_group]
    ks.sort(key=lambda k: (-len(inst.requesters(k)), k))
    out = []
    for k in ks[:max_cases]:
        users = tuple(int(u) for u in inst.requesters(k))
        own = list(dict.fromkeys(int(inst.users.node[u]) for u in users))
        pos_n, pos_u = inst.nodes.positions_m, inst.users.positions_m[list(users)]
        dist = np.hypot(*(pos_u[None, :, :] - pos_n[:, None, :]).transpose(2, 0, 1))
        amp = (np.maximum(dist, 1.0) ** -1.5).sum(axis=1)  # large-scale amplitude, alpha = 3
        rest = [int(n) for n in np.argsort(-amp, kind="stable") if int(n) not in own]
        nodes = tuple(sorted((own + rest)[:cluster]))
        out.append((k, nodes, users))
    return out


# ---- Fig. 15 -------------------------------------------------------------------------------
def _rate_cdf(spec: Spec, store: Store, doc: Doc, out: Path, footer: str = "") -> None:
    """options: error_c (list), draws (200), seed, cases (PBs), cluster (nodes per PB),
    error_draw ('ball': uniform in the ellipsoid, or 'surface': on its boundary)."""
    import numpy as np

    from ..oracle import BeamformingOracle
    from ..rates import rate_from_amplitude

    cs = _opt(spec, "error_c", [1e10], list)
    draws = int(_opt(spec, "draws", 200))
    seed = int(_opt(spec, "seed", spec.base_seed))
    n_cases = int(_opt(spec, "cases", 4))
    cluster = int(_opt(spec, "cluster", 2))
    where = _opt(spec, "error_draw", "ball", str)
    max_group = int(_opt(spec, "max_group", 4))
    done = {(r["error_c"], r["method"], r["block"]) for r in store.rows if r["state"] == "done"}
    for c in cs:
        inst = _instance(spec, seed, error_c=float(c))
        oracle = BeamformingOracle()
        for k, nodes, users in _multicast_cases(inst, n_cases, cluster, max_group):
            for method in ("fast", "nonrobust"):
                if (float(c), method, k) in done:
                    continue
                res = oracle.solve(inst, k, nodes, users, method=method)
                if method == "fast" and res.zero_rate_users:
                    # a requester out of every participant's reach: rate 0 for any beam, so
                    # the case says nothing about robustness; recorded, left out of the CDF
                    store.append({"cell": f"c{c:g}-{method}-k{k}", "state": "done",
                                  "error_c": float(c), "method": method, "block": k,
                                  "excluded": "zero-rate requester", "rate_over_qos": [],
                                  "qos_feasible": False})
                    break
                h = inst.channel(k, list(users))[list(nodes)]  # (p, v, M)
                radius = inst.error_radius[np.ix_(list(nodes), list(users))]  # (p, v)
                w = res.beams  # (p, M)
                rng = np.random.default_rng(np.random.SeedSequence([seed, int(c % 2**31), k]))
                p, v, m = h.shape
                e = rng.standard_normal((draws, p, v, m)) + 1j * rng.standard_normal(
                    (draws, p, v, m))
                e /= np.linalg.norm(e, axis=3, keepdims=True)
                scale = radius[None, :, :, None]
                if where == "ball":  # uniform in the 2M-dimensional real ball
                    scale = scale * rng.random((draws, p, v, 1)) ** (1.0 / (2 * m))
                hh = h[None] + e * scale
                amp = np.abs(np.einsum("dpvm,pm->dv", hh.conj(), w))
                noise = inst.users.noise_w[list(users)]
                rates = rate_from_amplitude(amp, noise[None, :], inst.bandwidth_hz)
                qos = inst.users.qos_bps[list(users)]
                store.append({
                    "cell": f"c{c:g}-{method}-k{k}", "state": "done", "error_c": float(c),
                    "method": method, "block": k, "nodes": list(nodes), "users": list(users),
                    "qos_bps": qos.tolist(), "worst_case_bps": res.rates_bps.tolist(),
                    "oracle_status": res.status.value, "qos_feasible": bool(res.qos_feasible),
                    "rate_over_qos": (rates / qos[None, :]).ravel().tolist(),
                    "below_qos_share": float(np.mean(rates < qos[None, :])),
                    "min_rate_over_qos": float((rates / qos[None, :]).min()),
                })
    rows = [r for r in store.latest().values() if r["state"] == "done"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {"fast": "-", "nonrobust": "--"}
    names = {"fast": "robust (fast oracle)", "nonrobust": "non-robust"}
    table = []
    csv_lines = ["error_c,method,rate_over_qos_quantile,cdf"]
    for i, c in enumerate(cs):
        for method in ("fast", "nonrobust"):
            vals = np.concatenate([r["rate_over_qos"] for r in rows
                                   if r["error_c"] == float(c) and r["method"] == method]
                                  or [np.zeros(0)])
            if not vals.size:
                continue
            xs = np.sort(vals)
            ys = np.arange(1, xs.size + 1) / xs.size
            ax.plot(xs, ys, styles[method], color=plt.get_cmap("tab10")(i),
                    label=f"{names[method]}, c = {c:g}")
            for q in np.linspace(0, 1, 21):
                csv_lines.append(f"{c:g},{method},{np.quantile(vals, q):.6g},{q:.2f}")
            sel = [r for r in rows if r["error_c"] == float(c) and r["method"] == method
                   and not r.get("excluded")]
            wc = np.concatenate([np.asarray(r["worst_case_bps"]) / np.asarray(r["qos_bps"])
                                 for r in sel])
            table.append([f"{c:g}", names[method], len(sel), xs.size,
                          f"{100 * np.mean(vals < 1):.2f}%", f"{vals.min():.3f}",
                          f"{np.median(vals):.3f}", f"{wc.min():.3f}",
                          f"{100 * np.mean(wc < 1 - 1e-9):.1f}%",
                          sum(1 for r in sel if not r["qos_feasible"])])
    ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("downloading rate / QoS requirement Q_u")
    ax.set_ylabel("CDF over users and error draws")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    import textwrap

    ax.set_title(textwrap.fill(f"{spec.title}: {draws} error draws per PB", 70), fontsize=9)
    add_footer(fig, footer, width=110)
    fig.tight_layout(rect=(0, 0.03 * footer_lines(footer, 110), 1, 1))
    path = out / "figures" / f"{spec.name}-cdf"
    fig.savefig(path.with_suffix(".png"), dpi=110)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    path.with_suffix(".csv").write_text("\n".join(csv_lines) + "\n")
    doc.h(2, "Figures")
    doc.img(path.with_suffix(".png"), "CDF of rate / Q_u over channel-error draws",
            f"figures/{path.name}.png")
    wc_path = _worst_case_figure(spec, rows, cs, out, footer)
    if wc_path is not None:
        doc.img(wc_path.with_suffix(".png"), "The worst case over the whole error ellipsoid: "
                "share of users below Q_u and the CDF of worst-case rate / Q_u",
                f"figures/{wc_path.name}.png")
    excluded = sum(1 for r in rows if r.get("excluded"))
    doc.table(["c", "beams", "PBs", "(user, draw) samples", "draws below QoS", "min rate/Q",
               "median rate/Q", "exact worst-case rate/Q (min)", "users whose worst case < Q",
               "PBs QoS-infeasible (oracle)"], table,
              f"Error drawn {'uniformly in' if where == 'ball' else 'on the boundary of'} each "
              "link's ellipsoid ||e|| <= 1/sqrt(c); rates B log2(1 + |sum_n (h+e)^H w_n|^2 / "
              f"sigma^2) (docs/model.md eq. 6); the exact worst case is the minimum over the "
              f"whole ellipsoid (the oracle's closed form). {excluded} PB(s) with a requester "
              "out of every participant's reach left out.")


def _worst_case_figure(spec: Spec, rows: list[dict], cs: list, out: Path,
                       footer: str) -> Path | None:
    """What robustness buys, per error size c: the share of users whose exact worst-case rate
    (the oracle's closed form over the whole ellipsoid) is below Q_u, robust vs non-robust
    beams, and the CDF of worst-case rate / Q_u over users."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = {"fast": "robust (fast oracle)", "nonrobust": "non-robust"}
    share: dict = {}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.4))
    csv = ["error_c,method,users,users_below_qos_worst_case_pct,min_worst_case_over_qos"]
    for i, c in enumerate(cs):
        for method in ("fast", "nonrobust"):
            sel = [r for r in rows if r["error_c"] == float(c) and r["method"] == method
                   and not r.get("excluded")]
            if not sel:
                continue
            wc = np.concatenate([np.asarray(r["worst_case_bps"]) / np.asarray(r["qos_bps"])
                                 for r in sel])
            share[(c, method)] = 100.0 * float(np.mean(wc < 1 - 1e-9))
            csv.append(f"{c:g},{method},{wc.size},{share[(c, method)]:.4f},{wc.min():.6g}")
            xs = np.sort(wc)
            ax2.step(xs, np.arange(1, xs.size + 1) / xs.size, where="post",
                     color=plt.get_cmap("tab10")(i), ls="-" if method == "fast" else "--",
                     lw=2.0 if method == "fast" else 1.4, label=f"{names[method]}, c = {c:g}")
    if not share:
        plt.close(fig)
        return None
    width = 0.38
    for j, method in enumerate(("fast", "nonrobust")):
        vals = [share.get((c, method), 0.0) for c in cs]
        bars = ax1.bar(np.arange(len(cs)) + (j - 0.5) * width, vals, width,
                       color="#1f77b4" if method == "fast" else "#d62728",
                       hatch="" if method == "fast" else "//", label=names[method])
        ax1.bar_label(bars, fmt="%.1f%%", fontsize=7)
    ax1.set_xticks(np.arange(len(cs)))
    ax1.set_xticklabels([f"c = {c:g}" for c in cs])
    ax1.set_ylabel("users whose worst-case rate < Q_u (%)")
    ax1.set_ylim(0, max(5.0, 1.15 * max(share.values())))
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3, axis="y")
    ax2.axvline(1.0, color="k", lw=0.8, ls=":")
    ax2.set_xlabel("exact worst-case rate / Q_u (per user)")
    ax2.set_ylabel("CDF over users")
    ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{spec.title}: the worst case over the error ellipsoid", fontsize=9)
    add_footer(fig, footer, width=150)
    fig.tight_layout(rect=(0, 0.03 * footer_lines(footer, 150), 1, 0.95))
    path = out / "figures" / f"{spec.name}-worstcase"
    fig.savefig(path.with_suffix(".png"), dpi=110)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    path.with_suffix(".csv").write_text("\n".join(csv) + "\n")
    return path


# ---- Fig. 16 -------------------------------------------------------------------------------
def _beampattern(spec: Spec, store: Store, doc: Doc, out: Path, footer: str = "") -> None:
    """options: seed, cases (PBs), cluster (nodes per PB), points (angles)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..oracle import BeamformingOracle

    seed = int(_opt(spec, "seed", spec.base_seed))
    n_cases = int(_opt(spec, "cases", 2))
    cluster = int(_opt(spec, "cluster", 2))
    npts = int(_opt(spec, "points", 721))
    max_group = int(_opt(spec, "max_group", 4))
    inst = _instance(spec, seed)
    oracle = BeamformingOracle()
    # PBs whose every requester is reachable (a zero-rate requester makes the max-min beams
    # degenerate: nothing to see in the pattern)
    cases = [c for c in _multicast_cases(inst, 10 * n_cases, cluster, max_group)
             if not oracle.solve(inst, *c).zero_rate_users][:n_cases]
    if not cases:
        raise SpecError(spec.path, "options", "no multicast PB with every requester reachable")
    # user directions as the channel model computes them (atan2 of the user's offset)
    diff = inst.users.positions_m[None, :, :] - inst.nodes.positions_m[:, None, :]
    sin_theta = np.sin(np.arctan2(diff[..., 1], diff[..., 0]))
    sin_grid = np.linspace(-1, 1, npts)
    mvec = np.arange(inst.antennas)
    steer = np.exp(-1j * np.pi * sin_grid[:, None] * mvec[None, :])  # (G, M), channels.py's a
    fig, axs = plt.subplots(1, len(cases), figsize=(5.6 * len(cases), 4.2), squeeze=False)
    csv_lines = ["block,node,sin_theta,gain_db"]
    for ax, (k, nodes, users) in zip(axs[0], cases, strict=True):
        res = oracle.solve(inst, k, nodes, users)
        for i, n in enumerate(nodes):
            g = np.abs(steer.conj() @ res.beams[i]) ** 2
            gdb = 10 * np.log10(np.maximum(g / max(g.max(), 1e-300), 1e-6))
            col = plt.get_cmap("tab10")(i)
            ax.plot(np.degrees(np.arcsin(sin_grid)), gdb, color=col,
                    label=f"node {inst.nodes.ids[n]} ({np.linalg.norm(res.beams[i]) ** 2:.2f} W)")
            for u in users:
                ang = np.degrees(np.arcsin(sin_theta[n, u]))
                own = int(inst.users.node[u]) == n
                ax.axvline(ang, color=col, ls="-" if own else ":", lw=0.9, alpha=0.8)
            csv_lines += [f"{k},{n},{s:.4f},{v:.3f}" for s, v in zip(sin_grid[::8], gdb[::8],
                                                                     strict=True)]
        store.append({"cell": f"k{k}", "state": "done", "block": k, "nodes": list(nodes),
                      "users": list(users), "status": res.status.value,
                      "min_rate_bps": res.min_rate_bps,
                      "power_w": [float(np.linalg.norm(b) ** 2) for b in res.beams]})
        ax.set_title(f"PB {inst.repository.blocks[k].id} to {len(users)} users", fontsize=10)
        ax.set_xlabel("direction (deg; ULA, sin-symmetric)")
        ax.set_ylim(-40, 2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axs[0][0].set_ylabel("|a(theta)^H w_n|^2 (dB, per node peak)")
    fig.suptitle(f"{spec.title}\n(vertical lines: served users' directions; solid = the "
                 "node's own cell, dotted = a neighbour's)", fontsize=9)
    add_footer(fig, footer, width=150)
    fig.tight_layout(rect=(0, 0.03 * footer_lines(footer, 150), 1, 0.9))
    path = out / "figures" / f"{spec.name}-beams"
    fig.savefig(path.with_suffix(".png"), dpi=110)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)
    path.with_suffix(".csv").write_text("\n".join(csv_lines) + "\n")
    doc.h(2, "Figure")
    doc.img(path.with_suffix(".png"), "Beam patterns of the participating nodes",
            f"figures/{path.name}.png")
    doc.table(["PB", "nodes", "users", "oracle status", "min worst-case rate Gbps"],
              [[inst.repository.blocks[k].id, ", ".join(inst.nodes.ids[n] for n in nodes),
                ", ".join(inst.users.ids[u] for u in users),
                r["status"], f"{r['min_rate_bps'] / 1e9:.3f}"]
               for (k, nodes, users), r in zip(cases, [store.latest()[f"k{c[0]}"] for c in cases],
                                               strict=True)],
              "A node's pattern points at users of neighbouring cells too when they share the PB")


# ---- Table III -----------------------------------------------------------------------------
PAPER_TABLE3 = {(6, 20): (0.6501, 3.4136), (6, 60): (3.0884, 60.321), (12, 60): (8.3760, 366.083)}


def _oracle_time(spec: Spec, store: Store, doc: Doc, out: Path, footer: str = "") -> None:
    """options: grid ([[N, M], ...]), seeds (list), cases (PBs per instance), planner_solver
    (the solver whose delivery units give the clusters, default trimcaching), method."""
    import numpy as np

    from .. import registry
    from ..oracle import BeamformingOracle
    from ..runner import run_solver
    from .isolation import is_builtin

    grid = [tuple(int(x) for x in g) for g in _opt(spec, "grid", [[6, 20]], list)]
    seeds = [int(s) for s in _opt(spec, "seeds", [0], list)]
    n_cases = int(_opt(spec, "cases", 4))
    solver_name = _opt(spec, "planner_solver", "trimcaching", str)
    method = _opt(spec, "method", "fast", str)
    done = {r["cell"] for r in store.rows if r["state"] == "done"}
    if not is_builtin(solver_name):  # this figure runs the solver in this process
        raise SpecError(spec.path, "options.planner_solver", f"{solver_name!r} is not a built-in "
                        "solver")
    cls = registry.get_solver(solver_name)
    for n_nodes, m in grid:
        for seed in seeds:
            cid = f"N{n_nodes}-M{m}-s{seed}"
            if cid in done:
                continue
            inst = _instance(spec, seed, n_nodes=n_nodes, antennas=m)
            run = run_solver(inst, cls, None, seed=seed, oracle=BeamformingOracle())
            units = [u for u in (run.plan.units if run.plan else []) if len(u.users) >= 2]
            units.sort(key=lambda u: (-len(u.users), u.block))
            units = units[:n_cases]
            plan_t, full_t, parts = [], [], []
            for u in units:
                o = BeamformingOracle()  # fresh: no memo hits in the timing
                t0 = time.perf_counter()
                o.solve(inst, u.block, tuple(u.nodes), tuple(u.users), method=method)
                plan_t.append(time.perf_counter() - t0)
                parts.append(len(u.nodes))
                o = BeamformingOracle()
                t0 = time.perf_counter()
                o.solve(inst, u.block, tuple(range(inst.n_nodes)), tuple(u.users), method=method)
                full_t.append(time.perf_counter() - t0)
            store.append({"cell": cid, "state": "done", "N": n_nodes, "M": m, "seed": seed,
                          "pbs": len(units), "participants": parts, "planner_s": plan_t,
                          "full_comp_s": full_t, "users": [len(u.users) for u in units]})
    rows = [r for r in store.latest().values() if r["state"] == "done"]
    table = []
    for n_nodes, m in grid:
        rs = [r for r in rows if r["N"] == n_nodes and r["M"] == m]
        pt = [t for r in rs for t in r["planner_s"]]
        ft = [t for r in rs for t in r["full_comp_s"]]
        pp = [p for r in rs for p in r["participants"]]
        paper = PAPER_TABLE3.get((n_nodes, m))
        if not pt:
            table.append([n_nodes, m, 0, "", "", "", "", "", ""])
            continue
        table.append([n_nodes, m, len(pt), f"{np.mean(pp):.2f}",
                      f"{1e3 * np.median(pt):.1f} ms", f"{1e3 * np.median(ft):.1f} ms",
                      f"{np.median(ft) / np.median(pt):.1f}x",
                      f"{paper[0]} s / {paper[1]} s" if paper else "",
                      f"{paper[1] / paper[0]:.1f}x" if paper else ""])
    doc.h(2, "Oracle time per PB")
    doc.table(["N", "M", "PBs timed", "mean participants (planner)",
               "median time, planner clusters", "median time, full CoMP", "full / planner",
               "paper: subroutine / full CoMP", "paper ratio"], table,
              f"One fresh oracle call (method {method}, QoS search included) per multicast PB "
              f"of the `{solver_name}` plan, with its own cluster and with all N nodes; the "
              "paper's times are its SDR subroutine per step (Table III)")
    csv = ["N,M,seed,pb_index,participants,users,planner_s,full_comp_s"]
    for r in rows:
        for i in range(r["pbs"]):
            csv.append(f"{r['N']},{r['M']},{r['seed']},{i},{r['participants'][i]},"
                       f"{r['users'][i]},{r['planner_s'][i]:.6f},{r['full_comp_s'][i]:.6f}")
    (out / "figures" / f"{spec.name}-times.csv").write_text("\n".join(csv) + "\n")
