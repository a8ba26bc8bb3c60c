"""Sweep specs (TOML): a scenario, axes to vary, solvers, seeds, time limit, oracle method.

A spec expands to *cells*, one per (grid point, solver entry, solver-axis point, replicate). The
instance of a cell depends only on the scenario, the fixed generator parameters, the instance
axes' values and the instance seed, which derives from ``base_seed``, the replicate and (with
``seed_policy = "per_point"``) the instance-axis values, never from the solver: every solver sees
the identical instance for a grid point and seed. See docs/experiments.md for the format::

    name = "fig08"                       # required
    title = "Fig. 8: delay vs C_n"
    scenario = "paper-default"           # a generator scenario (fgamcd-gen --list)
    seeds = 2                            # replicates 0..1 (or a list of replicate indices)
    base_seed = 0
    seed_policy = "common"               # common: seed = base_seed + replicate at every point
    time_limit_s = 120                   # handed to the solvers (ctx.time_limit_s)
    oracle = "fast"                      # fast | sdr | mrt | nonrobust
    [params]                             # fixed generator parameters
    n_users = 20
    [axes]                               # generator parameters, or "solver.NAME" for solvers
    storage_gb = [0.5, 1.0, 1.5]
    [[solvers]]
    name = "hybrid"                      # built-in, entry point or path/to/file.py:Class
    label = "hybrid-2"                   # optional, default: name
    params = { eps_hot = 2 }
    [report]                             # how fgamcd-report draws it (x axis, panels, ...)
    x = "storage_gb"
    [sizes.quick]                        # named overrides, deep-merged over the spec
    seeds = 1
    axes.storage_gb = [0.5, 1.5]

Invalid specs raise :class:`SpecError`, one line naming the file and the key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FgamcdError, ParameterError

KINDS = ("sweep", "rate-cdf", "beampattern", "oracle-time", "learning")
TOP_KEYS = {"name", "title", "description", "kind", "scenario", "params", "axes", "solvers",
            "seeds", "base_seed", "seed_policy", "time_limit_s", "oracle", "oracle_options",
            "report", "sizes", "options", "paper"}
ORACLE_METHODS = ("fast", "sdr", "mrt", "nonrobust")
SOLVER_AXIS = "solver."


class SpecError(FgamcdError):
    """A sweep spec is invalid: the message names the file and the key."""

    def __init__(self, file, key: str, message: str):
        where = f"{file}: " if file else ""
        at = f"{key}: " if key else ""
        super().__init__(f"{where}{at}{message}")


@dataclass(frozen=True)
class SolverEntry:
    label: str
    name: str  # as written in the spec (part of the cell identity)
    params: dict
    ref: str = ""  # what the registry resolves (a solver file made absolute)
    axis_params: tuple = ()  # the solver axes this solver declares (others run once)


@dataclass
class Spec:
    name: str
    title: str
    description: str
    kind: str
    scenario: str
    params: dict
    axes: dict  # instance axes: generator parameter -> list of values
    solver_axes: dict  # solver parameter -> list of values
    solvers: list[SolverEntry]
    replicates: list[int]
    base_seed: int
    seed_policy: str
    time_limit_s: float | None
    oracle: str
    oracle_options: dict
    report: dict
    options: dict
    paper: dict
    size: str | None
    path: str | None
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def hash(self) -> str:
        """Identity of the results a store may hold for this spec: everything that defines the
        cells (not the title, description or report settings)."""
        ident = {k: self.raw.get(k) for k in sorted(self.raw)
                 if k not in ("title", "description", "report", "sizes", "paper")}
        return _digest(ident)

    def instance_seed(self, replicate: int, point: dict) -> int:
        if self.seed_policy == "common":
            return self.base_seed + replicate
        import numpy as np  # noqa: PLC0415 -- kept out of module import (worker BLAS caps)

        words = [int(x, 16) for x in _chunks(_digest(point), 8)]
        ss = np.random.SeedSequence([self.base_seed, replicate, *words])
        return int(ss.generate_state(1)[0] & 0x7FFFFFFF)

    def points(self) -> list[dict]:
        """Instance-axis grid points in row-major order of the axes as written."""
        return _grid(self.axes)

    def cells(self) -> list[dict]:
        """Every cell, ordered so the cells of one instance are adjacent (oracle cache reuse)."""
        out = []
        for point in self.points():
            for rep in self.replicates:
                seed = self.instance_seed(rep, point)
                gen = {**self.params, **point}
                for entry in self.solvers:
                    own = {k: v for k, v in self.solver_axes.items() if k in entry.axis_params}
                    for spoint in _grid(own):
                        sparams = {**entry.params, **spoint}
                        cell = {
                            "scenario": self.scenario, "generator_params": gen,
                            "instance_seed": seed, "solver": entry.name,
                            "solver_params": sparams, "time_limit_s": self.time_limit_s,
                            "oracle": self.oracle, "oracle_options": self.oracle_options,
                        }
                        cell["cell"] = _digest(cell)
                        cell.update({"spec": self.name, "point": point,
                                     "solver_ref": entry.ref or entry.name,
                                     "solver_point": spoint, "replicate": rep,
                                     "solver_label": entry.label})
                        out.append(cell)
        return out


def _chunks(s: str, n: int) -> list[str]:
    return [s[i:i + n] for i in range(0, len(s), n)]


def _digest(obj) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _grid(axes: dict) -> list[dict]:
    points = [{}]
    for name, values in axes.items():
        points = [{**p, name: v} for p in points for v in values]
    return points


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_spec(path, size: str | None = None) -> Spec:
    """Read and validate a TOML spec; ``size`` picks a ``[sizes.NAME]`` override."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(str(path), "", "spec file not found")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(str(path), "", f"not valid TOML ({exc})") from None
    return spec_from_dict(data, file=str(path), size=size)


