"""A private asyncio event loop on a daemon thread, so synchronous code can drive asyncssh.

The ``Sandbox`` interface is synchronous (one pytest item at a time per process), while
asyncssh is asyncio-native. One loop thread per process serves every SSH connection the
process holds; ``LoopThread.run`` submits a coroutine and blocks until it finishes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_shared: LoopThread | None = None
_shared_lock = threading.Lock()


class LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="pytest-ale-ssh", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (re-raising its exception)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise


def shared_loop() -> LoopThread:
    """The process-wide loop thread, started on first use."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.thread.is_alive():
            _shared = LoopThread()
        return _shared
