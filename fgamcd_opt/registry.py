"""Finding solvers, lazily: built-ins (package ``fgamcd_solvers``, from the top-level ``solvers/``
folder), third-party packages through the ``fgamcd_opt.solvers`` entry-point group, and a user's
file given as ``path/to/my_solver.py:MySolver``.

Built-ins are registered twice on purpose: in :data:`BUILTIN_SOLVERS` (name -> "module:Class",
so a source checkout that is not installed still finds them) and under the entry-point group in
pyproject.toml, exactly as a third-party package registers ``name = "package.module:Class"``.
Nothing is imported until a solver is asked for; solver modules import heavy dependencies
(torch, pyomo) inside ``solve``, so listing solvers stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .errors import SolverNotFound
from .solver import missing_members

ENTRY_POINT_GROUP = "fgamcd_opt.solvers"

BUILTIN_SOLVERS: dict[str, str] = {
    "trimcaching": "fgamcd_solvers.trimcaching:TrimCachingSolver",
    "nocoop": "fgamcd_solvers.nocoop:NoCoopSolver",
    "tdma": "fgamcd_solvers.tdma:TdmaSolver",
    "coarse": "fgamcd_solvers.coarse:CoarseSolver",
    "hybrid": "fgamcd_solvers.hybrid:HybridSolver",
    "full-comp": "fgamcd_solvers.fullcomp:FullCompSolver",
    "milp": "fgamcd_solvers.milp:MilpSolver",
    "maasn": "fgamcd_solvers.maasn:MaasnSolver",
    "replicate": "fgamcd_solvers.replicate:ReplicateSolver",
    "guard-only": "fgamcd_solvers.guardonly:GuardOnlySolver",
    "guard-fill": "fgamcd_solvers.guardonly:GuardFillSolver",
    "qmix": "fgamcd_solvers.qmix:QmixSolver",
}


def check_solver_class(cls, origin: str) -> type:
    """The class satisfies the :class:`~fgamcd_opt.solver.Solver` protocol (name, description,
    params, solve); ``description`` defaults to the docstring's first line, ``params`` to ()."""
    if not isinstance(cls, type):
        raise SolverNotFound(f"{origin}: {cls!r} is not a class")
    if not hasattr(cls, "params"):
        cls.params = ()
    if not hasattr(cls, "description"):
        cls.description = (cls.__doc__ or "").strip().split("\n")[0]
    missing = [a for a in ("name", "solve") if not hasattr(cls, a)]
    if missing or not callable(getattr(cls, "solve", None)):
        raise SolverNotFound(f"{origin}: {cls.__name__} is not a solver (missing "
                             f"{', '.join(missing) or 'a callable solve'})")
    lacking = missing_members(cls)
    if lacking:
        raise SolverNotFound(f"{origin}: {cls.__name__} does not satisfy the Solver protocol "
                             f"(missing {', '.join(lacking)})")
    return cls


def load_reference(ref: str, name: str) -> type:
    """'package.module:Class' -> the class; a missing module says what is missing."""
    module_name, _, cls_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = (" (the built-in solvers live in the fgamcd_solvers package: install the project "
                "with `pip install .`, or run from a checkout with the project root on "
                "sys.path)" if module_name.startswith("fgamcd_solvers") else "")
        raise SolverNotFound(f"solver {name!r}: cannot import {module_name}: {exc}{hint}"
                             ) from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise SolverNotFound(f"solver {name!r}: {module_name} has no class {cls_name!r}")
    return check_solver_class(cls, ref)


def plugin_entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_from_file(spec: str) -> type:
    """'path/to/file.py:ClassName' -> the class (the file is imported as a module)."""
    path_s, _, cls_name = spec.rpartition(":")
    path = Path(path_s)
    if not path.is_file():
        raise SolverNotFound(f"{path_s}: solver file not found")
    mod_name = f"fgamcd_user_solver_{abs(hash(path.resolve()))}"
    s = importlib.util.spec_from_file_location(mod_name, path)
    if s is None or s.loader is None:
        raise SolverNotFound(f"{path_s}: cannot import as a Python module")
    module = importlib.util.module_from_spec(s)
    sys.modules[mod_name] = module
    try:
        s.loader.exec_module(module)
    except Exception as exc:
        raise SolverNotFound(f"{path_s}: importing the solver file failed: "
                             f"{type(exc).__name__}: {exc}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise SolverNotFound(f"{path_s}: no class {cls_name!r} in the file")
    return check_solver_class(cls, path_s)


def available() -> dict[str, str]:
    """name -> "module:Class" for every registered solver (built-ins first), importing none."""
    out = dict(BUILTIN_SOLVERS)
    for name, ep in plugin_entry_points().items():
        out.setdefault(name, ep.value)
    return out


def builtin_solvers() -> dict[str, type]:
    """name -> class for every built-in solver (imports them; raises if one cannot load)."""
    return {name: load_reference(ref, name) for name, ref in BUILTIN_SOLVERS.items()}


def get_solver(spec: str) -> type:
    """Resolve a solver name, entry point or ``file.py:Class`` to a solver class."""
    if ":" in spec and (spec.split(":")[0].endswith(".py") or "/" in spec):
        return load_from_file(spec)
    if spec in BUILTIN_SOLVERS:
        return load_reference(BUILTIN_SOLVERS[spec], spec)
    eps = plugin_entry_points()
    if spec in eps:
        try:
            cls = eps[spec].load()
        except Exception as exc:
            raise SolverNotFound(f"solver {spec!r}: loading entry point {eps[spec].value} "
                                 f"failed: {type(exc).__name__}: {exc}") from None
        return check_solver_class(cls, eps[spec].value)
    known = ", ".join(sorted(available()))
    raise SolverNotFound(f"unknown solver {spec!r} (known: {known}; or give "
                         "path/to/file.py:ClassName)")
