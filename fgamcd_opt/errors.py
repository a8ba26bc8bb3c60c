"""Error types. Every user-facing failure is one of these and renders as a single line."""

from __future__ import annotations


class FgamcdError(Exception):
    """Base class: a problem the user can fix (bad file, bad option), not a bug."""

    exit_code = 2


class InputError(FgamcdError):
    """A file or field is malformed: names the file, the JSON path and what is wrong."""

    def __init__(self, file: str | None, path: str, message: str):
        self.file = file
        self.path = path
        self.message = message
        where = f"{file}: " if file else ""
        at = f"{path}: " if path else ""
        super().__init__(f"{where}{at}{message}")


class InstanceError(InputError):
    """An instance file (or its sidecar) is invalid."""


class PlanError(InputError):
    """A plan file is malformed or does not fit its instance."""


class SolverNotFound(FgamcdError):
    """A solver name or path:Class does not resolve to a solver."""


class ParameterError(FgamcdError):
    """A solver or generator parameter has the wrong name, type or value."""


class ResourceLimitError(FgamcdError):
    """An instance would need more memory than the configured limit (``--max-memory`` or the
    environment variable FGAMCD_MAX_MEMORY); the message gives the estimate and the limit."""


class SolverRefusal(FgamcdError):
    """A solver refuses an instance or a parameter value that does not fit it (a policy trained
    for another N, a negative episode count). Raised inside ``solve``: the runner records
    ``solver_status`` error with ``metadata["refused"]``, and ``fgamcd-solve`` prints the one-line
    reason on stderr and exits 2, as for any bad input. Any :class:`FgamcdError` raised by a
    solver is a refusal too."""
