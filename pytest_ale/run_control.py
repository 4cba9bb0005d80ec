"""The controller's side of stopping an ``-n N`` run: Ctrl-C, SIGTERM or an interrupted
worker stops every worker at once, and nothing of the run is left afterwards.

xdist alone lets each worker finish the trials it was sent (a background run whose
SIGINT was ignored even ran to the end), then kills the workers that are slow to leave,
abandoning their sandboxes. Here the controller sends SIGINT to each worker of the run
(they are in the run's owner files, ``liveness``), waits while they release their
sandboxes through each trial's own ``finally``, and once xdist has torn the workers down,
sweeps whatever of the run is still there. A run a worker's interrupt is stopping that has
not ended ``STOP_DEADLINE_S`` later (xdist replacing workers it should not) is
interrupted at the controller too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from . import interrupts

if TYPE_CHECKING:
    from .session import AleSession

#: how long the controller waits for interrupted workers to release their sandboxes (then
#: xdist takes them down within 10 s, and the controller sweeps what they still held)
STOP_WAIT_S = 15.0
#: how long a run stopped by an interrupted worker may take before the controller interrupts
STOP_DEADLINE_S = 20.0


class RunControl:
    def __init__(self, config: pytest.Config, session: AleSession) -> None:
        self.config = config
        self.session = session
        self.signalled: set[int] = set()
        self.deadline: threading.Timer | None = None

    def _say(self, text: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(text, yellow=True)

    def stop_workers(self, why: str, *, wait: bool) -> None:
        """SIGINT every live worker of this controller (once each); with ``wait``, until they
        have let go of the run (released their sandboxes and left pytest) or ``STOP_WAIT_S``."""
        lock = self.session.run_lock
        if lock is None:
            return
        workers = [w for w in lock.workers() if w.pid not in self.signalled]
        for worker in workers:
            with contextlib.suppress(OSError):
                os.kill(worker.pid, signal.SIGINT)
            self.signalled.add(worker.pid)
        if workers:
            self._say(f"pytest-ale: {why}: stopping {len(workers)} worker(s); their sandboxes are released")
        deadline = time.monotonic() + STOP_WAIT_S
        while wait and lock.workers() and time.monotonic() < deadline:
            time.sleep(0.1)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        try:
            return (yield)
        finally:  # the loop is over: whatever happens now, the deadline does not apply
            if self.deadline is not None:
                self.deadline.cancel()

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.stop_workers("interrupted", wait=True)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """A worker that was interrupted (SIGINT, SIGTERM) stops the whole run, not just itself."""
        if not error and getattr(node, "workeroutput", {}).get("exitstatus") == pytest.ExitCode.INTERRUPTED:
            why = f"worker {node.gateway.id} was interrupted"
            self.stop_workers(why, wait=False)
            if self.deadline is None:
                late = f"{why} and the run did not stop within {STOP_DEADLINE_S:.0f} s"
                self.deadline = threading.Timer(STOP_DEADLINE_S, interrupts.interrupt_self, (late,))
                self.deadline.daemon = True
                self.deadline.start()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """After an interrupt (and after xdist took its workers down), sweep the run: what a
        worker could not release in time is removed now, not left to a later sweep."""
        if exitstatus != pytest.ExitCode.INTERRUPTED or self.session.settings.keep:
            return
        lock = self.session.run_lock
        if lock is None:
            return
        alive = lock.workers()
        if alive:
            self._say(f"pytest-ale: {len(alive)} worker(s) still alive; not sweeping under them")
            return
        try:
            removed = self.session.provider().sweep(self.session.settings.run_id)
        except Exception as exc:  # an engine's own error too: the run ends, saying so
            self._say(f"pytest-ale: sweeping the interrupted run failed: {exc}")
            return
        if removed:
            self._say(f"pytest-ale: interrupted; swept {len(removed)} sandbox(es) the run still held")
