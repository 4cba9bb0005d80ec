"""The docker provider against a real Docker engine: isolation, limits, timeouts, fencing,
tar streams, faults, release and sweep.

Needs a running engine and the sandbox image (``bash .ci/docker.sh`` sets up both). With
``ALE_REQUIRE_DOCKER=1`` (CI) a missing engine or image fails these tests instead of
skipping them.
"""

from __future__ import annotations

import io
import os
import re
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_ale.errors import InfrastructureError, StagingError
from pytest_ale.providers.docker import sandbox as docker_sandbox
from pytest_ale.providers.docker.client import (
    BUILD_COMMAND,
    EXPIRY_LABEL,
    PROVIDER_LABEL,
    RUN_LABEL,
    ContainerDiedError,
    DockerImageMissingError,
    DockerUnavailableError,
    connect,
)
from pytest_ale.sandbox import SandboxSpec
from pytest_ale.staging import stream_folders, tar_folders

IMAGE = os.environ.get("ALE_DOCKER_IMAGE", "pytest-ale/sandbox:latest")


def docker_client_or_skip():
    """A Docker client with the sandbox image present; else skip (fail under CI)."""
    pytest.importorskip("docker")
    reason = None
    client = None
    try:
        client = connect(timeout=30)
        client.api.inspect_image(IMAGE)
    except DockerUnavailableError as exc:
        reason = f"no Docker engine answers: {exc}"
    except Exception as exc:
        reason = f"sandbox image {IMAGE} missing ({exc}); build it: {BUILD_COMMAND}"
    if reason:
        if os.environ.get("ALE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"ALE_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    return client


def containers_of(client, run_id: str) -> list[dict]:
    return client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})


@pytest.fixture(scope="module")
def client():
    return docker_client_or_skip()


@pytest.fixture(scope="module")
def provider(client) -> Iterator:
    from pytest_ale.providers.docker import DockerProvider

    made = DockerProvider({"image": IMAGE})
    yield made
    made.close()


@pytest.fixture
def run_id() -> str:
    return f"dockertest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_sandbox(provider, run_id):
    made = []

    def make(prov=None, **spec_fields):
        spec_fields.setdefault("workdir", "/workspace")
        spec = SandboxSpec(run_id=run_id, trial_id=f"tests::{len(made)}", **spec_fields)
        sandbox = (prov or provider).acquire(spec)
        made.append((prov or provider, sandbox))
        return sandbox

    yield make
    for prov, sandbox in made:
        prov.release(sandbox)


@pytest.fixture
def sandbox(make_sandbox):
    return make_sandbox()


def ps(sandbox) -> str:
    return sandbox.exec(["ps", "-eo", "user,args"], user="root").stdout


# -- the workspace and the agent user --------------------------------------------------
def test_agent_is_non_root_and_owns_a_deep_workdir(make_sandbox, tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "data.txt").write_text("hello\n")
    sb = make_sandbox(workdir="/home/agent/ale/tasks/finance/t1")
    sb.put_archive(sb.workdir, tar_folders({"input": tmp_path / "input"}))
    sb.mkdir(sb.path("output"))
    result = sb.exec("id -un; pwd; touch notes.txt input/more.txt output/x && stat -c %U . input output")
    assert result.ok, result.stderr
    assert result.stdout.split() == ["agent", "/home/agent/ale/tasks/finance/t1", "agent", "agent", "agent"]
    assert sb.read_text(sb.path("input/data.txt")) == "hello\n"
    assert sb.exec("python --version && node --version && npm --version && git --version").ok


def test_stdin_env_and_cwd(sandbox) -> None:
    result = sandbox.exec(
        ["sh", "-c", 'cat; echo " $GREETING $(pwd)"'], stdin=b"in", env={"GREETING": "hi"}, cwd="/tmp"
    )
    assert result.stdout == "in hi /tmp\n"
    assert sandbox.exec("exit 7").exit_code == 7
    missing = sandbox.exec(["no-such-program"])
    assert (missing.exit_code, missing.stdout) == (127, "") and "no-such-program" in missing.stderr


