"""Host processes for the example provider: one command run with its output capped and its
stdin fed; finding, counting and killing processes by uid or by an environment marker."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass

#: what each output stream of a command keeps; the rest is read and dropped, saying so
CAP = 16 * 1024**2
#: every process a command starts carries ``EXEC_MARK=<its id>``: a timeout kills them all
EXEC_MARK = "ALE_EXAMPLE_EXEC"


@dataclass
class Ran:
    code: int
    out: bytes
    err: bytes
    timed_out: bool
    seconds: float


def as_uid(uid: int) -> list[str]:
    """The prefix running a command as ``uid``: no groups, no capabilities, no way back."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", "--"]


def run(argv: list[str], *, cwd: str, env: dict[str, str], stdin: bytes | None, timeout: float | None) -> Ran:
    exec_id = uuid.uuid4().hex
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**env, EXEC_MARK: exec_id},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        return Ran(127, b"", f"{argv[0]}: not found\n".encode(), False, 0.0)
    except PermissionError:
        return Ran(126, b"", f"{argv[0]}: permission denied\n".encode(), False, 0.0)
    out, err = _Reader(proc.stdout), _Reader(proc.stderr)
    threading.Thread(target=_feed, args=(proc.stdin, stdin or b""), daemon=True).start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_marked(f"{EXEC_MARK}={exec_id}")
        proc.wait()
    for reader in (out, err):
        reader.join(5)  # a process left in the background may hold the pipe: keep what came
    code = -9 if timed_out else proc.returncode
    return Ran(code, out.value(), err.value(), timed_out, time.monotonic() - started)


def _feed(pipe, data: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):
        pipe.write(data)
    with contextlib.suppress(OSError, ValueError):
        pipe.close()


class _Reader(threading.Thread):
    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe, self.kept, self.dropped = pipe, bytearray(), 0
        self.start()

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := self.pipe.read1(1 << 16):
                room = max(CAP - len(self.kept), 0)
                self.kept += chunk[:room]
                self.dropped += len(chunk) - min(room, len(chunk))

    def value(self) -> bytes:
        note = f"\n({self.dropped} more bytes of output dropped)\n" if self.dropped else ""
        return bytes(self.kept) + note.encode()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid()]


def marked(needle: str) -> list[int]:
    """Live processes whose environment holds ``needle`` (``NAME=VALUE``)."""
    found, want = [], needle.encode()
    for pid in _pids():
        with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as fh:
            if want in fh.read().split(b"\0"):
                found.append(pid)
    return found


def of_uid(uid: int) -> list[int]:
    """Live processes (zombies aside) whose real uid is ``uid``."""
    found = []
    for pid in _pids():
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
            if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
                found.append(pid)
    return found


def kill_marked(needle: str) -> int:
    """Kill every process carrying ``needle`` until none is left; how many there were."""
    seen: set[int] = set()
    for _ in range(20):
        pids = marked(needle)
        if not pids:
            break
        for signal in (19, 9):  # all stopped first: a shell whose child died runs nothing more
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal)
        seen.update(pids)
        time.sleep(0.02)
    return len(seen)


def kill_uid(uid: int) -> int:
    """``kill -9 -1`` as ``uid`` (the kernel signals all of its processes at once, so a fork
    loop cannot slip between) until none is left; how many there were."""
    seen: set[int] = set()
    for _ in range(20):
        pids = of_uid(uid)
        if not pids:
            break
        seen.update(pids)
        subprocess.run([*as_uid(uid), "kill", "-9", "-1"], capture_output=True)
        time.sleep(0.02)
    return len(seen)
