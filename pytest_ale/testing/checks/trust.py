"""Conformance: scores you can trust. The agent is unprivileged, the fence cannot be
outrun or escaped, grading runs where nothing the agent made can reach it.

The agent is whoever ``exec`` runs as by default; the grader is ``grader_exec``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from ...fence import fence
from ...sandbox import GRADER_ENV, Provider, Sandbox
from ..probes import FORK_LOOP, alive, beats


def test_the_agent_is_unprivileged(ale_conformance_sandbox: Sandbox) -> None:
    done = ale_conformance_sandbox.exec(["sh", "-c", "id -u; grep '^CapEff:' /proc/self/status"])
    assert done.ok, done.stderr
    uid, caps = done.stdout.split("\n", 1)
    assert int(uid) != 0, "the agent runs as root"
    assert int(caps.split()[1], 16) == 0, f"the agent holds capabilities: {caps.strip()}"


def test_fencing_kills_escaped_background_processes(
    ale_conformance_sandbox: Sandbox, ale_conformance_provider: Provider
) -> None:
    sandbox = ale_conformance_sandbox
    beat = sandbox.path("heartbeat")
    # each beat replaces the file whole, so a reader never sees it empty mid-write
    loop = f"while :; do date +%s%N > {beat}.new; mv {beat}.new {beat}; sleep 0.05; done"
    started = sandbox.sh(f"setsid sh -c '{loop}' >/dev/null 2>&1 & sleep 0.3")
    assert started.ok
    if ale_conformance_provider.background_survives_exec:
        first = beats(sandbox, beat)
        assert first, "the background loop never beat"
        assert beats(sandbox, beat, after=first), "the background loop should still be running"
        assert sandbox.kill_all() >= 1
    else:
        sandbox.kill_all()
    last = sandbox.read_text(beat)
    time.sleep(0.5)
    assert sandbox.read_text(beat) == last, "a background process survived the fence"
    assert sandbox.exec(["echo", "still usable"]).stdout == "still usable\n"


def test_the_fence_cannot_be_outrun_or_escaped(
    ale_conformance_sandbox: Sandbox, ale_conformance_provider: Provider
) -> None:
    sandbox = ale_conformance_sandbox
    beat, pidfile = sandbox.path("beat"), sandbox.path("sleeper.pid")
    sandbox.write_text(sandbox.path("forkloop.py"), FORK_LOOP)
    loop = f"setsid python3 {sandbox.path('forkloop.py')} {beat} >/dev/null 2>&1 &"
    sleeper = f"setsid env -i /bin/sh -c 'sleep 301 >/dev/null 2>&1 & echo $! > {pidfile}' >/dev/null 2>&1 &"
    assert sandbox.sh(f"{loop} {sleeper} sleep 0.5").ok
    if ale_conformance_provider.background_survives_exec:
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
    ale_conformance_sandbox: Sandbox, ale_conformance_provider: Provider
) -> None:
    sandbox = ale_conformance_sandbox
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
    # release removes it: a machine's /tmp may outlive the sandbox (a static host's, here
    # this host's over a loopback sshd; the host's own, for local without bubblewrap)
    ale_conformance_provider.release(sandbox)
    assert not Path(cwd).exists(), f"the grader's scratch folder {cwd} is left behind"


def test_a_folder_the_agent_planted_in_tmp_cannot_feed_the_grader_code(
    ale_conformance_sandbox: Sandbox,
) -> None:
    sandbox = ale_conformance_sandbox
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
