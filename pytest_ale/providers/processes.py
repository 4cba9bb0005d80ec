"""Host process control for sandboxes that run processes on this machine.

Every process a trial starts carries an environment marker (``ALE_SANDBOX_ID``); a
process inherits it from its parent even after ``setsid`` or a double fork, so scanning
``/proc`` for the marker finds processes that escaped their process group. Killing is by
process group first, then by marker, until nothing marked is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass

MARKER = "ALE_SANDBOX_ID"


def marked_pids(marker_value: str) -> list[int]:
    """PIDs of live processes whose environment carries ``ALE_SANDBOX_ID=marker_value``."""
    needle = f"{MARKER}={marker_value}".encode() + b"\0"
    found: list[int] = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                environ = fh.read() + b"\0"
        except OSError:
            continue
        if needle in environ or environ.startswith(needle):
            found.append(int(entry.name))
    return found


def kill_marked(marker_value: str, rounds: int = 20, quiet_scans: int = 3) -> int:
    """SIGKILL every process carrying the marker, repeatedly (children may be forking).

    Done only after ``quiet_scans`` scans in a row find nothing: a process caught inside
    ``execve`` shows an empty environment for a moment, and one scan would miss it.
    """
    killed: set[int] = set()
    quiet = 0
    for _ in range(rounds + quiet_scans):
        pids = [p for p in marked_pids(marker_value) if not _is_zombie(p)]
        if not pids:
            quiet += 1
            if quiet >= quiet_scans:
                break
            time.sleep(0.01)
            continue
        quiet = 0
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    return len(killed)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


@dataclass
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration_s: float


def run_killable(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str | None,
    timeout: float | None,
    stdin: bytes | None,
    marker_value: str,
) -> Completed:
    """Run ``argv`` in its own session; on timeout kill its group and every marked process."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        kill_marked(marker_value)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            # a grandchild still holds the pipes open: stop reading, keep what we have
            proc.kill()
            out, err = b"", b"(output lost: a process kept the pipes open after the kill)"
    except BaseException:
        _kill_group(proc.pid)
        kill_marked(marker_value)
        proc.wait()
        raise
    return Completed(proc.returncode, out or b"", err or b"", timed_out, time.monotonic() - started)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
