"""Docker sandboxes the agent cannot make lie (issue 10), against a real engine: no
capability and no use for setuid, no root agent unless explicitly unsafe, and ``output/``
collected to disk with long names intact and within its caps (from the engine's archive
and from tar in the container). The fence and grading checks every provider shares are in
the shipped conformance suite (``pytest_ale.testing.checks.trust``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pytest_ale.sandbox import SandboxSpec

from .test_docker_provider import IMAGE, docker_client_or_skip


@pytest.fixture(scope="module")
def client():
    return docker_client_or_skip()


@pytest.fixture
def make_sandbox(client):
    from pytest_ale.providers.docker import DockerProvider

    made, run_id = [], f"dockertrust-{uuid.uuid4().hex[:10]}"
    default = DockerProvider({"image": IMAGE})

    def make(prov=None):
        prov = prov or default
        sandbox = prov.acquire(SandboxSpec(run_id=run_id, trial_id=f"tests::{len(made)}"))
        made.append((prov, sandbox))
        return sandbox

    yield make
    for prov, sandbox in made:
        prov.release(sandbox)
    default.close()


@pytest.fixture
def sandbox(make_sandbox):
    return make_sandbox()


def test_the_agent_has_no_capabilities_and_setuid_gives_it_nothing(sandbox, client) -> None:
    host = client.api.inspect_container(sandbox.id)["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and set(host["CapAdd"]) == {"CHOWN", "DAC_OVERRIDE", "FOWNER"}
    assert "no-new-privileges" in host["SecurityOpt"]
    status = sandbox.exec("grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/self/status").stdout.split()
    assert status == ["CapPrm:", "0" * 16, "CapEff:", "0" * 16, "NoNewPrivs:", "1"]
    assert sandbox.exec("cp /usr/bin/id /opt/suid-id && chmod 4755 /opt/suid-id", user="root").ok
    assert sandbox.exec("/opt/suid-id -u").stdout == "1000\n"  # the setuid bit is inert


def test_a_root_agent_is_refused_unless_explicitly_unsafe(make_sandbox) -> None:
    from pytest_ale.errors import ConfigError
    from pytest_ale.providers.docker import DockerProvider

    for unsafe in ({"user": "root"}, {"uid": 0}):
        with pytest.raises(ConfigError, match="unsafe_root_agent"):
            DockerProvider({"image": IMAGE, **unsafe})
    rooted = DockerProvider({"image": IMAGE, "user": "root", "uid": 0, "gid": 0, "unsafe_root_agent": "true"})
    try:
        sb = make_sandbox(rooted)
        assert sb.exec("id -u").stdout == "0\n"
        assert sb.exec("setsid sleep 300 >/dev/null 2>&1 & echo ok").ok
        assert sb.agent_processes() == 1 and sb.kill_all() == 1 and sb.agent_processes() == 0
        assert sb.exec("echo still usable").ok
    finally:
        rooted.close()


@pytest.mark.parametrize("engine_attempts", [3, 0], ids=["engine", "tar-in-container"])
def test_collect_streams_long_names_to_disk_within_the_caps(
    make_sandbox, monkeypatch, tmp_path: Path, engine_attempts
) -> None:
    from pytest_ale.errors import OutputOverCap
    from pytest_ale.providers.docker import DockerProvider
    from pytest_ale.providers.docker import collect as docker_collect

    monkeypatch.setattr(docker_collect, "ENGINE_ATTEMPTS", engine_attempts)
    small = DockerProvider({"image": IMAGE, "max_output_files": 6, "max_output_mb": 1})
    try:
        sb = make_sandbox(small)
        deep = "/".join(["d" * 120, "e" * 120, "f" * 90])
        sb.exec(f"mkdir -p output/{deep.rpartition('/')[0]}")
        sb.exec(f"cd output && echo a > {'n' * 200} && echo b > {deep}")
        report = sb.collect(sb.path("output"), tmp_path / "out")
        assert report.files == 2 and report.refused == []
        assert (tmp_path / "out" / ("n" * 200)).read_text() == "a\n"
        assert (tmp_path / "out" / deep).read_text() == "b\n"
        sb.exec("cd output && touch 1 2 3")
        with pytest.raises(OutputOverCap, match="max_output_files=6"):
            sb.collect(sb.path("output"), tmp_path / "again")
        sb.exec("cd output && rm 1 2 3 && head -c 2000000 /dev/zero > big")
        with pytest.raises(OutputOverCap, match="max_output_mb=1"):
            sb.collect(sb.path("output"), tmp_path / "third")
    finally:
        small.close()