def spec_from_dict(data: dict, file: str | None = None, size: str | None = None) -> Spec:
    def bad(key, msg):
        raise SpecError(file, key, msg)

    if not isinstance(data, dict):
        bad("", "a spec must be a table")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        bad(unknown[0], f"unknown key (known: {', '.join(sorted(TOP_KEYS))})")
    sizes = data.get("sizes", {})
    if not isinstance(sizes, dict):
        bad("sizes", "must be a table of named overrides")
    if size is not None:
        if size not in sizes:
            bad("sizes", f"no size {size!r} (known: {', '.join(sizes) or 'none'})")
        if not isinstance(sizes[size], dict):
            bad(f"sizes.{size}", "must be a table")
        bad_keys = sorted(set(sizes[size]) - TOP_KEYS)
        if bad_keys:
            bad(f"sizes.{size}.{bad_keys[0]}", "unknown key")
        data = deep_merge({k: v for k, v in data.items() if k != "sizes"}, sizes[size])
    else:
        data = {k: v for k, v in data.items() if k != "sizes"}

    name = data.get("name")
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        bad("name", "required: a non-empty string without spaces or slashes")
    kind = data.get("kind", "sweep")
    if kind not in KINDS:
        bad("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    for key in ("title", "description"):
        if not isinstance(data.get(key, ""), str):
            bad(key, "must be a string")
    for key in ("params", "axes", "oracle_options", "report", "options", "paper"):
        if not isinstance(data.get(key, {}), dict):
            bad(key, "must be a table")

    scenario = data.get("scenario", "paper-default")
    from ..generators import SCENARIOS, scenario_params_declared

    if scenario not in SCENARIOS:
        bad("scenario", f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    declared = {q.name: q for q in scenario_params_declared()}

    def gen_value(key: str, pname: str, value):
        if pname not in declared:
            bad(key, f"{pname!r} is not a generator parameter (fgamcd-gen --list)")
        q = declared[pname]
        if q.type is tuple:
            if not isinstance(value, list | tuple) or not all(
                    isinstance(x, int | float) and not isinstance(x, bool) for x in value):
                bad(key, f"expected a list of numbers for {pname}, got {value!r}")
            value = tuple(float(x) for x in value)
        try:
            from ..params import resolve

            return resolve([q], {pname: value}, owner="")[pname]
        except ParameterError as exc:
            bad(key, str(exc).lstrip(": "))

    params = {k: gen_value(f"params.{k}", k, v) for k, v in data.get("params", {}).items()}
    if "seed" in params:
        bad("params.seed", "seeds come from 'seeds' and 'base_seed', not a generator parameter")
    axes: dict = {}
    solver_axes: dict = {}
    for k, values in data.get("axes", {}).items():
        if not isinstance(values, list) or not values:
            bad(f"axes.{k}", "must be a non-empty list of values")
        if k.startswith(SOLVER_AXIS):
            solver_axes[k[len(SOLVER_AXIS):]] = list(values)
        else:
            if k == "seed":
                bad("axes.seed", "vary seeds with 'seeds', not an axis")
            if k not in declared:
                bad(f"axes.{k}", f"{k!r} is not a generator parameter (fgamcd-gen --list)")
            vals = [gen_value(f"axes.{k}[{i}]", k, v) for i, v in enumerate(values)]
            if len({json.dumps(v) for v in vals}) != len(vals):
                bad(f"axes.{k}", "repeated value")
            axes[k] = vals

    solvers_raw = data.get("solvers", [])
    if kind == "sweep" and (not isinstance(solvers_raw, list) or not solvers_raw):
        bad("solvers", "need at least one [[solvers]] entry")
    from .pool import describe_solver

    solvers: list[SolverEntry] = []
    for i, s in enumerate(solvers_raw if isinstance(solvers_raw, list) else []):
        key = f"solvers[{i}]"
        if isinstance(s, str):
            s = {"name": s}
        if not isinstance(s, dict) or not isinstance(s.get("name"), str):
            bad(key, "needs a 'name' (solver name or path/to/file.py:Class)")
        extra = sorted(set(s) - {"name", "label", "params"})
        if extra:
            bad(f"{key}.{extra[0]}", "unknown key (name, label, params)")
        sname = s["name"]
        spath = sname
        if ":" in sname and sname.split(":")[0].endswith(".py") and file:
            fp = Path(sname.split(":")[0])
            if not fp.is_absolute():
                # a solver file is relative to the spec, so a spec and its solver travel together
                cand = Path(file).parent / fp
                if cand.is_file():
                    spath = f"{cand.resolve()}:{sname.split(':', 1)[1]}"
        try:  # a plugin is imported in a process of its own, never here
            solver_name, _, solver_params = describe_solver(spath)
        except FgamcdError as exc:
            bad(f"{key}.name", str(exc))
        sp = s.get("params", {})
        if not isinstance(sp, dict):
            bad(f"{key}.params", "must be a table")
        from ..params import resolve

        declared = {q.name for q in solver_params}
        mine = tuple(a for a in solver_axes if a in declared)
        try:
            resolve(solver_params, sp, owner=f"solver {solver_name}")
            for pname in mine:
                for v in solver_axes[pname]:
                    resolve(solver_params, {**sp, pname: v}, owner=f"solver {solver_name}")
        except ParameterError as exc:
            bad(f"{key}.params", str(exc))
        clash = sorted(set(mine) & set(sp))
        if clash:
            bad(f"{key}.params.{clash[0]}", "also a solver axis; give it in one place")
        label = s.get("label", sname)
        if not isinstance(label, str) or not label:
            bad(f"{key}.label", "must be a non-empty string")
        if any(e.label == label for e in solvers):
            bad(f"{key}.label", f"label {label!r} used twice; give each entry its own label")
        solvers.append(SolverEntry(label, sname, dict(sp), spath, mine))

    for a in solver_axes:
        if not any(a in e.axis_params for e in solvers):
            bad(f"axes.{SOLVER_AXIS}{a}", "no solver of the spec declares this parameter")
    seeds = data.get("seeds", 1)
    if isinstance(seeds, bool) or not (
            (isinstance(seeds, int) and seeds >= 1)
            or (isinstance(seeds, list) and seeds
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                        for x in seeds))):
        bad("seeds", "a count >= 1 or a non-empty list of replicate indices >= 0")
    replicates = list(range(seeds)) if isinstance(seeds, int) else list(dict.fromkeys(seeds))
    base_seed = data.get("base_seed", 0)
    if not isinstance(base_seed, int) or isinstance(base_seed, bool) or base_seed < 0:
        bad("base_seed", "must be an integer >= 0")
    policy = data.get("seed_policy", "common")
    if policy not in ("common", "per_point"):
        bad("seed_policy", "must be 'common' or 'per_point'")
    tl = data.get("time_limit_s")
    if tl is not None and (isinstance(tl, bool) or not isinstance(tl, int | float) or tl <= 0):
        bad("time_limit_s", "must be a number > 0")
    oracle = data.get("oracle", "fast")
    if oracle not in ORACLE_METHODS:
        bad("oracle", f"{oracle!r} is not one of {', '.join(ORACLE_METHODS)}")
    report = data.get("report", {})
    x = report.get("x")
    if x is not None and x not in axes and x not in (SOLVER_AXIS + a for a in solver_axes):
        bad("report.x", f"{x!r} is not one of the axes")
    raw = copy.deepcopy(data)
    raw["scenario"] = scenario
    return Spec(
        name=name, title=data.get("title", name), description=data.get("description", ""),
        kind=kind, scenario=scenario, params=params, axes=axes, solver_axes=solver_axes,
        solvers=solvers, replicates=replicates, base_seed=base_seed, seed_policy=policy,
        time_limit_s=float(tl) if tl is not None else None, oracle=oracle,
        oracle_options=dict(data.get("oracle_options", {})), report=dict(report),
        options=dict(data.get("options", {})), paper=dict(data.get("paper", {})), size=size,
        path=file, raw=raw,
    )


def spec_summary(spec: Spec) -> dict[str, Any]:
    return {"name": spec.name, "title": spec.title, "kind": spec.kind, "size": spec.size,
            "scenario": spec.scenario, "params": spec.params, "axes": spec.axes,
            "solver_axes": spec.solver_axes,
            "solvers": [{"label": s.label, "name": s.name, "params": s.params}
                        for s in spec.solvers],
            "replicates": spec.replicates, "base_seed": spec.base_seed,
            "seed_policy": spec.seed_policy, "time_limit_s": spec.time_limit_s,
            "oracle": spec.oracle, "hash": spec.hash}
