"""``local``: the embedded default sandbox — no Docker, no cloud, works on a fresh machine.

Each trial gets a fresh folder tree on the host (``workspace/``, ``tmp/``, ``home/``).
When bubblewrap (``bwrap``) is installed, commands run inside it: the system folders
read-only, nothing else of the host visible (not the task's ``reference/``, not your home),
the workspace writable at the path the task expects, no network, and a PID namespace so
killing the sandbox kills everything the agent started. Without bubblewrap, commands are
plain subprocesses in the workspace, with one warning per run saying what is not isolated.

Options (``providers/local.yaml`` or ``--ale-provider-opt``): ``isolation``
(``auto`` | ``bwrap`` | ``none``), ``root`` (where trial folders go), ``ro_binds`` (more
host folders to show read-only), ``network`` (allow the network).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, InfrastructureError, StagingError
from ..sandbox import ExecResult, Provider, Sandbox, SandboxSpec, run_id_matches
from ..staging import SteadyTarFile, safe_extract, tar_directory_contents
from .processes import MARKER, kill_marked, run_killable

OWNER_FILE = ".ale-owner.json"
MARKER_FILE = ".ale-marker"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class LocalIsolationWarning(UserWarning):
    """Trials run as plain host processes because bubblewrap is not installed."""


class LocalSandbox(Sandbox):
    """One trial's folder tree, with commands run through bubblewrap or plainly."""

    def __init__(self, spec: SandboxSpec, root: Path, bwrap: str | None, options: Mapping[str, Any]):
        self.root = root
        self.bwrap = bwrap
        self.options = options
        self.marker = uuid.uuid4().hex
        (root / MARKER_FILE).write_text(self.marker)
        self.closed = False
        self.running = 0  # commands in flight: with bubblewrap, nothing outlives its command
        for sub in ("workspace", "tmp", "home", "bin"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        python = shutil.which("python3") or sys.executable
        (root / "bin" / "python").symlink_to(os.path.realpath(python))
        if bwrap:
            super().__init__(spec, spec.workdir, scratch="/tmp")
            self.mounts = [
                (spec.workdir, root / "workspace"),
                ("/tmp", root / "tmp"),
                ("/home/agent", root / "home"),
                ("/ale/bin", root / "bin"),
            ]
            self.mounts += [(inside, Path(host)) for inside, host in spec.sockets.items()]
            self.home = "/home/agent"
            self.path_env = f"{DEFAULT_PATH}:{Path(python).parent}:/ale/bin"
        else:
            # no namespaces: the sandbox's paths are host paths below ``root``
            workdir = root / "fs" / spec.workdir.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
            (root / "workspace").rmdir()
            (root / "workspace").symlink_to(workdir)
            super().__init__(spec, str(workdir), scratch=str(root / "tmp"))
            self.mounts = [("/", Path("/"))]
            self.socket_paths = dict(spec.sockets)  # no remapping: the host path itself
            self.home = str(root / "home")
            self.path_env = f"{os.environ.get('PATH', DEFAULT_PATH)}:{root / 'bin'}"

    # -- paths -------------------------------------------------------------------------
    def to_host(self, path: str) -> Path | None:
        """The host path behind a sandbox path, or ``None`` when it is not writable here."""
        norm = os.path.normpath("/" + path.lstrip("/"))
        for inside, host in sorted(self.mounts, key=lambda m: -len(m[0])):
            if norm == inside or norm.startswith(inside.rstrip("/") + "/"):
                return host / os.path.relpath(norm, inside)
        return None

    # -- the primitives ----------------------------------------------------------------
    def exec(self, cmd, *, timeout=None, env=None, cwd=None, user=None, stdin=None) -> ExecResult:
        if self.closed:
            raise InfrastructureError("the local sandbox was already released")
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full_env = {
            "PATH": self.path_env,
            "HOME": self.home,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TMPDIR": self.scratch,
            "TERM": "dumb",
            MARKER: self.marker,
            **{k: str(v) for k, v in (env or {}).items()},
        }
        full_env[MARKER] = self.marker
        workdir = cwd or self.workdir
        if self.bwrap:
            argv = [*self._bwrap_prefix(workdir), "--", *argv]
            host_cwd = None
        else:
            host_cwd = workdir
            if not Path(host_cwd).is_dir():
                return ExecResult(127, "", f"no such folder: {workdir}")
        try:
            done = run_killable(
                argv, env=full_env, cwd=host_cwd, timeout=timeout, stdin=stdin, marker_value=self.marker
            )
        except OSError as exc:
            raise InfrastructureError(f"local sandbox could not start {argv[0]}: {exc}") from exc
        return ExecResult(
            exit_code=done.returncode if not done.timed_out else -9,
            stdout=done.stdout.decode("utf-8", "replace"),
            stderr=done.stderr.decode("utf-8", "replace"),
            timed_out=done.timed_out,
            duration_s=done.duration_s,
        )

    def _bwrap_prefix(self, cwd: str) -> list[str]:
        args = [
            self.bwrap or "bwrap",
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "sandbox",
        ]
        if not (self.spec.network or self.options.get("network")):
            args.append("--unshare-net")
        mounts = [("--ro-bind-try", str(folder), str(folder)) for folder in self._read_only()]
        mounts += [("--proc", "/proc", ""), ("--dev", "/dev", "")]
        mounts += [("--bind", str(host), inside) for inside, host in self.mounts]
        # shallow mount points first, so a deeper one (a read-only bind of /tmp/ci/tools, say)
        # lies on top of the sandbox's own /tmp instead of being hidden under it
        for flag, source, inside in sorted(mounts, key=lambda m: _depth(m[2] or m[1])):
            args += [flag, source, inside] if inside else [flag, source]
        args += ["--chdir", cwd]
        return args

    def _read_only(self) -> list[str]:
        return [*SYSTEM_DIRS, *_python_roots(), *(str(f) for f in self.options.get("ro_binds", []))]

    def put_archive(self, dest: str, data: bytes) -> None:
        host = self.to_host(dest)
        if host is None:
            raise StagingError(f"{dest} is read-only in the local sandbox")
        report = safe_extract(data, host)
        if report.refused:
            raise StagingError("refused while staging in: " + "; ".join(report.refused))

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
        else:
            host.mkdir(parents=True, exist_ok=True)

    def kill_all(self) -> int:
        if self.bwrap and not self.running:
            # each command ran as PID 1 of its own PID namespace: when it ended, the kernel
            # killed everything it had started, so there is nothing left to find
            return 0
        return kill_marked(self.marker)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.kill_all()
        if not self.options.get("keep"):
            shutil.rmtree(self.root, ignore_errors=True)

    def describe(self) -> str:
        how = "bubblewrap" if self.bwrap else "plain processes"
        return f"local sandbox ({how}): files kept in {self.root}"


def _depth(path: str) -> int:
    return len([part for part in os.path.normpath(path).split("/") if part])


def _python_roots() -> list[str]:
    """Where the host's Python lives when it is outside the system folders (pyenv, say)."""
    roots = {sys.base_prefix}
    python = shutil.which("python3")
    if python:
        roots.add(str(Path(os.path.realpath(python)).parent.parent))
    return sorted(r for r in roots if not r.startswith(SYSTEM_DIRS))


class LocalProvider(Provider):
    """Fresh folder trees on this machine, isolated by bubblewrap when it is installed."""

    name = "local"
    capabilities: ClassVar[frozenset[str]] = frozenset({"linux"})
    _warned: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        isolation = str(self.options.get("isolation", "auto"))
        if isolation not in ("auto", "bwrap", "none"):
            raise ConfigError(f"local provider: isolation must be auto, bwrap or none, not {isolation!r}")
        found = shutil.which("bwrap") if isolation != "none" else None
        if isolation == "bwrap" and not found:
            raise ConfigError(
                "local provider: isolation=bwrap but bubblewrap is not installed (apt-get install bubblewrap)"
            )
        self.bwrap = found
        self.base = Path(self.options.get("root") or tempfile.gettempdir()) / "pytest-ale"
        if isolation == "auto" and not found and not LocalProvider._warned:
            LocalProvider._warned = True
            warnings.warn(
                LocalIsolationWarning(
                    "bubblewrap is not installed: the local sandbox runs agents as plain host "
                    "processes (they can read your files and use the network). Install it "
                    "(apt-get install bubblewrap) for an isolated local sandbox, or use docker."
                ),
                stacklevel=2,
            )

    def acquire(self, spec: SandboxSpec) -> Sandbox:
        self.base.mkdir(parents=True, exist_ok=True)
        try:
            root = Path(tempfile.mkdtemp(prefix="trial-", dir=self.base))
            owner = {"run_id": spec.run_id, "pid": os.getpid(), "expires": time.time() + spec.expiry_s}
            (root / OWNER_FILE).write_text(json.dumps(owner))
        except OSError as exc:
            raise InfrastructureError(f"local provider: cannot create a workspace: {exc}") from exc
        return LocalSandbox(spec, root, self.bwrap, self.options)

    def sweep(self, run_id: str | None = None) -> list[str]:
        """Remove trial folders of ``run_id`` (and its workers), or, with no run id, those
        whose expiry passed or whose pytest process is gone."""
        removed = []
        for entry in sorted(self.base.glob("trial-*")) if self.base.is_dir() else []:
            try:
                owner = json.loads((entry / OWNER_FILE).read_text())
            except (OSError, ValueError):
                owner = {}
            if run_id is not None:
                doomed = run_id_matches(owner.get("run_id"), run_id)
            else:
                doomed = owner.get("expires", 0) < time.time() or not _alive(owner.get("pid"))
            if doomed:
                if owner.get("run_id"):
                    kill_marked_in(entry)
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(str(entry))
        return removed


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_marked_in(root: Path) -> None:
    """Kill what a sandbox of a dead run still runs (its marker is kept beside its files)."""
    marker = root / MARKER_FILE
    if marker.is_file():
        kill_marked(marker.read_text().strip())
