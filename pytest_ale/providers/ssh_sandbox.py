"""``SshSandbox``: the Sandbox interface over one SSH session, shared by every VM provider.

Commands run through the remote login shell as ``cd CWD && exec env MARKERS... ARGV``.
Every process a trial starts inherits two environment markers: ``ALE_SANDBOX_ID`` (the
sandbox) and ``ALE_EXEC_ID`` (the one command). A timeout kills every process carrying the
command's marker; ``kill_all`` (the fence) kills every process carrying the sandbox's,
found with one ``grep`` over ``/proc/*/environ`` on the machine, so processes that
``setsid`` or double-fork away from the command are still found.

Files move as one tar stream each way (GNU tar on the machine): ``put_archive`` pipes the
archive into ``tar -x`` (modes and symlinks kept), ``get_archive`` reads ``tar -c``.
"""

from __future__ import annotations

import contextlib
import shlex
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InfrastructureError, SandboxGoneError, StagingError
from ..sandbox import ExecResult, Sandbox, SandboxSpec
from .processes import MARKER
from .ssh import ConnectionDropped, SshSession
from .tar_shell import archive_result, archive_script

EXEC_MARKER = "ALE_EXEC_ID"

KILL_SCRIPT = r"""
all=""
for round in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  pids=$(grep -Flzx {pattern} /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3)
  [ -z "$pids" ] && break
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  all="$all $pids"
  sleep 0.05
done
echo $all | tr ' ' '\n' | sort -u | grep -c . || true
"""


def socket_forwards(spec: SandboxSpec, remap: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Reverse forwards ``{remote_path: host_path}`` for ``spec.sockets``, and where each
    socket appears in the sandbox. ``remap`` puts them in a fresh short folder under
    ``/tmp`` (machines shared between trials; a Unix socket path must stay under 108 bytes)
    instead of at the path the agent asked for."""
    forwards: dict[str, str] = {}
    paths: dict[str, str] = {}
    folder = f"/tmp/ale-gw-{uuid.uuid4().hex[:8]}"
    for n, (inside, host_path) in enumerate(spec.sockets.items()):
        remote = f"{folder}/{n}-{inside.rstrip('/').rpartition('/')[2]}"[:100] if remap else inside
        forwards[remote] = host_path
        paths[inside] = remote
    return forwards, paths


class SshSandbox(Sandbox):
    """A workspace on a machine reached over SSH."""

    #: what the provider keeps with the sandbox (the VM instance, the static host's lock)
    instance: Any = None
    host_lock: Any = None

    def __init__(
        self,
        spec: SandboxSpec,
        session: SshSession,
        *,
        workdir: str | None = None,
        scratch: str | None = None,
        socket_paths: Mapping[str, str] | None = None,
        sudo: bool = False,
        on_close: Callable[[SshSandbox], None] | None = None,
        name: str = "",
    ) -> None:
        self.marker = uuid.uuid4().hex
        super().__init__(spec, workdir or spec.workdir, scratch=scratch or f"/tmp/ale-{self.marker[:12]}")
        self.session = session
        self.sudo = sudo
        self.on_close = on_close
        self.name = name or session.target.label()
        self.closed = False
        if socket_paths is not None:
            self.socket_paths = dict(socket_paths)

    # -- setting up --------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the workspace and scratch folders, owned by the login user."""
        dirs = " ".join(shlex.quote(d) for d in (self.workdir, self.scratch))
        script = (
            f"mkdir -p {dirs} 2>/dev/null || "
            f'{{ sudo -n mkdir -p {dirs} && sudo -n chown "$(id -u):$(id -g)" {dirs}; }}'
        )
        done = self._plain(script, timeout=60)
        if done.exit_code != 0:
            raise InfrastructureError(
                f"{self.name}: cannot create {self.workdir} (not writable and no passwordless sudo): "
                + done.stderr.decode("utf-8", "replace").strip()
            )

    # -- the primitives ----------------------------------------------------------------
    def exec(self, cmd, *, timeout=None, env=None, cwd=None, user=None, stdin=None) -> ExecResult:
        if self.closed:
            raise InfrastructureError(f"{self.name}: the sandbox was already released")
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        exec_id = uuid.uuid4().hex
        markers = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", **{k: str(v) for k, v in (env or {}).items()}}
        markers[MARKER] = self.marker
        markers[EXEC_MARKER] = exec_id
        env_words = " ".join(shlex.quote(f"{k}={v}") for k, v in markers.items())
        runner = f"sudo -n -u {shlex.quote(user)} -- env" if user else "env"
        folder = shlex.quote(cwd or self.workdir)
        command = (
            f"cd {folder} 2>/dev/null || {{ echo 'no such folder: '{folder} >&2; exit 127; }}; "
            f"exec {runner} {env_words} {shlex.join(argv)}"
        )
        try:
            done = self.session.run(command, stdin=stdin or b"", timeout=timeout)
        except ConnectionDropped as exc:
            self.session.drop()
            with contextlib.suppress(InfrastructureError):
                self._kill(f"{EXEC_MARKER}={exec_id}")
            raise SandboxGoneError(
                f"{exc} while running {argv[0]!r}; its processes were killed. The trial is "
                "retried on a fresh sandbox (--ale-infra-retries)."
            ) from exc
        if done.timed_out:
            self._kill(f"{EXEC_MARKER}={exec_id}")
        return ExecResult(
            exit_code=-9 if done.timed_out or done.exit_code is None else done.exit_code,
            stdout=done.stdout.decode("utf-8", "replace"),
            stderr=done.stderr.decode("utf-8", "replace"),
            timed_out=done.timed_out,
            duration_s=done.duration_s,
        )

    def put_archive(self, dest: str, data: bytes) -> None:
        folder = shlex.quote(dest)
        script = f"mkdir -p {folder} && tar -x -p --no-same-owner -C {folder} -f -"
        done = self._plain(script, stdin=data, timeout=3600)
        if done.exit_code != 0:
            raise StagingError(
                f"{self.name}: extracting into {dest} failed: "
                + done.stderr.decode("utf-8", "replace").strip()
            )

    def get_archive(self, src: str) -> bytes:
        done = self._plain(archive_script(src), timeout=3600)
        return archive_result(self.name, src, done.exit_code, done.stdout, done.stderr)

    def kill_all(self) -> int:
        return self._kill(f"{MARKER}={self.marker}")

    def close(self) -> None:
        if self.closed:
            return
        try:
            with contextlib.suppress(InfrastructureError):
                self.kill_all()
            if self.on_close is not None:
                self.on_close(self)
        finally:
            self.closed = True
            self.session.close()

    def describe(self) -> str:
        t = self.session.target
        return f"ssh -p {t.port} {t.user}@{t.host}  (workspace {self.workdir}; {self.name})"

    # -- helpers -----------------------------------------------------------------------
    def _plain(self, script: str, *, stdin: bytes = b"", timeout: float | None = None, root: bool = False):
        """Run a harness-side script (no markers, so the fence never kills it); ``root``
        runs it through ``sudo`` when the sandbox was told to (to kill other users' processes)."""
        command = f"sudo -n sh -c {shlex.quote(script)}" if root and self.sudo else script
        try:
            return self.session.run(command, stdin=stdin, timeout=timeout)
        except ConnectionDropped as exc:
            self.session.drop()
            raise SandboxGoneError(f"{exc}; the trial is retried on a fresh sandbox") from exc

    def _kill(self, pattern: str) -> int:
        done = self._plain(KILL_SCRIPT.replace("{pattern}", shlex.quote(pattern)), timeout=60, root=True)
        try:
            return int(done.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            return 0
