"""Small probes the conformance checks run inside a sandbox: is a process alive, is a
heartbeat file still beating, and a fork loop that no pid-by-pid fence can catch."""

from __future__ import annotations

import time

from ..sandbox import Sandbox

ALIVE = 'test -d /proc/$1 && [ "$(sed "s/.*) //" /proc/$1/stat | cut -c1)" != Z ]'

# A process that forks and exits in a loop: its pid changes all the time, so a fence that
# kills pid by pid always shoots at one that is gone. It beats a file while it lives.
FORK_LOOP = """
import os, sys, time
while True:
    if os.fork():
        os._exit(0)
    with open(sys.argv[1] + ".new", "w") as beat:
        beat.write(repr(time.time()))
    os.replace(sys.argv[1] + ".new", sys.argv[1])  # a reader never sees it empty
    time.sleep(0.002)
"""


def alive(sandbox: Sandbox, pid: str) -> bool:
    """Whether ``pid`` runs in the sandbox (a zombie waiting for its reaper does not count)."""
    for _ in range(20):
        if sandbox.exec(["sh", "-c", ALIVE, "alive", pid]).exit_code != 0:
            return False
        time.sleep(0.1)
    return True


def beats(sandbox: Sandbox, path: str, after: str = "", within_s: float = 20.0) -> str:
    """The heartbeat file's content once it holds a beat other than ``after`` ("" when the
    loop gave none in time: a busy machine may take seconds to start a Python)."""
    stop = time.monotonic() + within_s
    while time.monotonic() < stop:
        seen = sandbox.read_text(path) if sandbox.exists(path) else ""
        if seen and seen != after:
            return seen
        time.sleep(0.1)
    return ""