# -- timeouts and the fence ------------------------------------------------------------
def test_timeout_kills_the_whole_process_tree(sandbox) -> None:
    started = time.monotonic()
    result = sandbox.exec(
        "sleep 301 & setsid sleep 302 & nohup sh -c 'sleep 303' >/dev/null 2>&1 & sleep 304", timeout=1
    )
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < 20  # the 1 s timeout, not the 300 s sleeps
    assert not [line for line in ps(sandbox).splitlines() if "sleep 30" in line]


def test_fence_kills_what_the_agent_left_running_and_nothing_else(sandbox) -> None:
    result = sandbox.exec(
        "nohup sleep 600 >/dev/null 2>&1 & setsid sh -c 'while :; do sleep 1; done' >/dev/null 2>&1 & echo ok"
    )
    assert result.stdout == "ok\n"
    assert "sleep 600" in ps(sandbox)
    killed = sandbox.kill_all()
    assert killed >= 3  # sleep 600, the loop's sh, its sleep
    left = [line for line in ps(sandbox).splitlines()[1:] if "ps -eo" not in line]
    assert len(left) == 2, left  # docker-init and the keep-alive
    assert sandbox.kill_all() == 0
    assert sandbox.exec("echo still usable").ok


def test_an_agent_killing_everything_it_can_does_not_kill_the_sandbox(sandbox) -> None:
    sandbox.exec("kill -9 -1")
    assert sandbox.exec("echo alive").stdout == "alive\n"


def test_memory_blowup_is_flagged_oom_and_the_sandbox_survives(make_sandbox) -> None:
    sb = make_sandbox(memory_gb=0.125)
    result = sb.exec(["python", "-c", "x = bytearray(600 * 1024 * 1024)"])
    assert result.oom_killed and result.exit_code == 137
    assert not sb.exec("exit 1").oom_killed
    assert sb.exec("echo alive").ok


# -- isolation -------------------------------------------------------------------------
def test_no_network_unless_allowed(make_sandbox) -> None:
    closed = make_sandbox()
    assert closed.exec("ls /sys/class/net").stdout.split() == ["lo"]
    opened = make_sandbox(network=True)
    assert "eth0" in opened.exec("ls /sys/class/net").stdout.split()


def test_host_paths_are_not_visible(sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "reference" / "answer.txt"
    secret.parent.mkdir()
    secret.write_text("the hidden answer\n")
    assert sandbox.exec(["test", "-e", str(secret)]).exit_code == 1
    assert sandbox.exec(["test", "-e", str(Path(__file__).resolve())]).exit_code == 1
    mounts = sandbox.exec("cat /proc/self/mountinfo").stdout
    assert str(tmp_path) not in mounts and "/work/" not in mounts


def test_unix_socket_is_the_one_door(make_sandbox, tmp_path: Path) -> None:
    path = tmp_path / "gateway.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o755)  # as a 022 umask leaves it: the provider opens it for the agent
    server.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        got.append(conn.recv(100))
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    sb = make_sandbox(sockets={"/run/ale/gateway.sock": str(path)})
    code = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/ale/gateway.sock'); s.send(b'hi')"
    )
    assert sb.exec(["python", "-c", code]).ok
    thread.join(10)
    server.close()
    assert got == [b"hi"]


# -- tar streams -----------------------------------------------------------------------
@pytest.mark.parametrize("engine_attempts", [3, 0], ids=["engine", "tar-in-container"])
def test_get_archive_gives_folder_contents_and_single_files(sandbox, monkeypatch, engine_attempts) -> None:
    """The same shapes whether the engine makes the archive or, after torn engine streams
    (a file changed size while it was read), the container's own tar does."""
    monkeypatch.setattr(docker_sandbox, "ENGINE_ARCHIVE_ATTEMPTS", engine_attempts)
    sandbox.mkdir(sandbox.path("output"))
    sandbox.exec(
        "mkdir output/sub && echo a > output/a.txt && echo b > output/sub/b.txt && ln -s a.txt output/l"
    )
    with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive(sandbox.path("output")))) as tar:
        assert sorted(tar.getnames()) == ["a.txt", "l", "sub", "sub/b.txt"]
    with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive(sandbox.path("output/a.txt")))) as tar:
        assert tar.getnames() == ["a.txt"]
    assert sandbox.read_bytes(sandbox.path("output/sub/b.txt")) == b"b\n"
    with pytest.raises(FileNotFoundError):
        sandbox.get_archive("/nowhere")
    with pytest.raises(FileNotFoundError):
        sandbox.read_bytes(sandbox.path("output/missing"))


