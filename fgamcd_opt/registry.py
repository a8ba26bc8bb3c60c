"""Finding solvers: built-ins in ``solvers/`` (package ``fgamcd_solvers``), third-party packages
through the ``fgamcd_opt.solvers`` entry-point group, and a user's file given as
``path/to/my_solver.py:MySolver``.

A module of ``fgamcd_solvers`` lists its solver classes in ``__solvers__``. A third-party package
registers ``name = "package.module:Class"`` under ``[project.entry-points."fgamcd_opt.solvers"]``.
Imports are lazy, so listing solvers does not import cvxpy or pyomo.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path

from .errors import SolverNotFound

ENTRY_POINT_GROUP = "fgamcd_opt.solvers"
BUILTIN_PACKAGE = "fgamcd_solvers"


def _check_solver_class(cls, origin: str):
    missing = [a for a in ("name", "solve") if not hasattr(cls, a)]
    if missing:
        raise SolverNotFound(f"{origin}: {cls!r} is not a solver (missing {', '.join(missing)})")
    if not hasattr(cls, "params"):
        cls.params = ()
    if not hasattr(cls, "description"):
        cls.description = (cls.__doc__ or "").strip().split("\n")[0]
    return cls


def builtin_solvers() -> dict[str, type]:
    """name -> class for every solver in the built-in package."""
    try:
        pkg = importlib.import_module(BUILTIN_PACKAGE)
    except ImportError:
        return {}
    out = {}
    for mod in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{BUILTIN_PACKAGE}.{mod.name}")
        for cls in getattr(module, "__solvers__", ()):
            out[cls.name] = _check_solver_class(cls, module.__name__)
    return out


def plugin_entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_from_file(spec: str):
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
    return _check_solver_class(cls, path_s)


def available() -> dict[str, str]:
    """name -> origin ('builtin' or the entry point's value), without importing plugins."""
    out = {name: "builtin" for name in builtin_solvers()}
    for name, ep in plugin_entry_points().items():
        out.setdefault(name, ep.value)
    return out


def get_solver(spec: str):
    """Resolve a solver name, entry point or ``file.py:Class`` to a solver class."""
    if ":" in spec and (spec.split(":")[0].endswith(".py") or "/" in spec):
        return load_from_file(spec)
    builtins = builtin_solvers()
    if spec in builtins:
        return builtins[spec]
    eps = plugin_entry_points()
    if spec in eps:
        try:
            cls = eps[spec].load()
        except Exception as exc:
            raise SolverNotFound(f"solver {spec!r}: loading entry point {eps[spec].value} "
                                 f"failed: {type(exc).__name__}: {exc}") from None
        return _check_solver_class(cls, eps[spec].value)
    known = ", ".join(sorted(set(builtins) | set(eps)))
    raise SolverNotFound(f"unknown solver {spec!r} (known: {known}; or give "
                         "path/to/file.py:ClassName)")
