"""The parent side of isolation (docs/experiments.md, "Isolation"): a pool of slots that runs
cells in child processes (:mod:`.isolation`) and never lets one cell's failure reach another.

Each slot owns one trusted *host* process (built-in cells of an instance run there one after
another, sharing the generated instance and the oracle memo) and, while it runs a plugin cell, a
fresh *sandbox* process for that cell alone. The pool keeps a deadline per cell:

- a run that passes its time limit plus the grace (:func:`.isolation.grace_s`) is killed with
  its whole process group: row state ``killed``;
- a child that dies costs its own cell (``crashed``); the slot starts a new host for the next;
- Ctrl-C or SIGTERM kills every child at once and raises :class:`Interrupted` naming the cells
  that were running (the sweep writes them to its log); finished rows were emitted already.

Rows are handed to ``emit`` one by one as cells finish (the caller appends them to the store).
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable

from .isolation import (
    SCORE_TIMEOUT_MIN_S,
    STARTUP_TIMEOUT_S,
    base_row,
    grace_s,
    is_builtin,
)

MAX_LINE_BYTES = 64 * 2**20  # a child's message larger than this is a protocol violation


def instance_key(cell: dict) -> str:
    """The instance (and oracle) a cell runs on: cells with equal keys share a memo."""
    return json.dumps([cell["scenario"], cell["generator_params"], cell["instance_seed"],
                       cell["oracle"], cell.get("oracle_options")], sort_keys=True)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the pool; ``running`` are the cells that were stopped."""

    def __init__(self, running: list[dict]):
        super().__init__("interrupted")
        self.running = running


