"""Containing task code: a task's import, setup and grader never take the run down.

Every place that runs a task author's code (importing ``main.py``, ``load()``, the
instruction, ``setup``/``start`` and ``evaluate``) goes through ``run_task_code``. While
that code runs, in the thread running it:

- ``os._exit`` / ``os.abort`` raise instead of ending the process, ``sys.exit`` and other
  ``BaseException``s (``SystemExit``, a ``KeyboardInterrupt`` no Ctrl-C caused,
  ``GeneratorExit``) are caught, and ``os.fork`` / ``os.forkpty`` are refused (a forked
  copy of pytest would go on running the test session): each becomes the task's own
  error (``TaskDefinitionError`` for import and setup, ``GraderError`` for the grader),
  naming the file, the cause and the fix; a fault the code swallowed still counts;
- a package the host lacks (a ``ModuleNotFoundError`` for a module not of the task's own
  tree) becomes that error too, naming the module and ``pytest-ale deps TREE``
  (``deps.missing_module_message``), not a traceback;
- ``os.environ`` carries the process marker ``ALE_SANDBOX_ID=task-code-<token>`` (as
  sandbox processes carry their sandbox's, ``providers/processes.py``), inherited by every
  program the code starts, after ``setsid`` or a double fork too; when the code returns,
  whatever still carries it is killed (found by scanning ``/proc``), with a warning;
- the time is bounded: in the main thread (collection, and trials without concurrency)
  by SIGALRM, which interrupts sleeps and Python loops; the grader runs in a daemon worker
  thread that is stopped (an asynchronous exception) or else abandoned at its limit;
- a real Ctrl-C (SIGINT) still stops the run: the guard notes the signal and re-raises;
- the signal handlers and the working directory are restored afterwards.

Why in-process: task modules must be importable objects (``cb.Task`` values, functions
the trial calls with a live ``Sandbox``), collection must stay fast, and graders run on
the host beside the hidden reference; a subprocess per call would have to pickle all of
that. What this cannot contain: a crash of the interpreter itself (a segfault in a C
extension, ``os.kill(os.getpid(), SIGKILL)``), C code that never returns to the
interpreter (a worker thread stuck there is abandoned, still using CPU until the run
ends), main-thread code that swallows every ``BaseException`` in an endless loop, threads
the task code starts (they run unguarded), programs started with an environment that
drops the marker, and changes to other process-wide state (``sys.modules``,
``os.environ``). Other threads' own use of ``os._exit`` or ``fork``
(pytest's, xdist's) is untouched: the replacements look only at the calling thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from .deps import missing_module_message
from .errors import AleError
from .providers.processes import MARKER, kill_marked

#: signal handlers task code may replace; they are put back when it returns
RESTORED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE)
#: signals whose Python handlers stop the run (by raising KeyboardInterrupt)
INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: how long a stopped grader thread gets to unwind before it is abandoned
STOP_GRACE_S = 2.0

_local = threading.local()
_tokens = itertools.count(1)
_install_lock = threading.Lock()
_real: dict[str, Callable[..., Any]] = {}


class TaskCodeWarning(pytest.PytestWarning):
    """Task code left something behind that pytest-ale cleaned up (processes it started)."""


class _Contained(BaseException):
    """Raised in the task's thread in place of something that would end the run."""


class _TimeUp(BaseException):
    """Raised in the task's thread when its time limit is reached."""


