"""A real OpenSSH server on loopback: the stand-in for a VM in the provider tests.

Not a fake: it is ``/usr/sbin/sshd`` (apt ``openssh-server``, installed by
``.ci/vm.sh``) with its own host key, config and ``authorized_keys`` in a temporary folder,
listening on a free 127.0.0.1 port. Keys it accepts are the per-run ephemeral ones the
providers generate; nothing is written to reports. Root is needed (privilege separation).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_ed25519
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
MaxStartups 200
MaxSessions 200
LogLevel ERROR
"""


def available() -> str | None:
    """Why a real sshd cannot run here, or ``None`` when it can."""
    if not os.path.exists(SSHD):
        return "openssh-server is not installed (bash .ci/vm.sh)"
    if os.geteuid() != 0:
        return "the loopback sshd needs root (privilege separation)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sshd:
    """One sshd process; ``authorize`` adds a public key line; ``stop`` ends it."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        key = self.dir / "host_ed25519"
        if not key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                check=True,
                capture_output=True,
            )
        self.host_key_line = " ".join((self.dir / "host_ed25519.pub").read_text().split()[:2])
        (self.dir / "authorized_keys").touch()
        (self.dir / "sshd_config").write_text(CONFIG.format(port=self.port, dir=self.dir))

    def authorize(self, public_line: str) -> None:
        with open(self.dir / "authorized_keys", "a") as fh:
            fh.write(public_line.strip() + "\n")

    def start(self) -> Sshd:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "sshd.log", "ab"),  # noqa: SIM115 - closed with the process
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.dir / 'sshd.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10s")

    def session_pids(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of the listener)."""
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def drop_connections(self) -> int:
        """Kill every connection's sshd process: the network 'drops' for every client."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self) -> None:
        self.drop_connections()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
