"""The network policies on the local provider (bubblewrap): ``proxy`` lets ``pip install``
and ``uv pip install`` reach a package index served on loopback (pypiserver, a wheel built
here) through the host-side proxy, refuses and logs a host not allowed, refuses a model
API even when allowed; ``none`` has no egress; the policy rule and the card's key."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_ale.card import TaskCard
from pytest_ale.errors import ConfigError, GraderError
from pytest_ale.netproxy import Rules, host_matches
from pytest_ale.network import (
    NetworkRefused,
    NetworkSettings,
    TrialNetwork,
    default_allow,
    open_network,
    policy_of,
    resolve,
)
from pytest_ale.providers.local import LocalProvider
from pytest_ale.sandbox import Provider, SandboxSpec

from .conftest import results
from .fakes.wheels import make_wheel
from .test_docker_provider import IMAGE as DOCKER_IMAGE
from .test_docker_provider import docker_client_or_skip

#: loopback, but not the sandbox's own 127.0.0.1 (which NO_PROXY keeps off the proxy)
INDEX_HOST = "127.0.0.2"
OTHER_HOST = "127.0.0.3"
UV = Path(sys.executable).parent / "uv"


def build_wheel(folder: Path, name: str = "aleprobe", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel, written by hand (a zip with its dist-info)."""
    return make_wheel(folder, name, version, "ANSWER = 42\n")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pypiserver on 127.0.0.2, serving one wheel built here: its simple index URL."""
    pytest.importorskip("pypiserver")
    packages = tmp_path_factory.mktemp("packages")
    build_wheel(packages)
    port = _free_port(INDEX_HOST)
    server = subprocess.Popen(
        [sys.executable, "-m", "pypiserver", "run", "-i", INDEX_HOST, "-p", str(port), str(packages)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((INDEX_HOST, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("pypiserver did not start")
    yield f"http://{INDEX_HOST}:{port}/simple/"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(params=["local", "docker"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    """The local provider (bubblewrap, uv shown read-only) and docker (when it answers)."""
    made: Provider
    if request.param == "local":
        if shutil.which("bwrap") is None:
            pytest.skip("needs bubblewrap")
        made = LocalProvider({"root": str(tmp_path / "root"), "ro_binds": [str(UV.parent)]})
    else:
        from pytest_ale.providers.docker import DockerProvider

        docker_client_or_skip()
        made = DockerProvider({"image": DOCKER_IMAGE})
    yield made
    made.close()


def _network(policy: str, tmp_path: Path, allow: list[str]) -> TrialNetwork:
    capabilities = frozenset({"netproxy"})
    return open_network(policy, NetworkSettings(None, allow), capabilities)  # type: ignore[arg-type]


def _spec(net: TrialNetwork) -> SandboxSpec:
    spec = SandboxSpec(run_id="net", trial_id="t")
    net.apply(spec)
    return spec


def _log(net: TrialNetwork) -> list[dict]:
    assert net.proxy is not None
    return list(net.proxy.entries)


PIP = "python -m pip install --isolated --no-cache-dir --disable-pip-version-check --break-system-packages -q"
FETCH = "python -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=20).status)'"


def test_proxy_lets_pip_and_uv_install_from_an_allowed_index(index: str, provider, tmp_path: Path) -> None:
    net = _network("proxy", tmp_path, [INDEX_HOST])
    try:
        sandbox = provider.acquire(_spec(net))
        try:
            done = sandbox.exec(f"{PIP} --index-url {index} --target /tmp/pip aleprobe")
            assert done.ok, done.stdout + done.stderr
            check = sandbox.exec("PYTHONPATH=/tmp/pip python -c 'import aleprobe; print(aleprobe.ANSWER)'")
            assert check.stdout.strip() == "42", check.stderr
            if UV.exists() and isinstance(provider, LocalProvider):
                uv = f"{UV} pip install --no-config --no-cache --python /ale/bin/python --target /tmp/uv"
                done = sandbox.exec(f"{uv} --index-url {index} aleprobe")
                assert done.ok, done.stdout + done.stderr
                assert sandbox.exists("/tmp/uv/aleprobe/__init__.py")
            # the grader's commands live under the same policy
            graded = sandbox.grader_exec(f"{FETCH} {index}aleprobe/")
            assert graded.stdout.strip() == "200", graded.stderr
        finally:
            provider.release(sandbox)
    finally:
        net.close()
    entries = _log(net)
    assert entries and all(e["host"] == INDEX_HOST and e["allowed"] for e in entries)


def test_proxy_refuses_and_logs_a_host_not_allowed(index: str, provider, tmp_path: Path) -> None:
    net = _network("proxy", tmp_path, [INDEX_HOST])
    try:
        sandbox = provider.acquire(_spec(net))
        try:
            done = sandbox.exec(f"{FETCH} http://{OTHER_HOST}:9/")
            assert not done.ok and "403" in done.stderr, done.stderr
            tunnel = sandbox.exec(f"{FETCH} https://{OTHER_HOST}:9/")
            assert not tunnel.ok
            # and the same host straight, not through the proxy: no route at all
            connect = f"import socket; socket.create_connection(('{INDEX_HOST}', 1), 5)"
            direct = sandbox.exec(["python", "-c", connect])
            assert not direct.ok
        finally:
            provider.release(sandbox)
    finally:
        net.close()
    refused = [e for e in _log(net) if not e["allowed"]]
    asked = [(e["method"], e["host"], e["port"]) for e in refused]
    assert asked == [("GET", OTHER_HOST, 9), ("CONNECT", OTHER_HOST, 9)]
    assert all("--ale-proxy-allow" in e["reason"] for e in refused)


def test_none_has_no_egress(index: str, provider, tmp_path: Path) -> None:
    net = _network("none", tmp_path, [INDEX_HOST])
    assert net.proxy is None
    sandbox = provider.acquire(_spec(net))
    try:
        done = sandbox.exec(f"{PIP} --index-url {index} --target /tmp/pip --timeout 3 --retries 0 aleprobe")
        assert not done.ok
        assert not sandbox.exists("/tmp/pip/aleprobe")
        fetch = sandbox.exec(f"{FETCH} {index}")
        assert not fetch.ok
        assert "HTTP_PROXY" not in sandbox.exec("env").stdout
    finally:
        provider.release(sandbox)
    assert net.proxy is None  # nothing to log


def test_model_apis_are_refused_even_when_allowed() -> None:
    rules = Rules(["*"], {("api.example.test", 443)})
    assert rules.decide("api.example.test", 443) == (False, "a model API: only the model gateway reaches it")
    assert rules.decide("api.example.test", 8443)[0]
    assert rules.decide("files.example.test", 443)[0]
    assert not Rules(["pkgs.example.test"]).decide("evil.example.test", 443)[0]


def test_host_patterns() -> None:
    assert host_matches("files.example.org", ".example.org")
    assert host_matches("example.org", "*.example.org")
    assert not host_matches("badexample.org", ".example.org")
    assert host_matches("PyPI.example.", "pypi.example")
    assert not host_matches("pypi.example.evil", "pypi.example")


def test_the_run_decides_and_the_card_asks() -> None:
    assert resolve("open", None) == "open"
    assert resolve("open", "none") == "none"
    assert resolve("none", "proxy") == "proxy"
    assert policy_of(True) == "open" and policy_of(False) == "none" and policy_of(" Proxy ") == "proxy"
    with pytest.raises(ConfigError, match="none, proxy, open"):
        NetworkSettings.parse("sometimes", [])
    settings = NetworkSettings.parse("proxy", ["a.example, b.example", "c.example"])
    assert settings.allowed() == ["a.example", "b.example", "c.example"]
    assert TaskCard.model_validate({"network": True}).network == "open"
    assert TaskCard.model_validate({}).network == "none"
    assert TaskCard.model_validate({"network": "proxy"}).network == "proxy"


def test_default_allow_follows_the_pip_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_ale import network

    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example.test/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    network._default_allow.cache_clear()
    try:
        assert "mirror.example.test" in default_allow()
    finally:
        network._default_allow.cache_clear()


def test_a_grader_failing_after_a_refusal_is_infrastructure(index: str, provider, tmp_path: Path) -> None:
    net = _network("proxy", tmp_path, [INDEX_HOST])
    warnings: list[str] = []
    try:
        sandbox = provider.acquire(_spec(net))
        try:
            with pytest.raises(NetworkRefused, match=OTHER_HOST) as caught, net.grading(warnings):
                done = sandbox.grader_exec(f"{FETCH} http://{OTHER_HOST}:9/")
                raise GraderError(f"the grader could not fetch its dependency: {done.stderr[-200:]}")
        finally:
            provider.release(sandbox)
    finally:
        net.close()
    assert caught.value.kind == "infrastructure"
    assert warnings and OTHER_HOST in warnings[0]
    assert [e["phase"] for e in _log(net)] == ["grade"]


def test_proxy_needs_a_provider_that_routes_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot route"):
        open_network("proxy", NetworkSettings(), frozenset({"linux"}))


SOLVE = f"{PIP} --index-url {{index}} --target /tmp/pkgs aleprobe && " + (
    "PYTHONPATH=/tmp/pkgs python -c 'import aleprobe; print(aleprobe.ANSWER)' > output/answer.txt\n"
)
GRADER = f"""
import shlex
from pathlib import Path

