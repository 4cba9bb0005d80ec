"""Removing containers always: the removals the provider owes, run in the background, and
finished on SIGINT/SIGTERM and at exit.

A trial's ``finally`` releases its sandbox (``DockerProvider.release``), which hands its
container's removal to this guard; the guard catches what ``finally`` cannot: a SIGTERM
(which Python does not turn into an exception), and process exit with removals still
pending. Then it has the provider release every sandbox it still holds (``stop``: through
``Provider.release``, removing at once), removes what is still owed, and hands the signal
on (``KeyboardInterrupt`` for SIGINT, the default action for SIGTERM). What a SIGKILL
leaves behind carries an expiry label for ``--ale-sweep``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ContainerGuard:
    """The removals one provider owes (containers it started and has not removed yet), done
    whatever happens. ``remove`` removes one container; ``stop`` releases every sandbox the
    provider still holds (``Provider.release_held``)."""

    def __init__(self, remove: Callable[[str], None], stop: Callable[[], None] | None = None) -> None:
        self._remove = remove
        self._stop = stop
        self._live: dict[str, str] = {}
        # re-entrant: the signal handler takes it in the main thread, which the signal may
        # have interrupted while holding it (a plain Lock deadlocked the process for good)
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ale-docker-rm")
        self._pending: list[Future[None]] = []
        self._previous: dict[int, Any] = {}
        self._installed = False
        self._closed = False
        #: set while a signal or the exit finishes the removals: every removal runs at once
        self._stopping = False
        atexit.register(self.release_all)

    # -- bookkeeping -------------------------------------------------------------------
    def add(self, container_id: str, name: str) -> None:
        with self._lock:
            self._live[container_id] = name
        self.install()

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._live.pop(container_id, None)

    def live(self) -> list[str]:
        with self._lock:
            return list(self._live)

    def release(self, container_id: str, *, wait: bool = False) -> None:
        """Remove one container; in the background unless ``wait`` (the trial goes on)."""
        with self._lock:
            if not wait and not self._closed and not self._stopping:
                self._pending = [f for f in self._pending if not f.done()]
                self._pending.append(self._pool.submit(self._remove_now, container_id))
                return
        self._remove_now(container_id)

    def _remove_now(self, container_id: str) -> None:
        try:
            self._remove(container_id)
        finally:
            self.forget(container_id)

    def wait(self) -> None:
        """Wait for the background removals started so far."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            with contextlib.suppress(Exception):
                future.result(timeout=60)

    def release_all(self) -> None:
        """Have the provider release what it still holds (removing at once), wait for the
        background removals, then remove whatever is still owed."""
        stopping, self._stopping = self._stopping, True
        try:
            if self._stop is not None:
                with contextlib.suppress(Exception):
                    self._stop()
            self.wait()
            for container_id in self.live():
                with contextlib.suppress(Exception):
                    self._remove_now(container_id)
        finally:
            self._stopping = stopping

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.release_all()
        self.uninstall()
        self._pool.shutdown(wait=True)
        atexit.unregister(self.release_all)

    # -- signals -----------------------------------------------------------------------
    def install(self) -> None:
        if self._installed or threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed or threading.current_thread() is not threading.main_thread():
            return
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, previous)
        self._installed = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.release_all()
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            self.uninstall()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
