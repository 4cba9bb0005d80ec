"""The shared test machinery behind the conformance suite, started lazily, once a session.

- ``sshd``: a real OpenSSH server on loopback (``sshd.py``), every VM provider's data path;
- ``moto``: a ``moto_server`` (``ThreadedMotoServer``) on loopback for EC2 (and S3);
- ``gce``: the loopback GCE fake (``tests/fakes/gce.py``; a fake because no emulator exists);
- ``libvirt``: the in-process ``test:///default`` driver;
- ``agent_user``: a fresh unprivileged account on this machine (the loopback "VM"), what
  the SSH providers run the agent as; one per ``Env``, so a fence (every process of that
  uid) never reaches another test session's agent. Removed, with its files, by ``close``.

Nothing here reaches a network beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .sshd import Sshd, free_port

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class Env:
    """Lazily started services; ``close`` stops whatever was started."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ale-conformance-"))
        self.root.chmod(0o755)  # the agent's account reaches the workspaces made under it
        self._sshd: Sshd | None = None
        self._agent_user: str | None = None
        self._moto: Any = None
        self._gce: Any = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def sshd(self) -> Sshd:
        if self._sshd is None:
            self._sshd = Sshd(self.root / "sshd").start()
        return self._sshd

    @property
    def moto_url(self) -> str:
        if self._moto is None:
            from moto.server import ThreadedMotoServer

            for key, value in AWS_ENV.items():
                self._saved_env[key] = os.environ.get(key)
                os.environ[key] = value
            port = free_port()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            self._moto = (server, f"http://127.0.0.1:{port}")
        return self._moto[1]

    def ec2(self) -> Any:
        import boto3

        return boto3.client("ec2", region_name="us-east-1", endpoint_url=self.moto_url)

    def ami(self) -> str:
        images = self.ec2().describe_images(Owners=["amazon"])["Images"]
        return sorted(image["ImageId"] for image in images)[0]

    @property
    def gce(self) -> Any:
        if self._gce is None:
            from tests.fakes.gce import FakeGce

            self._gce = FakeGce(on_ssh_key=self.sshd.authorize).start()
        return self._gce

    @property
    def agent_user(self) -> str:
        if self._agent_user is None:
            name = f"ale-t{uuid.uuid4().hex[:8]}"
            subprocess.run(["useradd", "-M", "-U", "-s", "/bin/sh", name], check=True, capture_output=True)
            self._agent_user = name
        return self._agent_user

    def _drop_agent_user(self, name: str) -> None:
        uid = subprocess.run(["id", "-u", name], capture_output=True, text=True).stdout.strip()
        if uid.isdigit() and uid != "0":
            kill = ["setpriv", "--reuid", uid, "--regid", uid, "--clear-groups", "--", "kill", "-9", "-1"]
            subprocess.run(kill, capture_output=True)
            find = ["find", "/tmp", "/var/tmp", "/dev/shm", "-xdev", "-mindepth", "1", "-maxdepth", "1"]
            subprocess.run([*find, "-uid", uid, "-exec", "rm", "-rf", "--", "{}", "+"], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        if self._sshd is not None:
            self._sshd.stop()
        if self._moto is not None:
            self._moto[0].stop()
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if self._gce is not None:
            self._gce.stop()
        if self._agent_user is not None:
            self._drop_agent_user(self._agent_user)
        shutil.rmtree(self.root, ignore_errors=True)
