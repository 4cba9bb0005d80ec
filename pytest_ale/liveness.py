"""Whether a run is alive: the run lock every process of a run holds, and who holds it.

Each process of a run (the controller and every xdist worker) holds a shared ``flock`` on
``<run dir>/.ale-run.lock`` for as long as it lives, and describes itself in
``<run dir>/.ale-owners/<host>-<pid>.json``: pid, host, the process's start time (so a
reused pid is not taken for it), its role (``controller``, ``gw0``...) and its parent. The
kernel drops a lock with its process, SIGKILL included, so "can the lock be taken
exclusively?" is the test of "does anything of this run still run?" on this machine. The
owner files say who, and their heartbeat (the file's mtime, refreshed every few seconds)
says the same of owners on another machine sharing the folder, which ``flock`` may miss.

A controller takes the lock exclusively first, so two live runs never share a run id, nor
a run and a sweep of it; then it holds it shared, like its workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import AleError

LOCK_FILE = ".ale-run.lock"
OWNERS_DIR = ".ale-owners"
#: how often a live owner touches its file, and after how long silence another host's owner
#: counts as gone
HEARTBEAT_S = 5.0
STALE_S = 30.0


class RunBusyError(AleError):
    """The run is alive (or being swept): the operation would act under its trials."""

    def __init__(self, run_dir: Path, owners: list[Owner]) -> None:
        self.owners = owners
        who = "; ".join(o.describe() for o in owners) or f"a process holds {run_dir / LOCK_FILE}"
        super().__init__(f"run {run_dir.name!r} is still running ({who})")


def process_start(pid: int) -> str:
    """When ``pid`` started (clock ticks since boot, from /proc), or '' where unknown;
    ``"exited"`` for a zombie (dead, its locks dropped, only not reaped yet)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return ""
    return "exited" if fields[0] in ("Z", "X") else fields[19]


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    start: str
    role: str
    parent: int
    #: the owner file's mtime when read: its last heartbeat
    beat: float = 0.0

    @classmethod
    def me(cls, role: str) -> Owner:
        pid = os.getpid()
        return cls(pid, socket.gethostname(), process_start(pid), role, os.getppid(), time.time())

    def alive(self) -> bool:
        if self.host != socket.gethostname():
            return time.time() - self.beat < STALE_S
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        now = process_start(self.pid)
        return now != "exited" and (not self.start or now in ("", self.start))

    def describe(self) -> str:
        return f"{self.role} pid {self.pid} on {self.host}"


def stamp() -> str:
    """This process as ``host/pid/start``: what a provider labels its sandboxes with."""
    me = Owner.me("")
    return f"{me.host}/{me.pid}/{me.start}"


def owners(run_dir: Path) -> list[Owner]:
    """Every owner file of the run, live or stale."""
    found = []
    for path in sorted((run_dir / OWNERS_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            found.append(Owner(**{**data, "beat": path.stat().st_mtime}))
        except (OSError, ValueError, TypeError):
            continue
    return found


def live_owners(run_dir: Path) -> list[Owner]:
    return [o for o in owners(run_dir) if o.alive()]


def _open_lock(run_dir: Path) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    return os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _try(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold the run exclusively (a sweep of it); ``RunBusyError`` while any owner lives."""
    fd = _open_lock(run_dir)
    try:
        live = live_owners(run_dir)
        if live or not _try(fd, fcntl.LOCK_EX):
            raise RunBusyError(run_dir, live)
        _forget_stale(run_dir)
        yield
    finally:
        os.close(fd)


def _forget_stale(run_dir: Path) -> None:
    for owner in owners(run_dir):
        if not owner.alive():
            with contextlib.suppress(OSError):
                (run_dir / OWNERS_DIR / f"{owner.host}-{owner.pid}.json").unlink()


class RunLock:
    """This process's share of a run: the lock held and the owner file kept fresh."""

    def __init__(self, run_dir: Path, role: str) -> None:
        self.run_dir = run_dir
        self.me = Owner.me(role)
        self.path = run_dir / OWNERS_DIR / f"{self.me.host}-{self.me.pid}.json"
        self._fd: int | None = None

    def acquire(self, *, first: bool) -> None:
        """Take the lock: ``first`` (the controller) only when nothing of the run lives,
        else ``RunBusyError``; a worker waits out a sweep's or a controller's check."""
        fd = _open_lock(self.run_dir)
        try:
            if first:
                live = [o for o in live_owners(self.run_dir) if o.pid != self.me.pid]
                if live or not _try(fd, fcntl.LOCK_EX):
                    raise RunBusyError(self.run_dir, live)
                _forget_stale(self.run_dir)
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.path.parent.mkdir(exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in asdict(self.me).items() if k != "beat"}))
        os.replace(tmp, self.path)

    def heartbeat(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def workers(self) -> list[Owner]:
        """The live xdist workers this controller started."""
        return [o for o in live_owners(self.run_dir) if o.parent == self.me.pid and o.role != "controller"]