@dataclass
class Guard:
    """One run of task code: what it is, where it lives, what it did that it must not."""

    main_py: Path
    what: str
    fault: type[AleError]
    limit_s: float | None
    limit_key: str
    root: Path
    token: str = field(default_factory=lambda: f"task-code-{os.getpid()}.{next(_tokens)}")
    violation: str | None = None
    timed_out: bool = False
    interrupted: bool = False
    running: bool = False

    @property
    def fix(self) -> str:
        if self.what.startswith("evaluate"):
            return "a grader returns a score instead (0.0 with an explanation for wrong output)"
        return "raise an ordinary exception to report a problem instead"

    # -- the faults, as the task's error -------------------------------------------------
    def error(self, exc: BaseException | None) -> BaseException | None:
        """The error to raise for what the code did (``None``: nothing wrong)."""
        if self.interrupted:  # a real Ctrl-C: the run stops, whatever the code made of it
            return exc if isinstance(exc, KeyboardInterrupt) else KeyboardInterrupt()
        if self.timed_out or isinstance(exc, _TimeUp):
            return self._timeout_error(exc)
        if self.violation is not None:
            return self.fault(f"{self.main_py}: {self.what} {self.violation}")
        missing = missing_module_message(exc, self.main_py, self.what, self.root) if exc else None
        if missing is not None:  # a package the host lacks: the command, not a traceback
            return self.fault(missing)
        if exc is None or isinstance(exc, Exception):
            return exc
        if isinstance(exc, SystemExit):
            cause = f"called sys.exit({exc.code!r}) (SystemExit), which would stop the whole test run"
        elif isinstance(exc, KeyboardInterrupt):
            cause = "raised KeyboardInterrupt (no Ctrl-C was pressed), which would stop the whole test run"
        else:
            cause = f"raised {type(exc).__name__} (a BaseException), which would stop the whole test run"
        return self.fault(f"{self.main_py}: {self.what} {cause}\n{self._frames(exc)}{self.fix}")

    def _timeout_error(self, exc: BaseException | None, frame: FrameType | None = None) -> AleError:
        where = self._frames(exc) if exc is not None else self._frames(None, frame)
        stopped = "stopped" if exc is not None or frame is None else "abandoned (it could not be interrupted)"
        return self.fault(
            f"{self.main_py}: {self.what} exceeded its {self.limit_s:g} s limit and was {stopped}\n"
            f"{where}make it faster, or raise {self.limit_key!r} (seconds) in task_card.json"
        )

    def _frames(self, exc: BaseException | None, frame: FrameType | None = None) -> str:
        """Traceback lines in the task's own files (of ``exc``, or of a stuck ``frame``)."""
        if exc is not None:
            summary = traceback.extract_tb(exc.__traceback__)
        else:
            summary = traceback.extract_stack(frame) if frame is not None else traceback.StackSummary()
        return "".join(traceback.format_list([f for f in summary if _under(f.filename, self.root)]))

    # -- the run, in this thread ---------------------------------------------------------
    @contextlib.contextmanager
    def _bound_to_thread(self) -> Iterator[None]:
        outer = getattr(_local, "guard", None)
        _local.guard = self
        try:
            yield
        finally:
            _local.guard = outer

    @contextlib.contextmanager
    def _marked(self) -> Iterator[None]:
        """Processes started meanwhile inherit the token; the ones alive after are killed."""
        previous = os.environ.get(MARKER)
        forks_before = _forks_since_boot()
        os.environ[MARKER] = self.token
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(MARKER, None)
            else:
                os.environ[MARKER] = previous
            if forks_before is None or _forks_since_boot() != forks_before:
                self.kill_leftovers()

    def kill_leftovers(self) -> None:
        killed = kill_marked(self.token)
        if killed:
            warnings.warn_explicit(  # shown at the task's file, not at this one
                TaskCodeWarning(
                    f"{self.main_py}: {self.what} left {killed} process(es) running; they were "
                    "killed (wait for the programs task code starts, e.g. subprocess.run, before returning)"
                ),
                TaskCodeWarning,
                str(self.main_py),
                1,
            )

    @contextlib.contextmanager
    def _same_cwd(self) -> Iterator[None]:
        cwd = os.getcwd()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                if os.getcwd() != cwd:
                    os.chdir(cwd)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """Signal handlers back as they were afterwards; a real interrupt (Ctrl-C, or
        SIGTERM, which the plugin turns into one) is noted, so it is never the task's."""
        saved = {sig: signal.getsignal(sig) for sig in RESTORED_SIGNALS}

        def noting(handler: Callable[[int, FrameType | None], Any]) -> Callable[..., Any]:
            def on_signal(signum: int, frame: FrameType | None) -> Any:
                self.interrupted = True
                return handler(signum, frame)

            return on_signal

        for sig in INTERRUPTS:
            if callable(saved[sig]):
                signal.signal(sig, noting(saved[sig]))
        try:
            yield
        finally:
            for sig, handler in saved.items():
                with contextlib.suppress(OSError, ValueError, TypeError):
                    signal.signal(sig, handler)

    @contextlib.contextmanager
    def _alarm(self) -> Iterator[None]:
        """SIGALRM at the limit (then every second, should the code swallow it)."""
        their_delay, their_interval = signal.getitimer(signal.ITIMER_REAL)
        if self.limit_s is None or (their_delay and their_delay <= self.limit_s):
            yield  # no limit, or someone else's alarm (pytest-timeout) fires first anyway
            return
        their_handler = signal.getsignal(signal.SIGALRM)
        started = time.monotonic()

        def on_alarm(signum: int, frame: FrameType | None) -> None:
            if self.running:
                self.timed_out = True
                raise _TimeUp

        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, self.limit_s, 1.0)
        try:
            yield
        finally:
            self.running = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, their_handler)
            if their_delay:
                left = max(their_delay - (time.monotonic() - started), 0.001)
                signal.setitimer(signal.ITIMER_REAL, left, their_interval)

    def run_here(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func`` in this (the main) thread, bounded by SIGALRM."""
        outcome: BaseException | None = None
        value = None
        with self._marked(), self._same_cwd(), self._signals(), self._alarm(), self._bound_to_thread():
            try:
                self.running = True
                value = func(*args)
            except BaseException as exc:  # every escape from task code is sorted here
                outcome = exc
            finally:
                self.running = False
        return self._finish(outcome, value)

    def run_in_worker(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func`` in a daemon thread; stop or abandon it at the limit."""
        box: dict[str, Any] = {}

        def work() -> None:
            with self._bound_to_thread():
                try:
                    box["value"] = func(*args)
                except BaseException as exc:  # handed to the waiting thread
                    box["error"] = exc

        worker = threading.Thread(target=work, name=f"ale-task-{self.token}", daemon=True)
        with self._marked(), self._same_cwd():
            worker.start()
            try:
                worker.join(self.limit_s)
            except BaseException:  # a real Ctrl-C while waiting: stop the grader, then go
                _raise_in(worker, _TimeUp)
                raise
            if worker.is_alive():
                self.timed_out = True
                frame = sys._current_frames().get(worker.ident or -1)
                _raise_in(worker, _TimeUp)
                self.kill_leftovers()  # a grader waiting on a program is freed by its end
                worker.join(STOP_GRACE_S)
                if worker.is_alive():
                    raise self._timeout_error(None, frame)
        outcome = box.get("error")
        return self._finish(outcome, box.get("value"))

    def _finish(self, outcome: BaseException | None, value: Any) -> Any:
        error = self.error(outcome)
        if error is None:
            return value
        if error is outcome:
            raise error
        raise error from None  # the message holds the cause and the task's frames


def run_task_code(
    func: Callable[..., Any],
    *args: Any,
    main_py: Path,
    what: str,
    fault: type[AleError],
    limit_s: float | None,
    limit_key: str,
    worker: bool = False,
    root: Path | None = None,
) -> Any:
    """Call ``func(*args)`` (task code) contained; its faults raise ``fault`` naming
    ``main_py`` and ``what`` ("importing it", "setup()", "evaluate()"). ``limit_s`` bounds
    it, ``limit_key`` names the card key that raises the limit. With ``worker`` (and
    always off the main thread, where SIGALRM cannot be used) it runs in a worker thread.
    ``root`` is the folder of the task's own files (tracebacks show frames there only).
    Ordinary exceptions propagate unchanged, for the caller to word (but for a missing
    package: ``deps.missing_module_message``)."""
    _install()
    guard = Guard(main_py, what, fault, limit_s, limit_key, (root or main_py.parent).resolve())
    if worker or threading.current_thread() is not threading.main_thread():
        return guard.run_in_worker(func, *args)
    return guard.run_here(func, *args)


# -- the replacements of os._exit, os.abort, os.fork, os.forkpty --------------------------
def _install() -> None:
    """Replace the process-ending calls once; other threads get the real ones."""
    with _install_lock:
        if _real:
            return
        import posix

        ends = "which would end the whole test run at once; {fix}"
        fork = "task code runs inside pytest, where a forked copy would go on running the test session"
        for name, cause in (
            ("_exit", f"called os._exit({{args}}), {ends}"),
            ("abort", f"called os.abort(), {ends}"),
            (
                "fork",
                f"called os.fork(), refused: {fork}; start programs with subprocess.run([...]) "
                "(or multiprocessing.get_context('spawn'))",
            ),
            ("forkpty", f"called os.forkpty(), refused: {fork}; start programs with subprocess"),
        ):
            real = getattr(os, name, None)
            if real is None:
                continue
            _real[name] = real
            replacement = _replacement(name, real, cause)
            setattr(os, name, replacement)
            if getattr(posix, name, None) is real:
                setattr(posix, name, replacement)


def _replacement(name: str, real: Callable[..., Any], cause: str) -> Callable[..., Any]:
    def contained(*args: Any) -> Any:
        guard: Guard | None = getattr(_local, "guard", None)
        if guard is None:
            return real(*args)
        text = cause.format(args=", ".join(map(repr, args)), fix=guard.fix)
        guard.violation = guard.violation or text
        raise _Contained(text)

    contained.__name__ = contained.__qualname__ = name
    contained.__doc__ = real.__doc__
    return contained


# -- processes ------------------------------------------------------------------------------
def _forks_since_boot() -> int | None:
    """The kernel's count of processes created (``/proc/stat``): unchanged means none new."""
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"processes "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


# -- threads --------------------------------------------------------------------------------
def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """Raise ``exc_type`` in ``thread`` at its next Python instruction (not inside C)."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(exc_type))


def _under(filename: str, root: Path) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(root)
    except (OSError, ValueError):
        return False
