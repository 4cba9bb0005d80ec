"""``static``: trials on machines that already exist, reached over SSH.

Preset (``providers/static.yaml``)::

    kind: static
    hosts: [eval-box-1, "ubuntu@eval-box-2:2222"]   # or host:/port:/user: for one machine
    user: root                       # the login user: root, or passwordless sudo
    agent_user: ale-agent            # required: who the agent runs as (see below)
    key: ~/.ssh/ale_ed25519          # private key file
    host_key: ~/.ssh/known_hosts     # known_hosts file or one public key line; unset = TOFU
    root: /srv/ale                   # optional: each trial's workdir goes under here
    cleanup: "docker system prune -f"   # optional command run after every trial
    lock_timeout_s: 3600
    max_output_mb: 2048              # caps on the collected output/
    max_output_files: 100000

The agent runs as ``agent_user``, an unprivileged account that must already exist on
every host (``sudo useradd -m -U ale-agent``; no sudo rights, no SSH key, not the login
user, not root); the login user stages, fences and grades, through ``sudo -n`` unless it
is root. Between trials everything the agent left in ``/tmp``, ``/var/tmp`` and
``/dev/shm`` is removed and its processes killed. Without ``agent_user`` the provider
refuses to start, unless ``unsafe_shared_user: true``: then the agent runs as the login
user, with the login user's rights, fenced by an environment marker that ``env -i``
escapes; nothing keeps it from the grader, and its scores are not to be trusted.

One trial per host at a time, across every pytest process on this machine (an ``flock``
per host): list several hosts to run several trials at once. Without ``root`` a trial
uses the task's workdir (``/workspace``) as is, emptied before and after the trial; with
``root`` it lives at ``ROOT/ale-<run>-<expiry>-<id>/<workdir>``, which ``--ale-sweep``
removes when expired (or when it belongs to the ``--ale-run-id`` given).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from ..errors import ConfigError, InfrastructureError
from ..sandbox import Provider, Sandbox, SandboxSpec, run_id_matches
from ..typed_options import GpuFlag, OptionsModel
from .ssh import SshOptions, SshSession, SshTarget, ephemeral_key, load_private_key
from .ssh_machine import end_sandbox, open_sandbox
from .ssh_sandbox import SshSandbox

UNSAFE_WORKDIRS = {"/", "/home", "/root", "/usr", "/etc", "/var", "/tmp", "/opt", "/bin", "/lib", "/boot"}
HOST_RE = re.compile(r"^(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]]+\]|[^:]+)(?::(?P<port>\d+))?$")


class HostEntry(OptionsModel):
    """One machine of ``hosts:`` written as a mapping."""

    host: str
    port: int | None = None
    user: str | None = None


class StaticOptions(GpuFlag, SshOptions):
    """``providers/static.yaml``."""

    #: ``[eval-1, "ubuntu@eval-2:2222", {host: eval-3, port: 22, user: ubuntu}]``
    hosts: list[str | HostEntry] | str = Field(default_factory=list)
    #: one machine (with ``port`` and ``user``), instead of ``hosts``
    host: str | None = None
    port: int = 22
    #: the login user: root, or passwordless sudo
    user: str = "root"
    #: the unprivileged account the agent runs as, on every host
    agent_user: str | None = None
    unsafe_shared_user: bool = False
    #: a private key file; unset = an ephemeral key (authorize it first)
    key: str | None = None
    lock_dir: str | None = None
    lock_timeout_s: float = 3600
    #: the operating system the machines run
    os: str = "linux"
    #: a command run after every trial
    cleanup: str | None = None
    sudo: bool = False

    def capabilities(self, declared: frozenset[str]) -> frozenset[str]:
        return super().capabilities(frozenset({self.os}))  # whatever the machines run

    @model_validator(mode="after")
    def _agent_user_given(self) -> Self:
        if not self.agent_user and not self.unsafe_shared_user:
            raise ValueError(
                "set `agent_user:` to an unprivileged account on the hosts for the agent to run "
                "as (create it: sudo useradd -m -U ale-agent); the login user needs root or "
                "passwordless sudo. (`unsafe_shared_user: true` runs the agent as the login user "
                "instead, and its scores cannot be trusted.)"
            )
        return self


def parse_hosts(options: StaticOptions) -> list[tuple[str, int, str]]:
    """``(host, port, user)`` for every machine the preset lists."""
    default_user, default_port = options.user, options.port
    raw = options.hosts or ([options.host] if options.host else [])
    if isinstance(raw, str):
        raw = [raw]
    hosts = []
    for entry in raw:
        if isinstance(entry, HostEntry):
            hosts.append((entry.host, entry.port or default_port, entry.user or default_user))
            continue
        match = HOST_RE.match(str(entry).strip())
        if not match:
            raise ConfigError(f"static provider: cannot read host {entry!r}; write user@host:port")
        hosts.append(
            (
                match["host"].strip("[]"),
                int(match["port"] or default_port),
                match["user"] or default_user,
            )
        )
    if not hosts:
        raise ConfigError(
            "static provider: no machine given; set `hosts: [...]` (or `host:`) in providers/static.yaml "
            "or pass --ale-provider-opt host=NAME"
        )
    return hosts


class HostLock:
    """An exclusive ``flock`` on one host, shared by every process on this machine."""

    def __init__(self, host: str, port: int, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^0-9A-Za-z_.-]", "_", f"{host}_{port}")
        self.path = folder / f"{safe}.lock"
        self.fh: Any = None

    def try_acquire(self) -> bool:
        fh = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self.fh = fh
        return True

    def release(self) -> None:
        if self.fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None


@dataclass
class Hold:
    """What the provider keeps for a sandbox it holds: the host's lock, and the folder the
    trial lives in (its trial root, or the workdir used as is)."""

    lock: HostLock
    folder: str


class StaticProvider(Provider):
    """Existing machines over SSH, one trial per machine at a time."""

    name = "static"
    capabilities: ClassVar[frozenset[str]] = frozenset({"linux"})
    Options = StaticOptions
    options: StaticOptions

    def __init__(self, options: StaticOptions | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.hosts = parse_hosts(self.options)
        key = self.options.key
        self.key = load_private_key(key) if key else ephemeral_key()
        self.root = self.options.root.rstrip("/") if self.options.root else None
        self.lock_dir = Path(self.options.lock_dir or Path(tempfile.gettempdir()) / "pytest-ale-static")
        self.lock_timeout = self.options.lock_timeout_s
        self.agent_user = self.options.agent_user or None
        for host, _port, user in self.hosts:
            if self.agent_user in (user, "root"):
                raise ConfigError(
                    f"static provider: agent_user {self.agent_user!r} must be another account than "
                    f"the login user ({user}@{host}) and root"
                )

    def _target(self, host: str, port: int, user: str) -> SshTarget:
        return self.options.target(host, port, user, self.key)

    def _lock(self) -> tuple[HostLock, tuple[str, int, str]]:
        deadline = time.monotonic() + self.lock_timeout
        while True:
            for host in self.hosts:
                lock = HostLock(host[0], host[1], self.lock_dir)
                if lock.try_acquire():
                    return lock, host
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"static provider: every host stayed busy for {self.lock_timeout:.0f}s "
                    f"({', '.join(h[0] for h in self.hosts)}); list more hosts or run fewer workers"
                )
            time.sleep(0.25)

    def acquire(self, spec: SandboxSpec) -> Sandbox:
        lock, (host, port, user) = self._lock()
        try:
            trial_root = None
            if self.root:
                expiry = int(time.time() + spec.expiry_s)
                trial_root = f"{self.root}/ale-{_slug(spec.run_id)}-{expiry}-{uuid.uuid4().hex[:8]}"
            elif os.path.normpath(spec.workdir) in UNSAFE_WORKDIRS:
                raise ConfigError(
                    f"static provider: refusing to use {spec.workdir} as a workspace on {host} (it is "
                    "emptied after each trial); set `root:` in the preset"
                )
            sandbox = open_sandbox(
                spec,
                self._target(host, port, user),
                trial_root=trial_root,
                name=f"static host {user}@{host}:{port}",
                agent_user=self.agent_user,
                sudo=self.options.sudo,
                max_output_mb=self.options.max_output_mb,
                max_output_files=self.options.max_output_files,
                empty_workdir=True,
            )
        except BaseException:
            lock.release()
            raise
        self.held[sandbox] = Hold(lock, trial_root or sandbox.workdir)
        return sandbox

    def release(self, sandbox: Sandbox) -> None:
        """Fence the trial, then (unless ``keep``) scrub the host's temporary folders and
        remove the trial's folders and socket doors, run ``cleanup``; the host's lock is
        freed in every case."""
        hold = self.held.pop(sandbox, None)
        if hold is None or not isinstance(sandbox, SshSandbox):
            sandbox.close()
            return
        try:
            keep = self.options.keep
            gone = [hold.folder, sandbox.scratch, sandbox.grader_scratch_made]
            gone += sorted({p.rpartition("/")[0] for p in sandbox.socket_paths.values()})
            end_sandbox(
                sandbox,
                scrub=not keep,
                remove=[] if keep else gone,
                cleanup=None if keep else self.options.cleanup,
            )
        finally:
            hold.lock.release()

    def sweep(self, run_id: str | None = None) -> list[str]:
        """Remove expired (or ``run_id``'s) trial folders under ``root`` on every host."""
        if not self.root:
            return []
        removed: list[str] = []
        now = int(time.time())
        for host, port, user in self.hosts:
            session = SshSession(self._target(host, port, user))
            try:
                session.connect()
                listing = session.run(f"ls -1 {shlex.quote(self.root)} 2>/dev/null", timeout=60)
                for name in listing.stdout.decode().split():
                    if _sweepable(name, run_id, now):
                        path = f"{self.root}/{name}"
                        sudo = "sudo -n " if user != "root" else ""  # the agent's files
                        session.run(f"{sudo}rm -rf {shlex.quote(path)}", timeout=600)
                        removed.append(f"{host}:{path}")
            finally:
                session.close()
        return removed


def _sweepable(name: str, run_id: str | None, now: int) -> bool:
    match = re.match(r"^ale-(?P<run>.+)-(?P<expiry>\d{9,})-[0-9a-f]{8}$", name)
    if not match:
        return False
    if run_id is not None:
        return run_id_matches(match["run"], run_id, _slug)
    return int(match["expiry"]) < now


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", text)[:80]