INSTRUCTION = "Install aleprobe from the index and write its ANSWER to output/answer.txt."
FETCH = {FETCH!r}


def evaluate(output_dir: Path, reference_dir: Path, sandbox) -> tuple[float, str]:
    done = sandbox.grader_exec(FETCH + " " + shlex.quote({{url!r}}))
    if not done.ok:
        raise RuntimeError("the grader could not fetch what it needs: " + done.stderr[-300:])
    answer = output_dir / "answer.txt"
    return (1.0, "42") if answer.is_file() and answer.read_text().strip() == "42" else (0.0, "no answer")
"""


def _network_task(make_task, name: str, index: str, grader_url: str, card: dict | None = None) -> None:
    card = {"domain": "demo", "tier": "near-term", "timeout": 120, **(card or {})}
    make_task(name, main=GRADER.format(url=grader_url), solution=SOLVE.format(index=index), card=card)


def test_a_proxy_run_installs_for_the_agent_and_the_grader(
    pytester: pytest.Pytester, make_task, index: str
) -> None:
    """End to end: the run's --ale-network proxy for agent and grader alike; the card's
    ask when the run says nothing; a grader refused its host is an infrastructure error."""
    _network_task(make_task, "installs", index, index + "aleprobe/")
    _network_task(make_task, "refused", index, f"http://{OTHER_HOST}:9/")
    _network_task(make_task, "carded", index, index, card={"network": "proxy"})
    allow = f"--ale-proxy-allow={INDEX_HOST}"
    run = pytester.runpytest("tasks", "--ale-network=proxy", allow, "-k", "installs or refused")
    run.assert_outcomes(passed=1, errors=1)
    rows = {r["task"].rpartition("/")[2]: r for r in results(pytester)}
    assert rows["installs"]["status"] == "passed", rows["installs"]
    log = [
        json.loads(x)
        for x in (Path(rows["installs"]["artifacts"]) / "network.jsonl").read_text().splitlines()
    ]
    assert {e["phase"] for e in log} == {"agent", "grade"} and all(e["allowed"] for e in log)
    assert rows["installs"]["extra_properties"] == {"ale_network": "proxy", "ale_network_refused": 0}
    refused = rows["refused"]
    assert (refused["status"], refused["error_kind"], refused["attempts"]) == ("error", "infrastructure", 1)
    assert OTHER_HOST in refused["error"] and "--ale-proxy-allow" in refused["error"]
    assert refused["extra_properties"]["ale_network_refused"] == 1
    # no run policy: the card's ask; the run's none wins over it
    pytester.runpytest("tasks", allow, "-k", "carded").assert_outcomes(passed=1)
    # (under none the agent cannot install and the grader cannot fetch: its error, not a 0)
    pytester.runpytest("tasks", allow, "-k", "carded", "--ale-network=none").assert_outcomes(errors=1)
