"""The SSH transport every VM provider shares: keys, host keys, one reconnecting connection.

Library: **asyncssh**, not paramiko, because it speaks OpenSSH's Unix-socket forwarding
(``streamlocal-forward@openssh.com``): the model gateway's host socket is reverse-forwarded
to a socket path inside the VM over the same connection, so API keys never leave the host
and the VM needs no network route back to it. Paramiko only forwards TCP ports. asyncssh
also gives per-command timeouts, keepalives and in-memory key generation. Its coroutines
run on one private loop thread (``ssh_loop``), so the synchronous Sandbox API can use it.

Keys: ``ephemeral_key()`` makes an Ed25519 pair in memory for a run; the private half is
never written anywhere (not to disk, not to reports); only the public half goes to the
VM (metadata, an EC2 key pair, a cloud-init seed). Host keys: ``host_key`` in a preset is
a ``known_hosts`` file or one ``ssh-ed25519 AAAA...`` line (checked strictly); without
one, a fresh VM's key is trusted on first use and pinned, so a reconnect to a different
key fails.

``SshSession`` reconnects transparently between commands. A connection that drops *during*
a command raises ``ConnectionDropped``; the sandbox turns that into ``SandboxGoneError``
(the trial is retried on a fresh sandbox), because a command's output cannot be resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import asyncssh

from ..errors import ConfigError, InfrastructureError
from ..typed_options import OutputCaps
from .processes import MAX_STREAM_BYTES, capped_output
from .ssh_loop import LoopThread, shared_loop

#: errors that mean "the connection is gone", as opposed to "the command failed"
DROPPED = (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError, EOFError)


#: AES-GCM first (hardware-accelerated); chacha20-poly1305 is left out because asyncssh's
#: implementation of it fails under some builds of ``cryptography`` (UnsupportedAlgorithm)
CIPHERS = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr"]


class ConnectionDropped(InfrastructureError):
    """The SSH connection broke while a command was running."""


def ephemeral_key() -> asyncssh.SSHKey:
    """A fresh Ed25519 key pair, in memory only."""
    return asyncssh.generate_private_key("ssh-ed25519", comment="pytest-ale ephemeral")


def public_line(key: asyncssh.SSHKey) -> str:
    """The OpenSSH ``authorized_keys`` line of ``key``'s public half."""
    return key.export_public_key("openssh").decode().strip()


def load_private_key(path: str | Path) -> asyncssh.SSHKey:
    path = Path(path).expanduser()
    try:
        return asyncssh.read_private_key(str(path))
    except (OSError, asyncssh.KeyImportError) as exc:
        raise ConfigError(f"cannot read SSH private key {path}: {exc}; set `key:` to a readable key") from exc


@dataclass
class SshTarget:
    """Where and as whom to connect."""

    host: str
    port: int = 22
    user: str = "root"
    key: asyncssh.SSHKey | None = None
    #: a known_hosts path or an ``ssh-ed25519 AAAA...`` line; None = trust on first use
    host_key: str | None = None
    connect_timeout: float = 10.0
    keepalive_s: float = 15.0
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


class SshOptions(OutputCaps):
    """The options of every provider that reaches its machines over SSH (static, the VMs)."""

    #: a known_hosts file or one ``ssh-ed25519 AAAA...`` line; unset = trust on first use
    host_key: str | None = None
    connect_timeout_s: float = 15
    #: put each trial's workspace under this folder (machines shared between trials)
    root: str | None = None

    def target(self, host: str, port: int, user: str, key: asyncssh.SSHKey) -> SshTarget:
        return SshTarget(
            host=host,
            port=port,
            user=user,
            key=key,
            host_key=self.host_key,
            connect_timeout=self.connect_timeout_s,
        )


def _known_hosts(spec: str | None, pinned: asyncssh.SSHKey | None) -> Any:
    if pinned is not None:
        return ([pinned], [], [])
    if not spec:
        return None  # trust on first use; pinned after the first connection
    if spec.startswith(("ssh-", "ecdsa-")):
        return ([asyncssh.import_public_key(spec)], [], [])
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(f"host_key {spec!r} is neither a known_hosts file nor a public key line")
    return str(path)


