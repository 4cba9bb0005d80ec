"""Stopping a run: SIGINT and SIGTERM unwind like Ctrl-C, once; orphaned workers stop.

- SIGINT and SIGTERM raise ``KeyboardInterrupt`` in every process of a run (controller and
  xdist workers), even when the launcher left SIGINT ignored (a shell's background job),
  so each trial's ``finally`` releases its sandbox. A second signal while that unwinding
  runs is ignored, so the releases are not cut short (SIGKILL abandons them).
- A signal that lands while the main thread is inside execnet (xdist's messages between
  controller and workers) does not raise there, which would cut a message in half and
  hang both sides; the watch thread sends it again a moment later.
- ``stopping()`` is true from the first signal on: no new sandbox is acquired after it.
- A ``Watch`` thread refreshes the run lock's heartbeat and, in an xdist worker, watches
  its parent: when the controller dies (SIGKILL), the worker interrupts itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sysconfig
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: how often the watch thread looks at its parent (and sends a deferred signal again)
POLL_S = 0.5
_STDLIB = sysconfig.get_paths()["stdlib"]
_SITE = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])

_state: dict[str, Any] = {"reason": None, "raised": False, "pending": None, "watch": None}
_state.update(previous={}, depth=0)


def stopping() -> str | None:
    """Why the run is stopping, or ``None`` while it goes on."""
    return _state["reason"]


def request_stop(reason: str) -> None:
    if _state["reason"] is None:
        _state["reason"] = reason


def install() -> None:
    """Turn SIGINT (unless a handler of someone else's is set) and SIGTERM (unless set)
    into one ``KeyboardInterrupt``; called at configure, undone by ``uninstall`` (a session
    run inside another, as pytester does, shares the outer one's handlers)."""
    _state.update(reason=None, raised=False, pending=None)
    _state["depth"] += 1
    if _state["depth"] > 1 or threading.current_thread() is not threading.main_thread():
        return
    _state["previous"] = {}
    for signum in SIGNALS:
        current = signal.getsignal(signum)
        ours = (signal.SIG_DFL, signal.SIG_IGN, None)
        if current in ours or (signum == signal.SIGINT and current is signal.default_int_handler):
            _state["previous"][signum] = current
            signal.signal(signum, _on_signal)


def uninstall() -> None:
    _state["depth"] = max(_state["depth"] - 1, 0)
    if _state["depth"] or threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in _state["previous"].items():
        if signal.getsignal(signum) == _on_signal:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    _state["previous"] = {}


def _on_signal(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    request_stop(f"{name} received")
    if _state["raised"]:
        _say(f"pytest-ale: {name}: already stopping, releasing sandboxes (SIGKILL abandons them)")
        return
    watch = _state["watch"]
    if watch is not None and watch.is_alive() and _in_execnet(frame):
        _state["pending"] = signum  # the watch thread sends it again once out of there
        return
    _state["raised"] = True
    _state["pending"] = None
    raise KeyboardInterrupt(f"{name} (pytest-ale releases every sandbox before exiting)")


def _in_execnet(frame: FrameType | None) -> bool:
    """Whether the interrupted code is execnet's own (past any standard-library frames it
    called), not merely running under it: an xdist worker's whole session does."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith("execnet"):
            return True
        where = frame.f_code.co_filename
        if not where.startswith(_STDLIB) or where.startswith(_SITE):
            return False
        frame = frame.f_back
    return False


def shield() -> None:
    """From now on SIGINT and SIGTERM no longer raise (the process is releasing what it holds
    and then ends anyway); SIGKILL still stops it."""
    _state["raised"] = True


def interrupt_self(reason: str) -> None:
    """From any thread: stop this process as a Ctrl-C would (the main thread unwinds)."""
    request_stop(reason)
    _say(f"pytest-ale: {reason}; interrupting this process")
    os.kill(os.getpid(), signal.SIGINT)


def _say(text: str) -> None:
    """To stderr's file descriptor, unbuffered: a signal handler may have interrupted a write
    to ``sys.stderr`` (a buffered writer raises on such a re-entrant call)."""
    with contextlib.suppress(OSError):
        os.write(2, (text + "\n").encode(errors="replace"))


class Watch(threading.Thread):
    """Daemon thread: ``beat`` every ``heartbeat_s``; with ``watch_parent``, interrupt this
    process once its parent is gone (reparented: ``os.getppid()`` changed)."""

    def __init__(self, beat: Callable[[], None], heartbeat_s: float, *, watch_parent: bool) -> None:
        super().__init__(name="ale-watch", daemon=True)
        self.beat = beat
        self.heartbeat_s = heartbeat_s
        self.parent = os.getppid() if watch_parent else None
        self.done = threading.Event()

    def run(self) -> None:
        _state["watch"] = self
        waited = 0.0
        while not self.done.wait(POLL_S):
            pending = _state["pending"]
            if pending is not None and not _state["raised"]:
                os.kill(os.getpid(), pending)
            waited += POLL_S
            if waited >= self.heartbeat_s:
                waited = 0.0
                self.beat()
            if self.parent is not None and os.getppid() != self.parent:
                interrupt_self(f"the controller (pid {self.parent}) is gone")
                self.parent = None

    def stop(self) -> None:
        self.done.set()