def child_env(threads: int = 1) -> dict[str, str]:
    """The environment of a child: this one, BLAS/OpenMP pools capped at ``threads``, and this
    interpreter's import path (so a checkout run without installing finds the same code)."""
    from .executors import thread_env

    env = dict(os.environ)
    env.update(thread_env(threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit code {code}"


class Child:
    """A child process of :mod:`.isolation` and its JSON-lines pipes. It leads a process group
    of its own (so a kill reaches whatever it started) but stays in this session: with Linux
    autogroup scheduling a new session would get a CPU share of its own, and the suite would
    take more than its share of a shared machine."""

    def __init__(self, mode: str, env: dict[str, str]):
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fgamcd_opt.experiments.isolation", mode, str(req_r),
                 str(res_w)], pass_fds=(req_r, res_w), stdin=subprocess.DEVNULL,
                process_group=0, env=env)
        except BaseException:
            for fd in (req_r, req_w, res_r, res_w):
                os.close(fd)
            raise
        os.close(req_r)
        os.close(res_w)
        self.mode = mode
        self.wfd = req_w
        self.rfd = res_r
        self._buf = b""
        self.eof = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, obj) -> bool:
        """Write one request; False if the child is gone."""
        blob = (json.dumps(obj, allow_nan=False) + "\n").encode()
        try:
            while blob:
                blob = blob[os.write(self.wfd, blob):]
        except (BrokenPipeError, OSError):
            return False
        return True

    def feed(self) -> list:
        """Read what is available: the complete messages (a non-JSON or oversized line is
        returned as the string 'invalid'); sets :attr:`eof` when the child closed its end."""
        try:
            chunk = os.read(self.rfd, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
        self._buf += chunk
        out = []
        while b"\n" in self._buf:
            line, _, self._buf = self._buf.partition(b"\n")
            try:
                msg = json.loads(line)
                out.append(msg if isinstance(msg, dict) else "invalid")
            except ValueError:
                out.append("invalid")
        if len(self._buf) > MAX_LINE_BYTES:
            out.append("invalid")
            self._buf = b""
        return out

    def kill(self) -> None:
        """SIGKILL the child's whole process group (its own children too) and reap it."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.close()

    def close(self, wait_s: float = 5.0) -> None:
        for fd in (self.wfd, self.rfd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.wfd = self.rfd = -1
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()

    def exit_text(self) -> str:
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        return exit_text(code)


class _InProcessHost:
    """The host's work done in this process (``--inline``: debugging; built-in runs cannot be
    killed here, plugin runs are still sandboxed)."""

    mode = "host"

    def __init__(self):
        self.pending: list = []

    def send(self, req) -> bool:
        from .isolation import run_builtin_cell, score_plugin_cell

        if req.get("op") == "run":
            self.pending.append({"event": "started"})
            row = run_builtin_cell(req["cell"])
            if req.get("export_memo"):
                from .isolation import export_memo

                export_memo(req["cell"], req["export_memo"])
            self.pending.append({"event": "row", "row": row})
        elif req.get("op") == "score":
            self.pending.append({"event": "row", "row": score_plugin_cell(req["cell"],
                                                                          req["outcome"])})
        return True

    def kill(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Slot:
    def __init__(self, index: int):
        self.index = index
        self.host = None
        self.sandbox: Child | None = None
        self.cells: deque = deque()
        self.cell: dict | None = None
        self.phase = ""  # run | solve | score
        self.started: float | None = None  # when the solve started (the child said so)
        self.deadline: float | None = None
        self.result_path = ""

    @property
    def busy(self) -> bool:
        return self.cell is not None or bool(self.cells)


class CellPool:
    """``slots`` slots running tasks (lists of cells: the built-in cells of one instance, or
    one plugin cell). ``inline``: the host's work is done in this process."""

    def __init__(self, slots: int = 1, threads: int = 1, inline: bool = False,
                 grace: float | None = None):
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.grace = grace  # None: the documented default, isolation.grace_s
        self.env = child_env(threads)
        self.inline = inline
        self.slots = [_Slot(i) for i in range(slots)]
        self.tmp = tempfile.mkdtemp(prefix="fgamcd-pool-")
        self._sel = selectors.DefaultSelector()
        self._emit: Callable[[dict], None] = lambda row: None
        self._seq = 0
        self._builtins_left: dict[str, int] = {}

    # ---- children -------------------------------------------------------------------------
    def _spawn(self, slot: _Slot, mode: str) -> Child:
        child = Child(mode, self.env)
        self._sel.register(child.rfd, selectors.EVENT_READ, (slot, child))
        return child

    def _drop(self, child) -> None:
        if isinstance(child, Child):
            if child.rfd >= 0:
                try:
                    self._sel.unregister(child.rfd)
                except (KeyError, ValueError):
                    pass
            child.kill()

    def _host(self, slot: _Slot):
        if slot.host is None:
            slot.host = _InProcessHost() if self.inline else self._spawn(slot, "host")
        return slot.host

    # ---- the loop -------------------------------------------------------------------------
    def run(self, tasks: list[list[dict]], emit: Callable[[dict], None],
            stop: Callable[[], bool] | None = None) -> None:
        """Run every task; ``emit`` receives each row as its cell finishes. Raises
        :class:`Interrupted` on Ctrl-C or SIGTERM, or when ``stop()`` turns true (checked about
        once a second), after killing every child."""
        self._emit = emit
        queue = [t for t in tasks if t]
        # a plugin cell waits for the built-in cells of its instance (to start from their memo)
        self._builtins_left = {}
        for t in queue:
            for c in t:
                if is_builtin(c.get("solver_ref") or c["solver"]):
                    k = instance_key(c)
                    self._builtins_left[k] = self._builtins_left.get(k, 0) + 1
        try:
            while queue or any(s.busy for s in self.slots):
                if stop is not None and stop():
                    raise KeyboardInterrupt
                for slot in self.slots:
                    if not slot.busy and queue:
                        ready = next((t for t in queue if self._ready(t)), None)
                        if ready is not None:
                            queue.remove(ready)
                            slot.cells = deque(ready)
                    if slot.cell is None and slot.cells:
                        self._start(slot)
                self._poll_inline()
                if not any(s.cell is not None for s in self.slots):
                    continue
                self._wait()
        except KeyboardInterrupt:
            running = [s.cell for s in self.slots if s.cell is not None]
            self.close(force=True)
            raise Interrupted(running) from None

    def _ready(self, task: list[dict]) -> bool:
        """A task can start: built-in cells always; a plugin cell once no built-in cell of its
        instance is queued or running (the built-ins are queued first, so this never waits for
        a cell that cannot start)."""
        c = task[0]
        return is_builtin(c.get("solver_ref") or c["solver"]) or \
            not self._builtins_left.get(instance_key(c))

    def _memo_path(self, cell: dict) -> str:
        digest = hashlib.sha256(instance_key(cell).encode()).hexdigest()[:16]
        return os.path.join(self.tmp, f"memo-{digest}.pickle")

    def _start(self, slot: _Slot) -> None:
        cell = slot.cells.popleft()
        slot.cell = cell
        slot.started = None
        ref = cell.get("solver_ref") or cell["solver"]
        now = time.monotonic()
        try:
            if is_builtin(ref):
                slot.phase = "run"
                slot.deadline = now + STARTUP_TIMEOUT_S
                req = {"op": "run", "cell": cell}
                if self._builtins_left.get(instance_key(cell)) == 1:
                    req["export_memo"] = self._memo_path(cell)  # its instance's last built-in
                if not self._host(slot).send(req):
                    self._host_died(slot)
            else:
                slot.phase = "solve"
                slot.deadline = now + STARTUP_TIMEOUT_S
                self._seq += 1
                slot.result_path = os.path.join(self.tmp, f"result-{self._seq}.json")
                slot.sandbox = self._spawn(slot, "sandbox")
                slot.sandbox.send({"op": "solve", "cell": cell, "result_path": slot.result_path,
                                   "memo_path": self._memo_path(cell)})
        except OSError as exc:  # could not start a process (fork limits, no memory)
            self._finish(slot, self._row(cell, "failed", f"could not start its process: "
                                                        f"{exc}"))

    def _poll_inline(self) -> None:
        for slot in self.slots:
            host = slot.host
            while isinstance(host, _InProcessHost) and host.pending:
                self._handle(slot, host, host.pending.pop(0))

    def _wait(self) -> None:
        now = time.monotonic()
        deadlines = [s.deadline for s in self.slots if s.cell is not None and s.deadline]
        timeout = max(0.0, min(deadlines) - now) if deadlines else 1.0
        for key, _ in self._sel.select(timeout=min(timeout, 1.0)):
            slot, child = key.data
            for msg in child.feed():
                if slot.cell is None:
                    break
                self._handle(slot, child, msg)
            if child.eof and child.rfd >= 0:
                self._died(slot, child)
        now = time.monotonic()
        for slot in self.slots:
            if slot.cell is not None and slot.deadline is not None and now > slot.deadline:
                self._overdue(slot)

    # ---- events ---------------------------------------------------------------------------
    def _handle(self, slot: _Slot, child, msg) -> None:
        cell = slot.cell
        if cell is None:
            return
        event = msg.get("event") if isinstance(msg, dict) else None
        if child is slot.sandbox:
            if event == "started" and slot.started is None:
                slot.started = time.monotonic()
                hard = self._hard(cell.get("time_limit_s"))
                slot.deadline = slot.started + hard if hard is not None else None
            elif event == "result" and slot.started is not None:
                took = time.monotonic() - slot.started
                self._drop(slot.sandbox)
                slot.sandbox = None
                self._score(slot, {"result_path": slot.result_path, "solve_time_s": took})
            else:  # anything else from a plugin's process is a protocol violation
                self._drop(slot.sandbox)
                slot.sandbox = None
                self._finish(slot, self._row(cell, "crashed", "its process broke the result "
                                                              "protocol (unexpected message)"))
            return
        if event == "started" and slot.phase == "run":
            slot.started = time.monotonic()
            hard = self._hard(cell.get("time_limit_s"))
            slot.deadline = slot.started + hard if hard is not None else None
        elif event == "row":
            row = msg.get("row") if isinstance(msg.get("row"), dict) else None
            self._finish(slot, row or self._row(cell, "failed", "the host sent no row"))
        elif event == "error":
            self._finish(slot, self._row(cell, "failed", f"internal error in the worker: "
                                                         f"{msg.get('message')}"))
        else:
            self._drop(slot.host)
            slot.host = None
            self._finish(slot, self._row(cell, "failed", "the worker broke its protocol"))

    def _hard(self, limit: float | None) -> float | None:
        if limit is None:
            return None
        return limit + (self.grace if self.grace is not None else grace_s(limit))

    def _score(self, slot: _Slot, outcome: dict) -> None:
        slot.phase = "score"
        slot.started = time.monotonic()
        slot.deadline = slot.started + max(SCORE_TIMEOUT_MIN_S,
                                           slot.cell.get("time_limit_s") or 0.0)
        if not self._host(slot).send({"op": "score", "cell": slot.cell, "outcome": outcome}):
            self._host_died(slot)

    def _died(self, slot: _Slot, child: Child) -> None:
        try:
            self._sel.unregister(child.rfd)
        except (KeyError, ValueError):
            pass
        cell = slot.cell
        if child is slot.sandbox:
            slot.sandbox = None
            how = child.exit_text()
            child.kill()  # its process group: anything it left behind
            if cell is not None:
                took = time.monotonic() - slot.started if slot.started else 0.0
                self._finish(slot, self._row(cell, "crashed", f"its process died ({how}) "
                                                              f"after {took:.1f} s"))
        elif child is slot.host:
            self._host_died(slot)
        else:
            child.kill()

    def _host_died(self, slot: _Slot) -> None:
        host = slot.host
        slot.host = None
        how = host.exit_text() if isinstance(host, Child) else "gone"
        self._drop(host)
        cell = slot.cell
        if cell is None:
            return
        if slot.phase == "score":
            self._finish(slot, self._row(cell, "failed", f"the worker scoring its plan died "
                                                         f"({how})"))
        else:
            self._finish(slot, self._row(cell, "crashed", f"its process died ({how})"))

    def _overdue(self, slot: _Slot) -> None:
        cell = slot.cell
        limit = cell.get("time_limit_s")
        if slot.phase == "score":
            self._drop(slot.host)
            slot.host = None
            self._finish(slot, self._row(cell, "failed", "scoring its plan took longer than "
                                                         f"{slot.deadline - slot.started:.0f} s"))
            return
        child = slot.sandbox if slot.phase == "solve" else slot.host
        if slot.phase == "solve":
            slot.sandbox = None
        else:
            slot.host = None
        self._drop(child)
        if slot.started is None:
            self._finish(slot, self._row(cell, "failed", "its process did not start the run "
                                                         f"within {STARTUP_TIMEOUT_S:.0f} s"))
        else:
            took = time.monotonic() - slot.started
            self._finish(slot, self._row(
                cell, "killed", f"killed after {took:.1f} s: over the time limit of {limit:g} s "
                                f"plus {self._hard(limit) - limit:g} s grace",
                solve_time_s=took))

    def _row(self, cell: dict, state: str, message: str, **extra) -> dict:
        row = base_row(cell)
        row.update(state=state, message=message, verdict="not_evaluated",
                   finished=time.time(), worker=f"pool slot (pid {os.getpid()})", **extra)
        return row

    def _finish(self, slot: _Slot, row: dict) -> None:
        cell = slot.cell
        if cell is not None and is_builtin(cell.get("solver_ref") or cell["solver"]):
            k = instance_key(cell)
            self._builtins_left[k] = max(0, self._builtins_left.get(k, 0) - 1)
        slot.cell = None
        slot.phase = ""
        slot.deadline = None
        slot.started = None
        if slot.result_path:
            try:
                os.unlink(slot.result_path)
            except OSError:
                pass
            slot.result_path = ""
        self._emit(row)

    # ---- one-shot children: conformance checks, plugin descriptions ----------------------
    def check(self, ref: str, time_limit_s: float | None, budget_s: float | None) -> dict:
        """The conformance check of one plugin in a process of its own; a crash or a run past
        ``budget_s`` is a FAIL that says so."""
        t0 = time.monotonic()
        rep, problem = self.ask("check", {"op": "check", "ref": ref,
                                          "time_limit_s": time_limit_s}, budget_s)
        took = time.monotonic() - t0
        if problem:
            return {"ok": False, "failures": [f"the check's process {problem}"],
                    "time_s": took}
        return {"ok": bool(rep.get("ok")), "time_s": took,
                "failures": [str(f) for f in rep.get("failures") or []][:20]}

    def ask(self, mode: str, request: dict, budget_s: float | None) -> tuple[dict, str]:
        """Start a one-shot child, send ``request`` and wait for its report: (report, '') or
        ({}, what went wrong). ``budget_s`` counts from the child's start signal."""
        t0 = time.monotonic()
        try:
            child = Child(mode, self.env)
        except OSError as exc:
            return {}, f"could not start its process ({exc})"
        try:
            child.send(request)
            sel = selectors.DefaultSelector()
            sel.register(child.rfd, selectors.EVENT_READ)
            deadline = t0 + STARTUP_TIMEOUT_S
            started = False
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    child.kill()
                    return {}, (f"ran past its budget of {budget_s:g} s (killed)" if started
                                else f"did not start within {STARTUP_TIMEOUT_S:g} s (killed)")
                if not sel.select(timeout=min(left, 1.0)):
                    continue
                for msg in child.feed():
                    if isinstance(msg, dict) and msg.get("event") == "started" and not started:
                        started = True
                        deadline = time.monotonic() + budget_s if budget_s else float("inf")
                    elif isinstance(msg, dict) and msg.get("event") == "report" and \
                            isinstance(msg.get("report"), dict):
                        child.close()
                        sel.close()
                        return msg["report"], ""
                    else:
                        child.kill()
                        return {}, "broke the result protocol"
                if child.eof:
                    how = child.exit_text()
                    child.kill()
                    return {}, f"died ({how})"
        except KeyboardInterrupt:
            child.kill()
            raise


    # ---- shutting down --------------------------------------------------------------------
    def close(self, force: bool = False) -> None:
        for slot in self.slots:
            for child in (slot.sandbox, slot.host):
                if isinstance(child, Child):
                    if force:
                        self._drop(child)
                    else:
                        child.send({"op": "exit"})
                        try:
                            self._sel.unregister(child.rfd)
                        except (KeyError, ValueError):
                            pass
                        child.close()
            slot.sandbox = slot.host = None
        self._sel.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


