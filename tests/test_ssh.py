"""The shared SSH transport against a real loopback sshd: reconnect between commands, a drop
during a command (``SandboxGoneError``, its processes killed), and host-key checking."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("asyncssh")

from pytest_ale.errors import ConfigError, InfrastructureError, SandboxGoneError
from pytest_ale.fence import fence
from pytest_ale.providers.static import StaticProvider
from pytest_ale.sandbox import SandboxSpec
from pytest_ale.testing import alive
from tests.conformance.cases import static_options
from tests.conformance.env import Env
from tests.conformance.sshd import Sshd, available

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


def test_static_refuses_an_agent_that_would_share_the_login_users_rights(env: Env) -> None:
    options = static_options(env)
    del options["agent_user"]
    with pytest.raises(ConfigError, match="agent_user"):
        StaticProvider(options)
    for same in ("root", options["user"]):
        with pytest.raises(ConfigError, match="another account"):
            StaticProvider({**options, "agent_user": same})


def test_unsafe_shared_user_runs_the_agent_as_the_login_user(env: Env) -> None:
    options = {**static_options(env), "unsafe_shared_user": True}
    del options["agent_user"]
    provider = StaticProvider(options)
    sandbox = provider.acquire(SandboxSpec(run_id="ssh", trial_id="t"))
    try:
        assert sandbox.exec(["id", "-un"]).stdout.strip() == options["user"]
        assert sandbox.sh("setsid sleep 300 >/dev/null 2>&1 &").ok
        assert sandbox.agent_processes() == 1
        assert sandbox.kill_all() == 1 and sandbox.agent_processes() == 0
    finally:
        provider.release(sandbox)


def test_a_missing_agent_account_on_a_static_host_says_how_to_make_it(env: Env) -> None:
    provider = StaticProvider({**static_options(env), "agent_user": "ale-no-such-account"})
    with pytest.raises(InfrastructureError, match="useradd -m -U ale-no-such-account"):
        provider.acquire(SandboxSpec(run_id="ssh", trial_id="t"))


def test_a_vm_provider_refuses_the_ssh_user_as_agent(env: Env) -> None:
    pytest.importorskip("libvirt")
    from pytest_ale.providers.libvirt import LibvirtProvider
    from tests.conformance.cases import libvirt_options

    with pytest.raises(ConfigError, match="agent_user"):
        LibvirtProvider(libvirt_options(env, agent_user="root"))


@pytest.fixture
def sudo_login(env: Env) -> Iterator[str]:
    """A non-root login user with passwordless sudo (what a cloud image gives), removed after."""
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed (bash .ci/vm.sh)")
    name = f"ale-l{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-m", "-U", "-s", "/bin/sh", "-p", "*", name], check=True)
    rule = Path(f"/etc/sudoers.d/{name}")
    rule.write_text(f"{name} ALL=(ALL) NOPASSWD:ALL\n")
    rule.chmod(0o440)
    try:
        yield name
    finally:
        rule.unlink()
        subprocess.run(["userdel", "-r", name], capture_output=True)


def test_a_non_root_login_user_does_the_root_side_through_sudo(env: Env, sudo_login: str, tmp_path) -> None:
    provider = StaticProvider(static_options(env, user=sudo_login))
    sandbox = provider.acquire(SandboxSpec(run_id="ssh", trial_id="t"))
    try:
        assert sandbox.exec(["id", "-un"]).stdout.strip() == env.agent_user
        assert sandbox.exec(["id", "-un"], user=sudo_login).stdout.strip() == sudo_login
        sandbox.write_text(sandbox.path("output", "a.txt"), "from the host")
        assert sandbox.sh("echo more >> output/a.txt && chmod 600 output/a.txt").ok
        assert sandbox.sh("setsid sleep 300 >/dev/null 2>&1 &").ok
        assert sandbox.agent_processes() == 1
        fence(sandbox)
        sandbox.prepare_grading()
        graded = sandbox.grader_exec(["sh", "-c", "id -u; cat " + sandbox.path("output", "a.txt")])
        assert graded.stdout.split("\n")[:2] == ["0", "from the hostmore"], graded.stderr
        sandbox.collect(sandbox.path("output"), tmp_path / "out")
        assert (tmp_path / "out" / "a.txt").read_text() == "from the hostmore\n"
    finally:
        provider.release(sandbox)
    assert not Path(sandbox.workdir).exists()