class SshSession:
    """One SSH connection to a machine, reconnected when it is found closed.

    ``forwards`` (``{remote_socket_path: local_socket_path}``) are re-established on every
    (re)connection.
    """

    def __init__(
        self, target: SshTarget, forwards: dict[str, str] | None = None, loop: LoopThread | None = None
    ):
        self.target = target
        self.forwards = dict(forwards or {})
        self.loop = loop or shared_loop()
        self.conn: asyncssh.SSHClientConnection | None = None
        self.pinned: asyncssh.SSHKey | None = None
        self.connects = 0
        self.closed = False

    # -- connecting --------------------------------------------------------------------
    def connect(self, deadline_s: float | None = None) -> None:
        """Connect, retrying until ``deadline_s`` (a booting VM refuses for a while)."""
        self.loop.run(self._connect_retrying(deadline_s or self.target.connect_timeout))

    async def _connect_retrying(self, budget: float) -> None:
        deadline = time.monotonic() + budget
        delay = 0.2
        while True:
            try:
                await self._connect_once()
                return
            except (asyncssh.HostKeyNotVerifiable, asyncssh.PermissionDenied) as exc:
                raise InfrastructureError(f"SSH to {self.target.label()} refused: {exc}") from exc
            except (TimeoutError, *DROPPED, asyncssh.Error) as exc:
                if time.monotonic() + delay > deadline:
                    raise InfrastructureError(
                        f"cannot reach {self.target.label()} over SSH within {budget:.0f}s: {exc}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _connect_once(self) -> None:
        t = self.target
        conn = await asyncssh.connect(
            t.host,
            port=t.port,
            username=t.user,
            client_keys=[t.key] if t.key is not None else None,
            known_hosts=_known_hosts(t.host_key, self.pinned),
            connect_timeout=t.connect_timeout,
            keepalive_interval=t.keepalive_s,
            keepalive_count_max=3,
            agent_path=None,
            config=[],
            encryption_algs=CIPHERS,
        )
        if self.pinned is None:
            self.pinned = conn.get_server_host_key()
        try:
            for remote, local in self.forwards.items():
                await self._forward(conn, remote, local)
        except BaseException:
            conn.abort()
            raise
        self.conn = conn
        self.connects += 1

    async def _forward(self, conn: asyncssh.SSHClientConnection, remote: str, local: str) -> None:
        parent = remote.rpartition("/")[0] or "/"
        # sshd will not replace an existing socket file unless StreamLocalBindUnlink is set
        prepare = f"mkdir -p {shlex.quote(parent)} && rm -f {shlex.quote(remote)}"
        await conn.run(prepare, check=False, input=b"")
        try:
            await conn.forward_remote_path(remote, local)
        except asyncssh.ChannelListenError as exc:
            raise InfrastructureError(
                f"{self.target.label()}: cannot forward host socket {local} to {remote} "
                f"(is AllowStreamLocalForwarding off in sshd_config?): {exc}"
            ) from exc
        # sshd makes the socket its login user's only (StreamLocalBindMask 0177); the door
        # is meant for the agent, which runs as another user
        await conn.run(f"chmod 666 {shlex.quote(remote)}", check=False, input=b"")

    def _alive(self) -> bool:
        return self.conn is not None and not self.conn.is_closed()

    async def _ensure(self) -> asyncssh.SSHClientConnection:
        if self.closed:
            raise InfrastructureError(f"SSH session to {self.target.label()} was closed")
        if not self._alive():
            await self._connect_retrying(self.target.connect_timeout)
        assert self.conn is not None
        return self.conn

    # -- running -----------------------------------------------------------------------
    def run(self, command: str, *, stdin: bytes = b"", timeout: float | None = None) -> Completed:
        """Run a shell command string; ``ConnectionDropped`` if the link breaks meanwhile."""
        return self.loop.run(self._run(command, stdin, timeout))

    async def _run(self, command: str, stdin: bytes, timeout: float | None) -> Completed:
        conn = await self._ensure()
        started = time.monotonic()
        try:
            proc = await conn.create_process(command, encoding=None)
        except DROPPED as exc:
            raise ConnectionDropped(f"SSH connection to {self.target.label()} dropped: {exc}") from exc
        out, err = _Capped(), _Capped()
        feeding = asyncio.ensure_future(_feed(proc, stdin))  # read or not, it never blocks the end

        async def whole() -> None:
            await asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))
            await proc.wait_closed()

        try:
            await asyncio.wait_for(whole(), timeout)
        except TimeoutError:
            proc.close()
            return Completed(None, out.value(), err.value(), True, time.monotonic() - started)
        except DROPPED as exc:
            raise ConnectionDropped(f"SSH connection to {self.target.label()} dropped: {exc}") from exc
        finally:
            feeding.cancel()
        if proc.exit_status is None and proc.exit_signal is None:
            raise ConnectionDropped(f"SSH connection to {self.target.label()} dropped mid-command")
        code = proc.exit_status if proc.exit_status is not None else 128 + 9
        if proc.exit_signal is not None and proc.exit_status in (None, -1):
            code = -1
        return Completed(code, out.value(), err.value(), False, time.monotonic() - started)

    def run_to_file(
        self, command: str, out: BinaryIO, *, limit: int, timeout: float | None = None
    ) -> tuple[Completed, bool]:
        """Run ``command`` writing its stdout to ``out`` as it comes (never all in memory);
        past ``limit`` bytes the command is stopped. The result (``stdout`` empty) and
        whether the limit stopped it."""
        return self.loop.run(self._run_to_file(command, out, limit, timeout))

    async def _run_to_file(
        self, command: str, out: BinaryIO, limit: int, timeout: float | None
    ) -> tuple[Completed, bool]:
        conn = await self._ensure()
        started = time.monotonic()
        over = False
        try:
            proc = await conn.create_process(command, encoding=None, stdin=asyncssh.DEVNULL)
        except DROPPED as exc:
            raise ConnectionDropped(f"SSH connection to {self.target.label()} dropped: {exc}") from exc

        async def drain_errors() -> bytes:
            kept = bytearray()
            while chunk := await proc.stderr.read(1 << 16):
                kept += chunk[: max(0, (1 << 20) - len(kept))]
            return bytes(kept)

        async def pump() -> None:
            nonlocal over
            total = 0
            while chunk := await proc.stdout.read(1 << 20):
                total += len(chunk)
                if total > limit:
                    over = True
                    return
                out.write(chunk)

        errors = asyncio.ensure_future(drain_errors())
        timed_out = False
        stderr = b""
        try:
            await asyncio.wait_for(pump(), timeout)
            if not over:
                await asyncio.wait_for(proc.wait_closed(), 30)
                stderr = await asyncio.wait_for(errors, 5)
        except TimeoutError:
            timed_out = True
        except DROPPED as exc:
            raise ConnectionDropped(f"SSH connection to {self.target.label()} dropped: {exc}") from exc
        finally:
            if not errors.done():
                proc.close()
                errors.cancel()
        elapsed = time.monotonic() - started
        if timed_out or over:
            return Completed(None, b"", b"", timed_out, elapsed), over
        if proc.exit_status is None and proc.exit_signal is None:
            raise ConnectionDropped(f"SSH connection to {self.target.label()} dropped mid-command")
        code = proc.exit_status if proc.exit_status is not None else 128 + 9
        return Completed(code, b"", stderr, False, elapsed), False

    def drop(self) -> None:
        """Forget the current connection (the next command reconnects)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.abort()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                self.loop.run(_close(conn), timeout=10)


async def _close(conn: asyncssh.SSHClientConnection) -> None:
    conn.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.wait_closed(), 5)


async def _feed(proc: Any, data: bytes) -> None:
    """A command's whole stdin, then its end (a command that exits unread ends the channel)."""
    with contextlib.suppress(Exception):
        if data:
            proc.stdin.write(data)
            await proc.stdin.drain()
        proc.stdin.write_eof()


class _Capped:
    """One output stream, its first ``MAX_STREAM_BYTES`` kept, the rest read and dropped
    (an agent printing without end must not fill the host's memory), saying so."""

    def __init__(self) -> None:
        self.kept, self.dropped = bytearray(), 0

    async def drain(self, stream: Any) -> None:
        while chunk := await stream.read(1 << 20):
            room = max(MAX_STREAM_BYTES - len(self.kept), 0)
            self.kept += chunk[:room]
            self.dropped += max(len(chunk) - room, 0)

    def value(self) -> bytes:
        return capped_output(self.kept, self.dropped)


@dataclass
class Completed:
    """A finished remote command; ``exit_code`` is None when it timed out."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration_s: float
