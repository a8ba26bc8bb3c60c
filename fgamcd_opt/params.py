"""Declared parameters (of solvers and generators): name, type, default, help.

The CLI lists them (``--list-solvers``, ``fgamcd-gen --list``) and parses ``name=value``
assignments against them; reports record the values used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ParameterError


@dataclass(frozen=True)
class Param:
    name: str
    type: type  # int, float, str, bool, or tuple (a comma-separated pair/list of floats)
    default: Any
    help: str = ""
    choices: tuple | None = None

    def parse(self, text: str, owner: str = "") -> Any:
        where = f"{owner}: " if owner else ""
        try:
            if self.type is bool:
                low = text.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    value = True
                elif low in ("0", "false", "no", "off"):
                    value = False
                else:
                    raise ValueError(text)
            elif self.type is tuple:
                value = tuple(float(x) for x in text.split(","))
                if self.default is not None and len(value) != len(self.default):
                    raise ValueError(f"expected {len(self.default)} comma-separated numbers")
            else:
                value = self.type(text)
        except ValueError as exc:
            raise ParameterError(f"{where}parameter {self.name}: cannot read {text!r} as "
                                 f"{self.type.__name__} ({exc})") from None
        return self.check(value, owner)

    def check(self, value: Any, owner: str = "") -> Any:
        where = f"{owner}: " if owner else ""
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"{where}parameter {self.name}: {value!r} is not one of "
                                 f"{', '.join(map(str, self.choices))}")
        if self.type is int and not isinstance(value, int | bool):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ParameterError(f"{where}parameter {self.name}: expected an integer, got "
                                 f"{value!r}")
        if self.type is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return value

    def describe(self) -> str:
        ch = f" (one of {', '.join(map(str, self.choices))})" if self.choices else ""
        return f"{self.name}: {self.type.__name__} = {self.default!r}{ch}  {self.help}"


def resolve(params: Sequence[Param], given: dict | None, owner: str = "") -> dict:
    """Defaults overlaid with ``given`` (already typed values or strings); unknown names fail."""
    by_name = {p.name: p for p in params}
    out = {p.name: p.default for p in params}
    for name, value in (given or {}).items():
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise ParameterError(f"{owner + ': ' if owner else ''}unknown parameter {name!r} "
                                 f"(known: {known})")
        p = by_name[name]
        out[name] = p.parse(value, owner) if isinstance(value, str) and p.type is not str \
            else p.check(value, owner)
    return out


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """['eps_hot=2', 'cap=3'] -> {'eps_hot': '2', 'cap': '3'}."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"parameter assignment {item!r} is not of the form name=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out