def test_mkdir_is_there_for_whatever_comes_next(sandbox) -> None:
    sandbox.mkdir(sandbox.path("output"))
    assert sandbox.get_archive(sandbox.path("output")).strip(b"\0") == b""  # empty, but there
    sandbox.mkdir(sandbox.path("a/b"))
    assert sandbox.exec("pwd; stat -c %U .", cwd=sandbox.path("a/b")).stdout.split() == [
        "/workspace/a/b",
        "agent",
    ]
    sandbox.mkdir("/tmp/x/y")
    sandbox.mkdir("/opt/rootly")
    assert sandbox.exec("stat -c %U /tmp/x/y /opt/rootly", user="root").stdout.split() == ["agent", "root"]


def test_put_archive_refuses_members_escaping_the_folder(sandbox) -> None:
    for name, kind, link in (("../../etc/evil", tarfile.REGTYPE, ""), ("ln", tarfile.SYMTYPE, "/etc/passwd")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            tar.addfile(info, io.BytesIO(b""))
        with pytest.raises(StagingError, match="refused"):
            sandbox.put_archive(sandbox.workdir, buf.getvalue())
    assert sandbox.exec("test -e /etc/evil || test -e ln").exit_code == 1


def test_put_archive_streams_and_creates_missing_folders(sandbox, tmp_path: Path) -> None:
    (tmp_path / "big").mkdir()
    for i in range(50):
        (tmp_path / "big" / f"f{i}.bin").write_bytes(os.urandom(20_000))
    sandbox.put_archive("/workspace/deep/er", stream_folders({"data": tmp_path / "big"}, uid=1000, gid=1000))
    listing = sandbox.exec(
        "ls deep/er/data | wc -l; stat -c %U deep/er/data/f7.bin; cksum < deep/er/data/f3.bin"
    )
    assert listing.stdout.split()[:2] == ["50", "agent"]
    assert sandbox.read_bytes("/workspace/deep/er/data/f3.bin") == (tmp_path / "big" / "f3.bin").read_bytes()


def test_big_in_memory_archives_are_re_owned_while_streamed(sandbox, tmp_path: Path) -> None:
    from pytest_ale.providers.docker.archive import STREAM_ABOVE

    (tmp_path / "in").mkdir()
    blob = os.urandom(1024**2)
    for i in range(STREAM_ABOVE // len(blob) + 4):
        (tmp_path / "in" / f"{i}.bin").write_bytes(blob)
    data = tar_folders({"input": tmp_path / "in"})
    assert len(data) > STREAM_ABOVE
    sandbox.put_archive("/workspace/new/place", data)
    owners = sandbox.exec("stat -c %U new/place/input new/place/input/3.bin; ls new/place/input | wc -l")
    assert owners.stdout.split() == ["agent", "agent", str(STREAM_ABOVE // len(blob) + 4)]
    assert sandbox.read_bytes("/workspace/new/place/input/5.bin") == blob


def test_output_over_the_cap_is_refused(make_sandbox, client) -> None:
    from pytest_ale.providers.docker import DockerProvider

    small = DockerProvider({"image": IMAGE, "max_output_mb": 1})
    sb = make_sandbox(small)
    sb.exec("mkdir -p output && head -c 80000000 /dev/zero > output/big")
    with pytest.raises(StagingError, match="cap"):
        sb.get_archive(sb.path("output"))
    small.release(sb)
    small.close()


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "in-memory"])
def test_stage_puts_folders_owned_by_the_agent_and_capped(
    make_sandbox, tmp_path: Path, monkeypatch, streamed: bool
) -> None:
    from pytest_ale.providers.docker import DockerProvider
    from pytest_ale.providers.docker import sandbox as docker_sandbox

    if streamed:  # what inputs over 32 MiB take
        monkeypatch.setattr(docker_sandbox, "STREAM_FROM_BYTES", 0)

    data = tmp_path / "input"
    (data / "deep" / "er").mkdir(parents=True)
    (data / "deep" / "er" / "a.csv").write_text("x,y\n1,2\n")
    (data / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (data / "run.sh").chmod(0o755)
    sb = make_sandbox(workdir="/work/space")
    sb.stage(sb.workdir, {"input": data, "software": tmp_path / "absent"})
    listing = sb.exec("find input -printf '%p %u %m\\n' | sort && ./input/run.sh").stdout
    assert listing.splitlines() == [
        "input agent 755",
        "input/deep agent 755",
        "input/deep/er agent 755",
        "input/deep/er/a.csv agent 644",
        "input/run.sh agent 755",
        "ran",
    ]
    assert sb.exec("touch input/deep/new && echo ok").stdout.strip() == "ok"  # the agent's to change

    small = DockerProvider({"image": IMAGE, "max_input_mb": 1})
    capped = make_sandbox(small)
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "blob").write_bytes(b"\0" * (2 * 1024**2))
    with pytest.raises(StagingError, match=r"exceeds? the 1 MiB cap"):
        capped.stage(capped.workdir, {"input": tmp_path / "big"})
    small.release(capped)
    small.close()


# -- limits, labels, release -----------------------------------------------------------
def test_limits_labels_init_and_release(make_sandbox, client, provider, run_id) -> None:
    sb = make_sandbox(cpus=1.5, memory_gb=0.5)
    info = client.api.inspect_container(sb.id)
    host = info["HostConfig"]
    assert host["NanoCpus"] == 1_500_000_000 and host["Memory"] == 512 * 1024**2
    assert host["Init"] is True and host["NetworkMode"] == "none" and host["PidsLimit"] == 4096
    labels = info["Config"]["Labels"]
    assert labels[RUN_LABEL] == run_id and labels[PROVIDER_LABEL] == "docker"
    assert 0 < float(labels[EXPIRY_LABEL]) - time.time() <= 6 * 3600
    provider.release(sb)
    provider.guard.release_all()
    assert containers_of(client, run_id) == []


def test_keep_keeps_the_container_and_says_how_to_enter(client, run_id) -> None:
    from pytest_ale.providers.docker import DockerProvider

    keeper = DockerProvider({"image": IMAGE, "keep": True})
    sb = keeper.acquire(SandboxSpec(run_id=run_id, trial_id="kept"))
    keeper.release(sb)
    keeper.close()
    assert f"docker exec -it {sb.id[:12]} bash" in sb.describe()
    assert [c["Id"] for c in containers_of(client, run_id)] == [sb.id]
    assert DockerProvider({"image": IMAGE}).sweep(run_id)
    assert containers_of(client, run_id) == []


# -- faults are infrastructure errors --------------------------------------------------
def test_missing_image_names_the_build_command(client, run_id) -> None:
    from pytest_ale.providers.docker import DockerProvider

    with pytest.raises(DockerImageMissingError, match=re.escape(BUILD_COMMAND)):
        DockerProvider({"image": "pytest-ale/no-such-image:0"}).acquire(
            SandboxSpec(run_id=run_id, trial_id="x")
        )


def test_unreachable_daemon_says_how_to_start_it(run_id) -> None:
    pytest.importorskip("docker")
    from pytest_ale.providers.docker import DockerProvider

    broken = DockerProvider({"base_url": "unix:///nonexistent/docker.sock"})
    with pytest.raises(DockerUnavailableError, match="dockerd") as caught:
        broken.acquire(SandboxSpec(run_id=run_id, trial_id="x"))
    assert isinstance(caught.value, InfrastructureError)


def test_a_container_that_died_is_an_infrastructure_error(sandbox) -> None:
    sandbox.exec("kill -9 $(cat /proc/1/task/1/children)", user="root")
    time.sleep(0.5)
    with pytest.raises(ContainerDiedError, match="stopped"):
        sandbox.exec("true")
    assert sandbox.kill_all() == 0


def test_image_build_is_cached(client) -> None:
    from pytest_ale.providers.docker import image as docker_image

    lines: list[str] = []
    started = time.monotonic()
    tag = docker_image.build(log=lines.append, client=client)
    assert time.monotonic() - started < 30
    assert any("up to date" in line for line in lines), lines
    assert client.api.inspect_image(tag)["Id"] == client.api.inspect_image(docker_image.DEFAULT_IMAGE)["Id"]
