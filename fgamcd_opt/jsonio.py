"""Reading and writing JSON files: one-line errors with JSON paths, atomic writes."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from enum import Enum
from pathlib import Path

import numpy as np

from .errors import InputError


def json_path(parts: Iterable) -> str:
    """['users', 3, 'node'] -> 'users[3].node' (the root is '$')."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or "$"


def read_json(path: str | os.PathLike, error_type: type[InputError] = InputError):
    """Parse a JSON file; missing files, bad syntax and NaN/Infinity give one-line errors."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error_type(file, "", "file not found") from None
    except IsADirectoryError:
        raise error_type(file, "", "is a directory, expected a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error_type(file, "", f"cannot read file ({exc})") from None

    try:
        # NaN/Infinity tokens parse to nan here so that validation can report their JSON path
        return json.loads(text, parse_constant=lambda token: float("nan"))
    except json.JSONDecodeError as exc:
        raise error_type(file, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: "
                                   f"{exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise error_type(file, "", str(exc)) from None


def find_non_finite(obj, parts=()) -> tuple | None:
    """Path of the first float that is NaN or infinite (e.g. 1e999 parses as inf)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return parts
    if isinstance(obj, dict):
        for k, v in obj.items():
            r = find_non_finite(v, (*parts, k))
            if r is not None:
                return r
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            r = find_non_finite(v, (*parts, i))
            if r is not None:
                return r
    return None


def _describe(err) -> str:
    if err.validator == "additionalProperties":
        return err.message.replace("Additional properties are not allowed", "unknown field(s)")
    if err.validator == "required":
        return err.message.replace("is a required property", "is required")
    if err.validator in ("type", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
                         "minItems", "maxItems", "minLength", "maxLength"):
        return err.message
    return err.message


def validate_schema(data, schema: dict, file: str, error_type: type[InputError]) -> None:
    """Validate against a JSON Schema; raise the most relevant error with its path."""
    if not isinstance(data, dict):
        raise error_type(file, "$", f"expected a JSON object, got {type(data).__name__}")
    bad = find_non_finite(data)
    if bad is not None:
        raise error_type(file, json_path(bad), "number is not finite (NaN, Infinity or a "
                                               "literal too large for a float)")
    import jsonschema  # here, not at import: listing solvers must stay fast

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    # deepest error first: it names the field that is actually wrong
    best = jsonschema.exceptions.best_match(errors, key=lambda e: (-len(e.absolute_path),))
    errs = sorted(errors, key=lambda e: -len(e.absolute_path))
    err = errs[0] if len(errs[0].absolute_path) >= len(best.absolute_path) else best
    while err.context:  # descend into oneOf/anyOf to the specific failure
        err = max(err.context, key=lambda e: len(e.absolute_path))
    raise error_type(file, json_path(err.absolute_path), _describe(err))


def jsonable(obj):
    """A JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to None, tuples to
    lists, and any other object to its repr (never a crash when writing results)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Enum):
        return obj.value
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    return repr(obj)


def write_json_atomic(path: str | os.PathLike, data, indent: int | None = 1) -> None:
    """Write to a temporary file in the same folder and rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
