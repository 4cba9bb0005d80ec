"""The small interfaces every provider implements: ``Sandbox`` and ``Provider``.

A provider turns a ``SandboxSpec`` into a running ``Sandbox``; a sandbox runs commands and
moves tar streams in and out. Everything else (staging folders, fencing, grading) is built
once on top of these few methods, so a new provider is one small file.

Paths inside a sandbox are POSIX strings. ``Sandbox.workdir`` is the trial's workspace
(the agent's working directory), which holds ``input/``, ``software/`` and ``output/``.
"""

from __future__ import annotations

import abc
import contextlib
import io
import posixpath
import shlex
import tarfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import AleError, InfrastructureError, OutputOverCap
from .staging import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_OUTPUT_FILES,
    ExtractReport,
    safe_extract,
    tar_folders,
    tar_of_file,
)
from .typed_options import ProviderOptions

#: the environment of grader commands: system folders only, nothing the agent could write
GRADER_ENV: dict[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONNOUSERSITE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass
class ExecResult:
    """What one command in a sandbox did."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    duration_s: float = 0.0
    oom_killed: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass
class SandboxSpec:
    """What a trial asks of a provider."""

    run_id: str
    trial_id: str
    workdir: str = "/workspace"
    os: str = "linux"
    gpu: bool = False
    cpus: float | None = None
    memory_gb: float | None = None
    disk_gb: float | None = None
    network: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    #: host Unix sockets to expose inside the sandbox, ``{sandbox_path: host_path}``: the
    #: one door (the model gateway) out of a sandbox that has no network
    sockets: dict[str, str] = field(default_factory=dict)
    #: the sandbox path (one of ``sockets``) of the run's egress proxy (``network.py``):
    #: a provider with the ``netproxy`` capability runs each command through its relay
    proxy: str | None = None
    expiry_s: int = 6 * 3600
    extra: dict[str, Any] = field(default_factory=dict)


class Sandbox(abc.ABC):
    """One isolated machine (or workspace) for one trial.

    Implementations provide ``exec``, ``put_archive``, ``get_archive`` and ``close``; the
    file helpers below are built on those and may be overridden for speed.
    """

    #: ``state`` is host-side scratch shared by a task's ``setup`` and ``evaluate`` (a
    #: per-run secret, say). It never enters the sandbox.
    state: dict[str, Any]
    workdir: str
    scratch: str
    spec: SandboxSpec

    def __init__(self, spec: SandboxSpec, workdir: str, scratch: str = "/tmp") -> None:
        self.spec = spec
        self.workdir = workdir
        #: a private writable folder for harness files (instruction, installed tools)
        self.scratch = scratch
        self.state = {}
        #: where each of ``spec.sockets`` can be reached inside this sandbox
        self.socket_paths: dict[str, str] = {inside: inside for inside in spec.sockets}

    # -- the primitive operations ------------------------------------------------------
    @abc.abstractmethod
    def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run ``cmd`` (a shell string, or an argv list passed as it is) and wait for it.

        ``cwd`` defaults to the workspace, a relative one is under it; ``env`` is added as
        given (any value), nothing of the host's environment enters; ``user=None`` is the
        agent, ``grader_user`` the grader; ``stdin`` of any size is fed, read or not.
        Output is UTF-8 (other bytes become U+FFFD), each stream capped at 16 MiB (the rest
        dropped, saying so). Past ``timeout`` every process the command started is killed
        (``setsid`` ones too), ``timed_out`` is set and what it printed is kept. What the
        command did is the ``ExecResult``, never an exception: a missing ``cwd`` or an
        unknown ``user`` fails with the reason on stderr, a missing program exits 127 and
        one that cannot run (permission denied) 126. Raises ``InfrastructureError`` only
        when the sandbox itself fails (released, gone, unreachable)."""

    @abc.abstractmethod
    def put_archive(self, dest: str, data: bytes) -> None:
        """Extract the tar stream ``data`` into folder ``dest`` (created if missing; as the
        provider's own account, so files already there are replaced whatever their mode);
        ``StagingError`` when it cannot be written or a member is refused."""

    @abc.abstractmethod
    def get_archive(self, src: str) -> bytes:
        """A tar stream of folder ``src``'s contents (names relative to it), or of one file
        (one member, its name); ``FileNotFoundError`` naming ``src`` when it does not
        exist. A file something still writes is archived as it was read, never an error.
        Every guarantee here is checked by the conformance suite (``pytest_ale.testing``)."""

    @abc.abstractmethod
    def kill_all(self) -> int:
        """Kill every process of the agent by something no process can leave (its own uid,
        a PID namespace, a cgroup: never a session or process group, which ``setsid()``
        leaves); return how many were killed. The fence (``fence.py``) calls it in a loop
        with ``agent_processes`` until the sandbox is verifiably empty."""

    def agent_processes(self) -> int:
        """How many processes of the agent are alive (zombies aside): 0 means fenced.
        Raises ``InfrastructureError`` when the sandbox cannot be asked."""
        raise NotImplementedError(f"{type(self).__name__} cannot count the agent's processes")

    #: the user grader commands run as: never the agent's (see ``grader_exec``)
    grader_user: str | None = None

    def prepare_grading(self) -> None:  # noqa: B027 - providers with shared temp folders override
        """Called after the fence and before grading: make every place a grader command
        writes or runs from fresh, out of reach of anything the agent left (temp folders
        the agent could have created or filled are moved aside). Provider-specific."""

    def grader_exec(
        self, cmd: str | list[str], *, timeout: float | None = None, stdin: bytes | None = None
    ) -> ExecResult:
        """Run a grader's command: as ``grader_user``, with a clean environment (a PATH of
        system folders only, no PYTHON* variables), in a fresh scratch folder the agent
        never saw. What the agent left is data the command may read, never code it runs."""
        return self.exec(
            cmd,
            timeout=timeout,
            env=GRADER_ENV,
            cwd=self.grader_scratch(),
            user=self.grader_user,
            stdin=stdin,
        )

    def grader_scratch(self) -> str:
        """A fresh folder, owned by the grader and made after the fence, for grader commands."""
        folder = getattr(self, "_grader_scratch", None)
        if folder is None:
            folder = f"/tmp/.ale-grader-{uuid.uuid4().hex[:12]}"
            done = self.exec(["mkdir", "-m", "700", folder], user=self.grader_user, env=GRADER_ENV, cwd="/")
            if done.exit_code != 0:
                raise InfrastructureError(f"cannot make the grader's scratch folder {folder}: {done.stderr}")
            self._grader_scratch = folder
        return folder

    @property
    def grader_scratch_made(self) -> str | None:
        """The grader's scratch folder, once ``grader_scratch`` made it."""
        return getattr(self, "_grader_scratch", None)

    @abc.abstractmethod
    def close(self) -> None:
        """Drop this sandbox's own transport (its SSH connection, its engine handle); commands
        fail from then on. Never tears anything down: removing the container, VM, folders or
        lock is ``Provider.release``, which still works after ``close``. Safe to call twice."""

    # -- conveniences built on the primitives -----------------------------------------
    def path(self, *parts: str) -> str:
        """An absolute sandbox path under the workspace."""
        return "/".join([self.workdir.rstrip("/"), *(p.strip("/") for p in parts)])

    def abspath(self, path: str) -> str:
        """``path`` made absolute: one not starting with ``/`` is under the workspace (as
        every path and ``cwd`` the methods here take)."""
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def sh(self, script: str, **kwargs: Any) -> ExecResult:
        return self.exec(["/bin/sh", "-c", script], **kwargs)

    def exists(self, path: str) -> bool:
        return self.sh(f"test -e {shlex.quote(path)}").exit_code == 0

    def is_file(self, path: str) -> bool:
        return self.sh(f"test -f {shlex.quote(path)}").exit_code == 0

    def is_dir(self, path: str) -> bool:
        return self.sh(f"test -d {shlex.quote(path)}").exit_code == 0

    def read_bytes(self, path: str) -> bytes:
        """The content of one regular file (``b""`` when empty), read as the provider's own
        account; ``FileNotFoundError`` when there is none, ``IsADirectoryError`` for a
        folder, ``PermissionError`` where that account cannot read it; each names ``path``."""
        path = self.abspath(path)
        if not self.is_file(path):
            raise (IsADirectoryError if self.is_dir(path) else FileNotFoundError)(path)
        with tarfile.open(fileobj=io.BytesIO(self.get_archive(path))) as tar:
            for member in tar:
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    return extracted.read()
        raise FileNotFoundError(path)

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(path).decode(encoding)

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write one file, making missing folders above it and replacing a file already
        there (read-only or not); a folder holding anything there is never replaced:
        ``IsADirectoryError`` naming ``path``."""
        parent, _, name = self.abspath(path).rpartition("/")
        try:
            self.put_archive(parent or "/", tar_of_file(name, data, mode))
        except AleError:
            if self.is_dir(self.abspath(path)):
                raise IsADirectoryError(self.abspath(path)) from None
            raise

    def write_text(self, path: str, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(path, text.encode(encoding))

    def stage(self, dest: str, folders: Mapping[str, Path]) -> None:
        """Copy host folders into folder ``dest``, each under its name (``{"input": path}``),
        as one tar stream; folders that do not exist are skipped. Providers that can send
        a stream as it is read (docker) override this to stage in constant memory."""
        self.put_archive(dest, tar_folders(folders))

    #: caps on what ``collect`` brings out of the sandbox (providers set them from options)
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_output_files: int = DEFAULT_MAX_OUTPUT_FILES

    def collect(self, src: str, dest: Path) -> ExtractReport:
        """Bring folder ``src`` (the agent's ``output/``) out into host folder ``dest``, safely
        (``safe_extract``) and within ``max_output_bytes`` / ``max_output_files``:
        ``OutputOverCap`` past them (the agent's fault), ``FileNotFoundError`` when ``src``
        is missing. Providers that can stream to disk override this."""
        try:
            archive = self.get_archive(src)
            return safe_extract(
                archive, dest, max_bytes=self.max_output_bytes, max_files=self.max_output_files, strict=True
            )
        except OutputOverCap as exc:
            raise OutputOverCap(
                f"{exc} (the caps: max_output_mb={self.max_output_bytes / 1024**2:g}, "
                f"max_output_files={self.max_output_files} in the provider's options)"
            ) from exc

    def mkdir(self, path: str) -> None:
        """Make folder ``path`` and any missing above it (the agent's, in its own area)."""
        self.exec(["mkdir", "-p", path])

    def listdir(self, path: str) -> list[str]:
        """The names in folder ``path``, hidden ones too; ``FileNotFoundError`` without one."""
        result = self.exec(["ls", "-A1", path])
        if result.exit_code != 0:
            raise FileNotFoundError(path)
        return [line for line in result.stdout.splitlines() if line]

    # -- optional GUI ------------------------------------------------------------------
    def screenshot(self) -> bytes:
        raise NotImplementedError(f"{type(self).__name__} has no display")

    def describe(self) -> str:
        """One line telling a person how to get into this sandbox (for ``--ale-keep``)."""
        return f"{type(self).__name__} at {self.workdir}"

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def expired(stamp: str | None, now: float | None = None) -> bool:
    """Whether an expiry stamp (epoch seconds, as a label holds it) has passed; a missing or
    unreadable one never has."""
    try:
        return float(stamp) < (time.time() if now is None else now)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def run_id_matches(label: str | None, wanted: str, encode: Callable[[str], str] = str) -> bool:
    """Whether a sandbox labelled with run id ``label`` belongs to run ``wanted``: the run
    itself or one of its xdist workers (``RUN@gw3``). ``encode`` is how the provider spells
    a run id in its labels or names (clouds allow no ``@``)."""
    return bool(label) and (label == encode(wanted) or str(label).startswith(encode(f"{wanted}@gw")))


class Provider(abc.ABC):
    """Makes sandboxes. One provider object per pytest process (xdist worker).

    ``options`` come from the provider preset (``providers/NAME.yaml``) merged with the
    command line, checked against the class's ``Options`` model (``typed_options``) when
    the session is set up. ``capabilities`` (widened by the options: ``gpu: true``) lets
    the plugin skip tasks a provider cannot host.
    """

    name: ClassVar[str] = "provider"
    #: what the provider can host; tasks needing anything else are skipped with a reason
    capabilities: ClassVar[frozenset[str]] = frozenset({"linux"})
    #: the options this provider accepts: a ``ProviderOptions`` subclass
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions
    options: ProviderOptions
    #: a process an ``exec`` started in the background outlives it (not where each command
    #: has a PID namespace of its own, as in local's sandbox); the conformance suite asks it
    background_survives_exec: ClassVar[bool] = True

    def __init__(self, options: ProviderOptions | Mapping[str, Any] | None = None) -> None:
        self.options = self.Options.validated(options, owner=f"provider {self.name!r}")
        #: the provider's own bookkeeping: every sandbox it acquired and has not released,
        #: with what it keeps for it (the container, the instance, the host lock, the trial
        #: folder); ``release`` pops it, ``close`` releases what is left
        self.held: dict[Sandbox, Any] = {}

    @classmethod
    def supports(
        cls, spec: SandboxSpec, options: ProviderOptions | Mapping[str, Any] | None = None
    ) -> str | None:
        """``None`` when the provider (with ``options``) can host ``spec``; else why not.

        A class method: collection asks it without starting the provider.
        """
        can = cls.Options.validated(options, owner=f"provider {cls.name!r}").capabilities(cls.capabilities)
        if spec.os not in can:
            return f"provider {cls.name!r} cannot run {spec.os} tasks"
        if spec.gpu and "gpu" not in can:
            flag = "gpu" in cls.Options.model_fields
            hint = " (set gpu: true in its preset if its machines have one)" if flag else ""
            return f"provider {cls.name!r} has no GPU here{hint}"
        return None

    @abc.abstractmethod
    def acquire(self, spec: SandboxSpec) -> Sandbox:
        """Start a fresh sandbox; raise ``InfrastructureError`` when that fails."""

    def release(self, sandbox: Sandbox) -> None:
        """End ``sandbox``: the one teardown path, whatever ended its trial (its end, an
        interrupt, a dead worker, the session's end). Providers override it to fence what
        is left, scrub a machine that outlives the trial, remove the container, VM, folders
        or uid and free a lock (all kept with ``--ale-keep``, the lock excepted), then close
        the sandbox. Idempotent: releasing a sandbox twice, after ``close``, or after a sweep
        removed it is harmless."""
        self.held.pop(sandbox, None)
        sandbox.close()

    def release_held(self) -> None:
        """Release every sandbox still held, each through ``release`` (the session's end, a
        signal): one that fails does not keep the others."""
        for sandbox in list(self.held):
            with contextlib.suppress(Exception):
                self.release(sandbox)

    def sweep(self, run_id: str | None = None) -> list[str]:
        """Remove leftovers of ``run_id`` (or every expired one); return what was removed."""
        return []

    def close(self) -> None:
        """End of the session: release every sandbox still held (``release_held``), then
        what the provider itself holds (overrides call this first)."""
        self.release_held()
