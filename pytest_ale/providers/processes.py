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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

MARKER = "ALE_SANDBOX_ID"


def marked_processes(marker_value: str) -> tuple[list[int], bool]:
    """PIDs of processes whose environment carries ``ALE_SANDBOX_ID=marker_value``, and
    whether some process showed an empty environment: one caught inside ``execve`` does for
    a moment, and may be one of ours."""
    needle = f"{MARKER}={marker_value}".encode() + b"\0"
    found: list[int] = []
    unsure = False
    me = os.getpid()
    for pid, environ in _each("environ"):
        if pid == me:
            continue
        if not environ:
            unsure = unsure or _may_be_exec(pid)
        elif needle in environ + b"\0":
            found.append(pid)
    return found, unsure


def _each(name: str) -> Iterator[tuple[int, bytes]]:
    """``(pid, content of /proc/PID/<name>)`` for every process that can be read."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/{name}", "rb") as fh:
                    yield int(entry.name), fh.read()
            except OSError:
                continue


def _may_be_exec(pid: int) -> bool:
    """A process with no environment that is neither a zombie nor a kernel thread."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != b"Z" and fields[1] not in (b"0", b"2") and pid != 2


def kill_marked(marker_value: str, rounds: int = 20) -> int:
    """SIGKILL every process carrying the marker, repeatedly (children may be forking).

    A scan that finds none of ours but sees a process inside ``execve`` (no environment
    yet) looks again, so a child caught exec'ing is not missed.
    """
    killed: set[int] = set()
    rechecks = 2  # a process started with an empty environment (env -i) stays "unsure"
    for _ in range(rounds):
        found, unsure = marked_processes(marker_value)
        pids = [p for p in found if not _is_zombie(p)]
        if not pids:
            if not unsure or rechecks == 0:
                break
            rechecks -= 1
            time.sleep(0.002)
            continue
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
    running: set[subprocess.Popen] | None = None,
) -> Completed:
    """Run ``argv`` in its own session; on timeout kill its group and every marked process.
    ``running`` (when given) holds the process while it runs, so a fence on another thread
    can kill it (``kill_running``)."""
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
    if running is not None:
        running.add(proc)
    try:
        return _wait(proc, stdin, timeout, marker_value, started)
    finally:
        if running is not None:
            running.discard(proc)


def kill_running(running: set[subprocess.Popen]) -> int:
    """SIGKILL the process group of every command in ``running``; how many were alive."""
    killed = 0
    for proc in list(running):
        if proc.poll() is None:
            _kill_group(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            killed += 1
    return killed


def uid_processes(uid: int) -> list[int]:
    """PIDs of the live (not zombie) processes whose real uid is ``uid``."""
    found = []
    for pid, status in _each("status"):
        fields = dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
        real = fields.get(b"Uid", b"").split()
        if real and int(real[0]) == uid and not fields.get(b"State", b"").strip().startswith(b"Z"):
            found.append(pid)
    return found


def kill_uid(uid: int) -> int:
    """SIGKILL every process of ``uid``: ``kill -9 -1`` run as that uid, which the kernel
    applies to all of them at once (no fork can slip between), repeated until none is left."""
    killed = 0
    for _ in range(20):
        pids = uid_processes(uid)
        if not pids:
            break
        killed = max(killed, len(pids))
        subprocess.run(
            ["kill", "-9", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.01)
    return killed


#: output kept per stream of one command; past it the rest is read and dropped, saying so
MAX_STREAM_BYTES = 16 * 1024**2


class _CappedReader(threading.Thread):
    """Drains one pipe, keeping its first ``MAX_STREAM_BYTES`` (an agent printing without
    end must not fill the host's memory; ``communicate`` would keep it all)."""

    def __init__(self, pipe) -> None:
        super().__init__(name="ale-pipe", daemon=True)
        self.pipe, self.kept, self.dropped = pipe, bytearray(), 0
        self.start()

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self.pipe.read1(1 << 16):
                room = MAX_STREAM_BYTES - len(self.kept)
                self.kept += chunk[: max(room, 0)]
                self.dropped += max(len(chunk) - max(room, 0), 0)
        with contextlib.suppress(OSError, ValueError):
            self.pipe.close()

    def value(self) -> bytes:
        return capped_output(self.kept, self.dropped)


def capped_output(kept: bytes | bytearray, dropped: int) -> bytes:
    """What a stream kept, and a note of how much was dropped past ``MAX_STREAM_BYTES``."""
    note = f"\n(output cut: {dropped} more bytes dropped past 16 MiB)\n" if dropped else ""
    return bytes(kept) + note.encode()


def _feed(pipe, data: bytes) -> None:
    """Write ``data`` to a command's stdin and close it (in a thread: a command that never
    reads must not block its own timeout)."""
    with contextlib.suppress(OSError, ValueError):
        pipe.write(data)
    with contextlib.suppress(OSError, ValueError):
        pipe.close()


def _wait(
    proc: subprocess.Popen, stdin: bytes | None, timeout: float | None, marker_value: str, started: float
) -> Completed:
    timed_out = False
    out, err = _CappedReader(proc.stdout), _CappedReader(proc.stderr)
    if proc.stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin or b""), name="ale-stdin", daemon=True).start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        kill_marked(marker_value)
        proc.wait()
    except BaseException:
        _kill_group(proc.pid)
        kill_marked(marker_value)
        proc.wait()
        raise
    for reader in (out, err):
        # a grandchild may still hold the pipe open: stop waiting, keep what was read
        reader.join(5 if not timed_out else 2)
    lost = b"" if not (out.is_alive() or err.is_alive()) else b"\n(a process kept the output pipes open)\n"
    return Completed(proc.returncode, out.value(), err.value() + lost, timed_out, time.monotonic() - started)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
