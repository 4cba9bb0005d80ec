"""``LocalSandbox``: one trial's folder tree on this machine (see ``local.py`` for the
provider and for what is isolated how).

Commands run through bubblewrap, one PID namespace each; as root the agent drops to its own
uid with ``setpriv`` (no capabilities, ``no_new_privs``). The fence kills the bubblewrap of
every command in flight (its namespace dies with it) and every process of the agent's uid;
grader commands run as the host user with a clean environment; ``collect`` checks sizes
from ``lstat`` before reading and streams through a file on disk.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..errors import InfrastructureError, OutputOverCap, SandboxGoneError, StagingError
from ..network import relay_argv, relay_files
from ..sandbox import GRADER_ENV, ExecResult, Sandbox, SandboxSpec
from ..staging import (
    ExtractReport,
    SteadyTarFile,
    safe_extract,
    tar_directory_contents,
)
from ..typed_options import OutputCaps
from .bwrap import bwrap_argv, drop_to
from .processes import (
    MARKER,
    kill_marked,
    kill_running,
    kill_uid,
    marked_processes,
    run_killable,
    uid_processes,
)

MARKER_FILE = ".ale-marker"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: the uids given to agents when pytest runs as root, one per live sandbox
AGENT_UIDS = range(1_200_000, 1_300_000)
#: the ``user`` a grader command asks for (``grader_exec``): the host user, not the agent
GRADER = "ale-grader"
#: processes the agent's uid may have at once (a fork bomb stops there, not at the host's)
DEFAULT_MAX_PROCESSES = 4096


class LocalOptions(OutputCaps):
    """``providers/local.yaml``."""

    isolation: Literal["auto", "bwrap", "none"] = "auto"
    #: where trial folders go (default: the system's temporary folder)
    root: str | None = None
    #: more host folders to show read-only inside bubblewrap
    ro_binds: list[str] = Field(default_factory=list)
    #: allow the network
    network: bool = False
    #: how many processes the agent may have at once when pytest runs as root
    max_processes: int = Field(DEFAULT_MAX_PROCESSES, gt=0)


class LocalSandbox(Sandbox):
    """One trial's folder tree, with commands run through bubblewrap or plainly."""

    grader_user = GRADER

    def __init__(
        self,
        spec: SandboxSpec,
        root: Path,
        bwrap: str | None,
        options: LocalOptions,
        agent_uid: int | None = None,
    ):
        self.root = root
        self.bwrap = bwrap
        self.options = options
        #: the agent's own uid when pytest runs as root (``None``: the host user's, in a
        #: user namespace without capabilities)
        self.agent_uid = agent_uid
        self.marker = uuid.uuid4().hex
        (root / MARKER_FILE).write_text(self.marker)
        self.closed = False
        self.released = threading.Event()
        #: the commands in flight: the fence kills their bubblewrap, and with it their
        #: PID namespace
        self.running: set[subprocess.Popen] = set()
        self.max_output_bytes = options.max_output_bytes
        self.max_output_files = options.max_output_files
        for sub in ("workspace", "tmp", "home", "bin"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        python = shutil.which("python3") or sys.executable
        (root / "bin" / "python").symlink_to(os.path.realpath(python))
        for name, text in relay_files().items() if spec.proxy else ():
            (root / "bin" / name).write_text(text)
        if bwrap:
            super().__init__(spec, spec.workdir, scratch="/tmp")
            self.mounts = [
                (spec.workdir, root / "workspace"),
                ("/tmp", root / "tmp"),
                ("/home/agent", root / "home"),
            ]
            self.mounts += [(inside, Path(host)) for inside, host in spec.sockets.items()]
            self.ro_mounts = [("/ale/bin", root / "bin")]
            self.home = "/home/agent"
            self.bin_dir = "/ale/bin"
            self.path_env = f"{DEFAULT_PATH}:{Path(python).parent}:/ale/bin"
            self.grader_path = f"{GRADER_ENV['PATH']}:/ale/bin"
        else:
            # no namespaces: the sandbox's paths are host paths below ``root``
            workdir = root / "fs" / spec.workdir.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
            (root / "workspace").rmdir()
            (root / "workspace").symlink_to(workdir)
            super().__init__(spec, str(workdir), scratch=str(root / "tmp"))
            self.mounts = [("/", Path("/"))]
            self.ro_mounts = []
            self.socket_paths = dict(spec.sockets)  # no remapping: the host path itself
            self.home = str(root / "home")
            self.bin_dir = str(root / "bin")
            self.path_env = f"{os.environ.get('PATH', DEFAULT_PATH)}:{root / 'bin'}"
            self.grader_path = f"{GRADER_ENV['PATH']}:{root / 'bin'}"
        if agent_uid is not None:
            for sub in ("workspace", "tmp", "home"):
                os.chown(root / sub, agent_uid, agent_uid)
            for host_socket in spec.sockets.values():
                # a socket exposed to the sandbox must take the agent's uid's connections
                with contextlib.suppress(OSError):
                    os.chmod(host_socket, os.stat(host_socket).st_mode | 0o666)

    # -- paths -------------------------------------------------------------------------
    def to_host(self, path: str) -> Path | None:
        """The host path behind a sandbox path, or ``None`` when it is not writable here."""
        norm = self.abspath(path)
        for inside, host in sorted(self.mounts, key=lambda m: -len(m[0])):
            if norm == inside or norm.startswith(inside.rstrip("/") + "/"):
                return host / os.path.relpath(norm, inside)
        return None

    # -- the primitives ----------------------------------------------------------------
    def exec(self, cmd, *, timeout=None, env=None, cwd=None, user=None, stdin=None) -> ExecResult:
        if self.closed:
            raise SandboxGoneError("the local sandbox was already released")
        if not self.root.is_dir():
            raise SandboxGoneError(f"the local sandbox's folder {self.root} was removed (swept?)")
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        grader = user == GRADER
        if user is not None and not grader:
            return ExecResult(126, "", f"no user {user!r} here: only the agent (user=None) and {GRADER!r}\n")
        full_env = {
            "PATH": self.grader_path if grader else self.path_env,
            "HOME": self.home,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TMPDIR": self.scratch,
            "TERM": "dumb",
            **{k: str(v) for k, v in (env or {}).items()},
        }
        if grader:
            full_env["PATH"] = self.grader_path
            full_env["HOME"] = full_env["TMPDIR"] = cwd or self.scratch
        full_env[MARKER] = self.marker
        workdir = self.abspath(cwd) if cwd else self.workdir
        if self.spec.proxy:
            # egress only through the run's proxy, by a relay in the command's own namespace
            proxy = self.socket_paths[self.spec.proxy]
            argv = relay_argv(f"{self.bin_dir}/python", self.bin_dir, proxy, argv)
        if self.bwrap:
            if self.agent_uid is not None and not grader:
                # the uid is this sandbox's alone, so RLIMIT_NPROC is a per-sandbox limit
                nproc = self.options.max_processes
                argv = [*drop_to(self.agent_uid, nproc), *argv]
            network = self.spec.network or self.options.network
            ro_binds = self.options.ro_binds
            bwrap = bwrap_argv(
                self.bwrap, workdir, network=network, binds=self.mounts, ro_binds=self.ro_mounts,
                extra_read_only=ro_binds,
            )  # fmt: skip
            argv = [*bwrap, "--", *argv]
            host_cwd = None
        else:
            host_cwd = workdir
            if not Path(host_cwd).is_dir():
                return ExecResult(127, "", f"no such folder: {workdir}")
        try:
            done = run_killable(
                argv,
                env=full_env,
                cwd=host_cwd,
                timeout=timeout,
                stdin=stdin,
                marker_value=self.marker,
                running=self.running,
            )
        except OSError as exc:
            raise InfrastructureError(f"local sandbox could not start {argv[0]}: {exc}") from exc
        if self.released.is_set() or not self.root.is_dir():
            raise SandboxGoneError(f"the local sandbox {self.root} was removed while a command ran (swept?)")
        return ExecResult(
            exit_code=done.returncode if not done.timed_out else -9,
            stdout=done.stdout.decode("utf-8", "replace"),
            stderr=done.stderr.decode("utf-8", "replace"),
            timed_out=done.timed_out,
            duration_s=done.duration_s,
        )

    def put_archive(self, dest: str, data: bytes) -> None:
        host = self.to_host(dest)
        if host is None:
            raise StagingError(f"{dest} is read-only in the local sandbox")
        report = safe_extract(data, host)
        if report.refused:
            raise StagingError("refused while staging in: " + "; ".join(report.refused))
        self._own(host)

    def _own(self, host: Path) -> None:
        """Files the host wrote into the agent's folders belong to the agent's uid."""
        if self.agent_uid is None:
            return
        uid = self.agent_uid
        with contextlib.suppress(FileNotFoundError):
            os.chown(host, uid, uid, follow_symlinks=False)
        for folder, dirs, files in os.walk(host):
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):
                    os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)

    def get_archive(self, src: str) -> bytes:
        host = self.to_host(src)
        if host is None:
            host = Path(src) if self.bwrap else None
        if host is None or not (host.exists() or host.is_symlink()):
            raise FileNotFoundError(src)
        if host.is_dir() and not host.is_symlink():
            return tar_directory_contents(host)
        buf = io.BytesIO()
        with SteadyTarFile.open(fileobj=buf, mode="w") as tar:
            tar.add(host, arcname=host.name, recursive=False)
        return buf.getvalue()

    def collect(self, src: str, dest: Path) -> ExtractReport:
        """Output out in constant memory: sizes and counts checked from ``lstat`` before a
        byte is read (a sparse 20 GB file is refused at once), then streamed through a tar
        file on disk into ``safe_extract``; pipes, sockets and devices are left behind."""
        host = self.to_host(src)
        if host is None or not host.is_dir() or host.is_symlink():
            raise FileNotFoundError(src)
        members, total = 0, 0
        for folder, dirs, files in os.walk(host):
            members += len(dirs) + len(files)
            for name in files:
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(folder, name))
                    total += st.st_size if stat_is_file(st.st_mode) else 0
            if members > self.max_output_files:
                raise OutputOverCap(
                    f"output/ holds more than {self.max_output_files} files and folders "
                    "(the cap, max_output_files): not graded, the trial scores 0"
                )
            if total > self.max_output_bytes:
                raise OutputOverCap(
                    f"output/ exceeds the {self.max_output_bytes / 1024**2:g} MiB cap "
                    "(max_output_mb): not graded, the trial scores 0"
                )
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=dest.parent) as spool:
            with SteadyTarFile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for entry in sorted(host.iterdir()):
                    tar.add(entry, arcname=entry.name, recursive=True, filter=_plain_members)
            spool.seek(0)
            return safe_extract(
                spool, dest, max_bytes=self.max_output_bytes, max_files=self.max_output_files, strict=True
            )

    def is_file(self, path: str) -> bool:
        host = self.to_host(path)
        return host.is_file() if host is not None else super().is_file(path)

    def is_dir(self, path: str) -> bool:
        host = self.to_host(path)
        return host.is_dir() if host is not None else super().is_dir(path)

    def exists(self, path: str) -> bool:
        host = self.to_host(path)
        return host.exists() if host is not None else super().exists(path)

    def mkdir(self, path: str) -> None:
        host = self.to_host(path)
        if host is None:
            super().mkdir(path)
            return
        missing = [p for p in [host, *host.parents] if not p.exists()]
        host.mkdir(parents=True, exist_ok=True)
        for made in missing:
            self._own(made)

    # -- the fence ---------------------------------------------------------------------
    def kill_all(self) -> int:
        """Kill every command in flight (its bubblewrap, so its PID namespace with it), the
        agent's uid's processes when it has one, and any process still marked."""
        killed = kill_running(self.running)
        if self.agent_uid is not None:
            killed += kill_uid(self.agent_uid)
        return killed + kill_marked(self.marker)

    def agent_processes(self) -> int:
        alive = [p for p in list(self.running) if p.poll() is None]
        count = len(alive)
        if self.agent_uid is not None:
            count += len(uid_processes(self.agent_uid))
        return count + len(marked_processes(self.marker)[0])

    def prepare_grading(self) -> None:
        """The sandbox's ``/tmp`` becomes the grader's: what the agent left there moves to
        ``agent-tmp/`` beside it (outside the sandbox, still in ``--ale-keep`` folders)."""
        tmp, aside = self.root / "tmp", self.root / "agent-tmp"
        aside.mkdir(exist_ok=True)
        for entry in list(tmp.iterdir()) if tmp.is_dir() else []:
            entry.rename(aside / entry.name)
        if self.agent_uid is not None:
            os.chown(tmp, os.geteuid(), os.getegid())
            os.chmod(tmp, 0o755)

    def close(self) -> None:
        """Refuse commands from now on (one in flight ends as ``SandboxGoneError``); the
        folder and its processes stay until ``LocalProvider.release``."""
        self.closed = True
        self.released.set()

    def describe(self) -> str:
        how = "bubblewrap" if self.bwrap else "plain processes"
        who = f", agent uid {self.agent_uid}" if self.agent_uid is not None else ""
        return f"local sandbox ({how}{who}): files kept in {self.root}"


def stat_is_file(mode: int) -> bool:
    return (mode & 0o170000) == 0o100000


def _plain_members(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Regular files, folders and links only (a pipe would block the read for ever)."""
    return info if info.isfile() or info.isdir() or info.issym() or info.islnk() else None