_DESCRIBED: dict = {}


def describe_solver(ref: str, timeout_s: float = 120.0):
    """(name, description, params) of a solver without importing a plugin's code here: a
    built-in is imported (trusted); a plugin is described by a child process. Raises
    :class:`~fgamcd_opt.errors.SolverNotFound` with the reason when it cannot be loaded."""
    from .. import registry
    from ..errors import SolverNotFound
    from .isolation import params_from_description
    from .provenance import solver_code

    if is_builtin(ref):
        cls = registry.get_solver(ref)
        return cls.name, cls.description, tuple(cls.params)
    path = ref.rsplit(":", 1)[0]
    if ":" in ref and (path.endswith(".py") or "/" in ref):
        if not os.path.isfile(path):
            raise SolverNotFound(f"{path}: solver file not found")
    elif ref not in registry.plugin_entry_points():
        registry.get_solver(ref)  # unknown: its error lists the known names (imports nothing)
    key = (ref, json.dumps(solver_code(ref), sort_keys=True))
    if key not in _DESCRIBED:
        pool = CellPool(1)
        try:
            info, problem = pool.ask("describe", {"op": "describe", "ref": ref}, timeout_s)
        finally:
            pool.close()
        if problem:
            raise SolverNotFound(f"{ref}: importing the solver (in a process of its own): the "
                                 f"process {problem}")
        if info.get("error"):
            raise SolverNotFound(str(info["error"]))
        try:
            params = params_from_description(info)
        except ValueError as exc:
            raise SolverNotFound(f"{ref}: {exc}") from None
        if not isinstance(info.get("name"), str) or not info["name"]:
            raise SolverNotFound(f"{ref}: the solver has no name")
        _DESCRIBED[key] = (info["name"], str(info.get("description", "")), params)
    return _DESCRIBED[key]
