"""``ExampleSandbox``: one folder on this host (``workspace/``, ``scratch/``, ``home/``,
``sockets/``), its commands host processes started in it.

As root the agent runs as the sandbox's own uid; the fence kills that uid, and before
grading what the agent left in the host's temporary folders moves into a root-only
quarantine. Files move with the standard library's ``tarfile`` (``pytest_ale.staging``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from pytest_ale.errors import SandboxGoneError, StagingError
from pytest_ale.sandbox import GRADER_ENV, ExecResult, Sandbox, SandboxSpec
from pytest_ale.staging import SteadyTarFile, safe_extract, tar_directory_contents
from pytest_ale.typed_options import OutputCaps

from .door import Door
from .processes import as_uid, kill_marked, kill_uid, marked, of_uid, run

OWNER = "owner.json"
#: every process of a sandbox (without a uid of its own) carries ``MARK=<its marker>``
MARK = "ALE_EXAMPLE_SANDBOX"
#: the host's temporary folders, where an agent's leftovers are quarantined before grading
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")


class ExampleSandbox(Sandbox):
    """One trial's folder on this host."""

    #: grader commands run as the host's own account
    grader_user = "host"

    def __init__(self, spec: SandboxSpec, root: Path, uid: int | None, options: OutputCaps) -> None:
        for sub in ("workspace", "scratch", "home", "sockets"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        super().__init__(spec, str(root / "workspace"), scratch=str(root / "scratch"))
        self.root, self.uid, self.closed, self.grading = root, uid, False, False
        self.marker = uuid.uuid4().hex
        self.max_output_bytes, self.max_output_files = options.max_output_bytes, options.max_output_files
        if uid is not None:
            for sub in ("workspace", "scratch", "home"):
                os.chown(root / sub, uid, uid)
        self.doors = []
        for n, (inside, host) in enumerate(spec.sockets.items()):
            self.socket_paths[inside] = str(root / "sockets" / f"{n}.sock")
            self.doors.append(Door(self.socket_paths[inside], host))
        owner = {
            "run_id": spec.run_id,
            "expires": time.time() + spec.expiry_s,
            "uid": uid,
            "marker": self.marker,
        }
        (root / OWNER).write_text(json.dumps(owner))

    # -- commands ----------------------------------------------------------------------
    def exec(self, cmd, *, timeout=None, env=None, cwd=None, user=None, stdin=None) -> ExecResult:
        self._present()
        if user not in (None, self.grader_user):
            return ExecResult(
                126, "", f"no user {user!r} here: the agent is None, the grader {self.grader_user!r}\n"
            )
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        where = self.abspath(cwd) if cwd else self.workdir
        if not os.path.isdir(where):
            return ExecResult(2, "", f"no such folder: {where}\n")
        agent = user is None
        home = str(self.root / "home") if agent else where
        full = {
            "PATH": GRADER_ENV["PATH"],
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": home,
            MARK: self.marker,
        }
        full.update({k: str(v) for k, v in (env or {}).items()})
        if agent and self.uid is not None:
            argv = [*as_uid(self.uid), *argv]
        ran = run(argv, cwd=where, env=full, stdin=stdin, timeout=timeout)
        self._present()
        out, err = ran.out.decode("utf-8", "replace"), ran.err.decode("utf-8", "replace")
        return ExecResult(ran.code, out, err, ran.timed_out, ran.seconds)

    def kill_all(self) -> int:
        if self.uid is not None:
            return kill_uid(self.uid)
        return kill_marked(f"{MARK}={self.marker}")

    def agent_processes(self) -> int:
        return len(of_uid(self.uid) if self.uid is not None else marked(f"{MARK}={self.marker}"))

    def prepare_grading(self) -> None:
        """What the agent's uid owns in the host's temporary folders moves into a root-only
        quarantine folder in each: nothing it planted there is where a grader looks."""
        self.grading = True
        if self.uid is not None:
            quarantine(self.uid, self.marker)

    # -- files -------------------------------------------------------------------------
    def put_archive(self, dest: str, data: bytes) -> None:
        self._present()
        folder = Path(self.abspath(dest))
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            report = safe_extract(data, folder)
        except OSError as exc:
            raise StagingError(f"cannot write into {folder}: {exc}") from exc
        if report.refused:
            raise StagingError(f"refused while writing into {folder}: " + "; ".join(report.refused))
        if self.uid is not None and not self.grading and folder.is_relative_to(self.root):
            self._own(missing[-1] if missing else folder)

    def _own(self, top: Path) -> None:
        """What the harness wrote into the sandbox is the agent's (before grading)."""
        assert self.uid is not None
        os.chown(top, self.uid, self.uid, follow_symlinks=False)
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):
                    os.chown(os.path.join(folder, name), self.uid, self.uid, follow_symlinks=False)

    def get_archive(self, src: str) -> bytes:
        self._present()
        path = Path(self.abspath(src))
        if not (path.exists() or path.is_symlink()):
            raise FileNotFoundError(str(path))
        if path.is_dir() and not path.is_symlink():
            return tar_directory_contents(path)
        buf = io.BytesIO()
        with SteadyTarFile.open(fileobj=buf, mode="w") as tar:
            tar.add(path, arcname=path.name, recursive=False)
        return buf.getvalue()

    # -- the end -----------------------------------------------------------------------
    def _present(self) -> None:
        if self.closed or not self.root.is_dir():
            raise SandboxGoneError(f"the example sandbox {self.root} was released or removed")

    def close(self) -> None:
        """Only the sandbox's own handles (its doors): ``ExampleProvider.release`` removes."""
        self.closed = True
        for door in self.doors:
            door.close()

    def describe(self) -> str:
        return f"example sandbox: files in {self.root}" + (f", agent uid {self.uid}" if self.uid else "")


def quarantine(uid: int, marker: str) -> None:
    for shared in SHARED_TMP:
        if not os.path.isdir(shared):
            continue
        aside = os.path.join(shared, f".ale-example-quarantine-{marker[:12]}")
        for entry in os.scandir(shared):
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid == uid:
                    os.makedirs(aside, mode=0o700, exist_ok=True)
                    os.rename(entry.path, os.path.join(aside, entry.name))


def remove(root: Path) -> None:
    """Kill what a sandbox folder's agent still runs, remove what its uid left in the
    host's temporary folders (and the quarantine), then the folder."""
    try:
        owner = json.loads((root / OWNER).read_text())
    except (OSError, ValueError):
        owner = {}
    uid, marker = owner.get("uid"), str(owner.get("marker") or "-")
    if isinstance(uid, int):
        kill_uid(uid)
        quarantine(uid, marker)
    else:
        kill_marked(f"{MARK}={marker}")
    for shared in SHARED_TMP:
        shutil.rmtree(os.path.join(shared, f".ale-example-quarantine-{marker[:12]}"), ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    if isinstance(uid, int):
        (root.parent / "uids" / str(uid)).unlink(missing_ok=True)
