"""``local``: the embedded default sandbox — no Docker, no cloud, works on a fresh machine.

Each trial gets a fresh folder tree on the host (``workspace/``, ``tmp/``, ``home/``).
When bubblewrap (``bwrap``) is installed, commands run inside it: the system folders
read-only, nothing else of the host visible (not the task's ``reference/``, not your home),
the workspace writable at the path the task expects, no network, and a PID namespace per
command, so killing a command's bubblewrap kills everything it started (the kernel ends a
PID namespace whose first process dies: ``setsid`` or ``env -i`` cannot leave it).

The agent never holds a privilege: when pytest runs as root, each sandbox gets a uid of
its own (``AGENT_UIDS``, claimed with a lock file) and every agent command drops to it with
``setpriv`` inside bubblewrap, with every capability cleared and ``no_new_privs`` set (no
mount, mknod, ptrace of others, raw sockets); the fence also kills every process of that
uid. As an ordinary user, bubblewrap runs the agent in a user namespace with no
capabilities. Grader commands (``grader_exec``) run as the host user, never as the
agent's uid, after ``prepare_grading`` has moved what the agent left in ``/tmp`` aside.

Without bubblewrap (or with ``isolation=none``), commands are plain subprocesses in the
workspace: a debugging mode, with one warning per run saying that nothing is isolated.

Options (``providers/local.yaml`` or ``--ale-provider-opt``): ``isolation``
(``auto`` | ``bwrap`` | ``none``), ``root`` (where trial folders go), ``ro_binds`` (more
host folders to show read-only), ``network`` (allow the network), ``max_output_mb`` and
``max_output_files`` (caps on ``output/``), ``max_processes`` (how many processes the
agent may have at once when pytest runs as root; default 4096).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, InfrastructureError
from ..sandbox import Provider, Sandbox, SandboxSpec, run_id_matches
from .bwrap import SETPRIV
from .local_sandbox import AGENT_UIDS, MARKER_FILE, LocalOptions, LocalSandbox
from .processes import kill_marked, kill_uid

__all__ = ["LocalIsolationWarning", "LocalOptions", "LocalProvider", "LocalSandbox"]

OWNER_FILE = ".ale-owner.json"
UID_FILE = ".ale-uid"


class LocalIsolationWarning(UserWarning):
    """Trials run as plain host processes because bubblewrap is not installed."""


class LocalProvider(Provider):
    """Fresh folder trees on this machine, isolated by bubblewrap when it is installed."""

    name = "local"
    #: ``netproxy``: each command runs through the relay to ``SandboxSpec.proxy``
    capabilities: ClassVar[frozenset[str]] = frozenset({"linux", "netproxy"})
    Options = LocalOptions
    options: LocalOptions
    background_survives_exec: ClassVar[bool] = False  # a PID namespace per command
    _warned: ClassVar[bool] = False

    def __init__(self, options: LocalOptions | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        isolation = self.options.isolation
        found = shutil.which("bwrap") if isolation != "none" else None
        if isolation == "bwrap" and not found:
            raise ConfigError(
                "local provider: isolation=bwrap but bubblewrap is not installed (apt-get install bubblewrap)"
            )
        self.bwrap = found
        self.base = Path(self.options.root or tempfile.gettempdir()) / "pytest-ale"
        if found and os.geteuid() == 0 and not os.access(SETPRIV, os.X_OK):
            raise ConfigError(
                "local provider: pytest runs as root, so agents must drop to a uid of their own "
                "with setpriv, which is missing (apt-get install util-linux)"
            )
        if not found and not LocalProvider._warned:
            LocalProvider._warned = True
            why = (
                "isolation=none"
                if isolation == "none"
                else "bubblewrap is not installed (apt-get install bubblewrap)"
            )
            warnings.warn(
                LocalIsolationWarning(
                    f"{why}: the local sandbox runs agents as plain host processes, as your own "
                    "user: NOTHING is isolated (they can read your files, the task's reference/, "
                    "and use the network). A debugging mode: use bubblewrap or docker to score."
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
        uid = self._claim_uid(root) if self.bwrap and os.geteuid() == 0 else None
        sandbox = LocalSandbox(spec, root, self.bwrap, self.options, agent_uid=uid)
        self.held[sandbox] = root
        return sandbox

    def _claim_uid(self, root: Path) -> int:
        """A uid no other live sandbox holds: a lock file per uid in ``uids/``, naming the
        trial folder that holds it (released with it, and by the sweep)."""
        claims = self.base / "uids"
        claims.mkdir(exist_ok=True)
        for _ in range(1000):
            uid = random.choice(AGENT_UIDS)
            try:
                fd = os.open(claims / str(uid), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(root))
            (root / UID_FILE).write_text(str(uid))
            return uid
        raise InfrastructureError(f"local provider: no free agent uid in {claims}")

    def release(self, sandbox: Sandbox) -> None:
        """Close the sandbox, kill what it still runs, remove its trial folder (and the
        grader's scratch folder, in the host's ``/tmp`` without bubblewrap) and free its uid;
        with ``keep`` the folder (and its uid's files) stay, for the sweep to free."""
        root = self.held.pop(sandbox, None)
        sandbox.close()
        if root is None or not isinstance(sandbox, LocalSandbox):
            return
        sandbox.kill_all()
        if self.options.keep:
            return
        scratch = sandbox.grader_scratch_made
        host_scratch = sandbox.to_host(scratch) if scratch else None
        if host_scratch is not None:
            shutil.rmtree(host_scratch, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        if sandbox.agent_uid is not None:
            (self.base / "uids" / str(sandbox.agent_uid)).unlink(missing_ok=True)

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
                # moved aside first (atomic): a trial still running in it (a forced sweep)
                # finds its sandbox gone at once, before its agent's processes are killed
                grave = entry.with_name(f".swept-{entry.name}")
                try:
                    entry.rename(grave)
                except OSError:
                    grave = entry
                if owner.get("run_id"):
                    kill_marked_in(grave)
                shutil.rmtree(grave, ignore_errors=True)
                removed.append(str(entry))
        self._free_stale_uids()
        return removed

    def _free_stale_uids(self) -> None:
        """Uid claims whose trial folder is gone are free again (their processes killed)."""
        claims = self.base / "uids"
        for claim in claims.iterdir() if claims.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                if not Path(claim.read_text().strip()).is_dir():
                    if os.geteuid() == 0:
                        kill_uid(int(claim.name))
                    claim.unlink()


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
    uid = root / UID_FILE
    if uid.is_file() and os.geteuid() == 0:
        with contextlib.suppress(ValueError):
            kill_uid(int(uid.read_text().strip()))
