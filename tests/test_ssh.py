"""The shared SSH transport against a real loopback sshd: reconnect between commands, a drop
during a command (``SandboxGoneError``, its processes killed), and host-key checking."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("asyncssh")

from pytest_ale.errors import InfrastructureError, SandboxGoneError
from pytest_ale.providers.static import StaticProvider
from pytest_ale.sandbox import SandboxSpec
from tests.conformance.cases import static_options
from tests.conformance.env import Env
from tests.conformance.sshd import Sshd, available
from tests.conformance.test_conformance import alive

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    shared = Env()
    yield shared
    shared.close()


@pytest.fixture
def sandbox(env: Env):
    provider = StaticProvider(static_options(env))
    made = provider.acquire(SandboxSpec(run_id="ssh", trial_id="t"))
    yield made
    provider.release(made)


def test_reconnects_transparently_between_commands(sandbox, env: Env) -> None:
    assert sandbox.exec(["true"]).ok
    assert env.sshd.drop_connections() >= 1
    time.sleep(0.2)
    assert sandbox.exec(["echo", "back"]).stdout == "back\n"
    assert sandbox.session.connects == 2


def test_drop_during_a_command_is_sandbox_gone_and_kills_it(sandbox, env: Env) -> None:
    pidfile = sandbox.path("pid")
    threading.Timer(1.0, env.sshd.drop_connections).start()
    with pytest.raises(SandboxGoneError, match="dropped"):
        sandbox.sh(f"echo $$ > {pidfile}; exec sleep 30", timeout=20)
    pid = sandbox.read_text(pidfile).strip()  # reconnects for the check
    assert not alive(sandbox, pid), "the dropped command's process survived"


def test_wrong_host_key_is_refused(env: Env, tmp_path) -> None:
    other = Sshd(tmp_path / "other")  # a different host key
    provider = StaticProvider(static_options(env, host_key=other.host_key_line))
    with pytest.raises(InfrastructureError, match=r"refused|verif"):
        provider.acquire(SandboxSpec(run_id="ssh", trial_id="t"))
