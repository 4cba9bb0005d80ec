"""Scores you can trust (issue 10), asked of every provider in ``CASES``: the agent is
unprivileged, the fence cannot be outrun or escaped, grading runs where nothing the agent
made can reach it, and collection keeps long names and stops at its caps.

The agent is whoever ``exec`` runs as by default; the grader is ``grader_exec``.
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from pytest_ale.errors import OutputOverCap
from pytest_ale.fence import fence
from pytest_ale.sandbox import GRADER_ENV, Provider, Sandbox

from .cases import Case
from .conftest import spec_for
from .env import Env
from .test_conformance import alive

# A process that forks and exits in a loop: its pid changes all the time, so a fence that
# kills pid by pid always shoots at one that is gone. It beats a file while it lives.
FORK_LOOP = """
import os, sys, time
while True:
    if os.fork():
        os._exit(0)
    with open(sys.argv[1] + ".new", "w") as beat:
        beat.write(repr(time.time()))
    os.replace(sys.argv[1] + ".new", sys.argv[1])  # a reader never sees it empty
    time.sleep(0.002)
"""


def beats(sandbox: Sandbox, path: str, after: str = "", within_s: float = 20.0) -> str:
    """The heartbeat file's content once it holds a beat other than ``after`` ("" when the
    loop gave none in time: a busy machine may take seconds to start a Python)."""
    stop = time.monotonic() + within_s
    while time.monotonic() < stop:
        seen = sandbox.read_text(path) if sandbox.exists(path) else ""
        if seen and seen != after:
            return seen
        time.sleep(0.1)
    return ""


def test_the_agent_is_unprivileged(sandbox: Sandbox) -> None:
    done = sandbox.exec(["sh", "-c", "id -u; grep '^CapEff:' /proc/self/status"])
    assert done.ok, done.stderr
    uid, caps = done.stdout.split("\n", 1)
    assert int(uid) != 0, "the agent runs as root"
    assert int(caps.split()[1], 16) == 0, f"the agent holds capabilities: {caps.strip()}"


def test_the_fence_cannot_be_outrun_or_escaped(sandbox: Sandbox, case: Case) -> None:
    beat, pidfile = sandbox.path("beat"), sandbox.path("sleeper.pid")
    sandbox.write_text(sandbox.path("forkloop.py"), FORK_LOOP)
    loop = f"setsid python3 {sandbox.path('forkloop.py')} {beat} >/dev/null 2>&1 &"
    sleeper = f"setsid env -i /bin/sh -c 'sleep 301 >/dev/null 2>&1 & echo $! > {pidfile}' >/dev/null 2>&1 &"
    assert sandbox.sh(f"{loop} {sleeper} sleep 0.5").ok
    if case.background_survives_exec:
        assert sandbox.agent_processes() >= 1  # the sleeper; a scan of /proc may miss the loop
        first = beats(sandbox, beat)
        assert first and beats(sandbox, beat, after=first), "the fork loop should still be running"
    fence(sandbox, deadline_s=30)
    assert sandbox.agent_processes() == 0
    last = sandbox.read_text(beat) if sandbox.exists(beat) else ""
    time.sleep(0.5)
    assert (sandbox.read_text(beat) if sandbox.exists(beat) else "") == last, "the fork loop survived"
    if sandbox.exists(pidfile):
        assert not alive(sandbox, sandbox.read_text(pidfile).strip()), "the env -i sleeper survived"
    assert sandbox.exec(["echo", "usable"]).stdout == "usable\n"


def test_grader_exec_is_another_user_with_a_clean_path_in_a_fresh_folder(
    sandbox: Sandbox, provider: Provider
) -> None:
    agent = sandbox.exec(["sh", "-c", "id -u; ls -A /tmp"])
    agent_uid, *agent_saw = agent.stdout.split()
    fence(sandbox)
    sandbox.prepare_grading()
    done = sandbox.grader_exec(
        ["sh", "-c", 'id -u; pwd; printf "%s\\n" "$PATH"; stat -c %u .; ls -A | wc -l']
    )
    assert done.ok, done.stderr
    uid, cwd, path, owner, entries = done.stdout.split("\n")[:5]
    assert uid != agent_uid, "the grader runs as the agent"
    system = GRADER_ENV["PATH"].split(":")
    assert path.split(":")[: len(system)] == system, path
    for extra in path.split(":")[len(system) :]:  # local adds its read-only /ale/bin (python)
        assert not sandbox.exec(["test", "-w", extra]).ok, (
            f"the agent can write {extra}, on the grader's PATH"
        )
    assert owner == uid and int(entries) == 0
    assert not cwd.startswith(sandbox.workdir.rstrip("/") + "/") and cwd != sandbox.workdir
    assert cwd.rstrip("/").rpartition("/")[2] not in agent_saw, "the agent saw the grader's folder"
    # release removes it: a static machine's /tmp (here this host's, over the loopback sshd)
    # outlives the sandbox, and so does the host's /tmp for the local sandbox without bubblewrap
    provider.release(sandbox)
    assert not Path(cwd).exists(), f"the grader's scratch folder {cwd} is left behind"


def test_a_folder_the_agent_planted_in_tmp_cannot_feed_the_grader_code(sandbox: Sandbox) -> None:
    task = f"/tmp/ale-conf-{uuid.uuid4().hex[:8]}/task"
    plant = f"mkdir -p {task} && echo 'print(\"PLANTED\")' > {task}/json.py && chmod -R 777 {task}"
    assert sandbox.sh(plant).ok
    fence(sandbox)
    sandbox.prepare_grading()
    probe = f"mkdir -p {task} && cd {task} && python3 -c 'import json; print(json.__file__)'"
    try:
        done = sandbox.grader_exec(["sh", "-c", probe])
        assert done.ok, done.stderr
        assert "PLANTED" not in done.stdout and not done.stdout.strip().startswith(task), done.stdout
    finally:
        sandbox.grader_exec(["rm", "-rf", task.rpartition("/")[0]])


LONG_NAME = "n" * 196 + ".txt"  # 200 characters: past tar's 100-character name field
LONG_PATH = "/".join(["d" * 120, "e" * 120, "f" * 76 + ".txt"])  # 318 characters: past 255


def _write_long_names(sandbox: Sandbox) -> None:
    out = sandbox.path("output")
    script = f'mkdir -p "{out}/{LONG_PATH.rpartition("/")[0]}" && cd "{out}" && '
    script += f'printf short > "{LONG_NAME}" && printf deep > "{LONG_PATH}"'
    assert sandbox.sh(script).ok


def test_long_names_survive_get_archive_and_collect(sandbox: Sandbox, tmp_path: Path) -> None:
    _write_long_names(sandbox)
    with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive(sandbox.path("output")))) as tar:
        files = {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert files == {LONG_NAME: b"short", LONG_PATH: b"deep"}
    sandbox.collect(sandbox.path("output"), tmp_path / "out")
    assert (tmp_path / "out" / LONG_NAME).read_text() == "short"
    assert (tmp_path / "out" / LONG_PATH).read_text() == "deep"


@pytest.mark.parametrize(
    ("option", "value", "script"),
    [
        ("max_output_files", 10, "for i in $(seq 40); do : > f$i; done"),
        ("max_output_mb", 1, "head -c 3000000 /dev/zero > big"),
    ],
)
def test_collect_stops_at_its_caps_and_names_them(
    case: Case, env: Env, tmp_path: Path, option: str, value: int, script: str
) -> None:
    provider: Provider = case.make(env, **{option: value})
    try:
        sandbox = provider.acquire(spec_for(case))
        try:
            assert sandbox.sh(f"mkdir -p output && cd output && {script}").ok
            with pytest.raises(OutputOverCap, match=option):
                sandbox.collect(sandbox.path("output"), tmp_path / "out")
        finally:
            provider.release(sandbox)
    finally:
        provider.close()
