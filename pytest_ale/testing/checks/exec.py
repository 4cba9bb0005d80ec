"""Conformance: commands. Exit codes, stdout and stderr, argv kept as it is, environment,
working folder and stdin, and a timeout that kills the command's whole process tree; the
edges: bytes that are not UTF-8, a large stdin, a relative ``cwd``, ``user=``, a missing or
unrunnable program, a permission the agent lacks, output past its cap."""

from __future__ import annotations

import time

import pytest

from ...sandbox import Sandbox
from ..probes import alive

#: what a command's stdout and stderr keep, each (the rest is dropped, saying so)
CAP = 16 * 1024**2


def test_exec_exit_codes_and_streams(ale_conformance_sandbox: Sandbox) -> None:
    result = ale_conformance_sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (7, "out\n", "err\n", False)
    assert not result.ok
    assert ale_conformance_sandbox.exec(["true"]).ok
    assert ale_conformance_sandbox.exec("exit 0").exit_code == 0


def test_exec_argv_is_not_reinterpreted_by_a_shell(ale_conformance_sandbox: Sandbox) -> None:
    tricky = ["it's", "a b", "$HOME", "`id`", "semi;colon", "*"]
    result = ale_conformance_sandbox.exec(["printf", "%s\\n", *tricky])
    assert result.stdout.splitlines() == tricky


def test_exec_env_cwd_and_stdin(ale_conformance_sandbox: Sandbox) -> None:
    sandbox = ale_conformance_sandbox
    assert sandbox.exec(["pwd"]).stdout.strip() == sandbox.workdir
    sandbox.mkdir(sandbox.path("sub dir"))
    assert sandbox.exec(["pwd"], cwd=sandbox.path("sub dir")).stdout.strip() == sandbox.path("sub dir")
    env = {"ALE_TEST_VALUE": "x y'z", "OTHER": "2"}
    assert sandbox.sh('printf %s "$ALE_TEST_VALUE$OTHER"', env=env).stdout == "x y'z2"
    assert sandbox.exec(["cat"], stdin=b"piped\x00bytes").stdout == "piped\x00bytes"
    missing = sandbox.exec(["pwd"], cwd=sandbox.path("nope"))
    assert missing.exit_code != 0 and missing.stderr.strip() and not missing.stdout, missing


def test_timeout_kills_the_whole_process_tree(ale_conformance_sandbox: Sandbox) -> None:
    sandbox = ale_conformance_sandbox
    pidfile = sandbox.path("child.pid")
    script = f"sleep 300 & echo $! > {pidfile}; setsid sleep 301 & echo $! >> {pidfile}; wait"
    started = time.monotonic()
    result = sandbox.sh(script, timeout=1.5)
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < 20
    pids = sandbox.read_text(pidfile).split()
    assert len(pids) == 2
    for pid in pids:
        assert not alive(sandbox, pid), f"process {pid} survived the timeout"


def test_exec_output_that_is_not_utf8_is_replaced_never_fatal(ale_conformance_sandbox: Sandbox) -> None:
    """Bytes that are not UTF-8 become U+FFFD in ``stdout`` and ``stderr``; valid
    multi-byte characters pass as they are."""
    done = ale_conformance_sandbox.sh(r"printf '\377\376 caf\303\251\n'; printf '\200err' >&2")
    assert done.ok, done.stderr
    assert done.stdout == "\ufffd\ufffd café\n"
    assert done.stderr == "\ufffderr"


def test_exec_takes_a_large_stdin_and_one_it_never_reads(ale_conformance_sandbox: Sandbox) -> None:
    big = bytes(range(256)) * (8 * 4096)  # 8 MiB
    done = ale_conformance_sandbox.sh("wc -c", stdin=big, timeout=120)
    assert done.ok and done.stdout.strip() == str(len(big)), done.stderr
    assert ale_conformance_sandbox.exec(["true"], stdin=big, timeout=120).ok
    assert ale_conformance_sandbox.exec(["cat"], stdin=b"").stdout == ""


def test_exec_relative_cwd_is_under_the_workspace(ale_conformance_sandbox: Sandbox) -> None:
    sandbox = ale_conformance_sandbox
    sandbox.mkdir(sandbox.path("rel", "deeper"))
    assert sandbox.exec(["pwd"], cwd="rel/deeper").stdout.strip() == sandbox.path("rel", "deeper")
    assert sandbox.exec(["pwd"], cwd=".").stdout.strip() == sandbox.workdir
    assert sandbox.exec(["pwd"], cwd="/").stdout.strip() == "/"


def test_exec_as_the_grader_or_an_unknown_user(ale_conformance_sandbox: Sandbox) -> None:
    """``user=None`` is the agent, ``user=grader_user`` someone else; a user the sandbox
    has not is a failed command saying why (never run as anyone else, never raised)."""
    sandbox = ale_conformance_sandbox
    agent = sandbox.exec(["id", "-u"])
    grader = sandbox.exec(["id", "-u"], user=sandbox.grader_user, cwd="/")
    assert agent.ok and grader.ok, agent.stderr + grader.stderr
    assert agent.stdout != grader.stdout, "user=grader_user runs as the agent"
    marker = sandbox.path("ran-as-nobody")
    nobody = sandbox.exec(["touch", marker], user="ale-no-such-user")
    assert nobody.exit_code != 0 and nobody.stderr.strip(), nobody
    assert not sandbox.exists(marker), "a command for an unknown user ran anyway"


def test_exec_of_a_missing_or_unrunnable_program_is_a_failed_command(
    ale_conformance_sandbox: Sandbox,
) -> None:
    """Not found: exit code 127; not executable (permission denied): 126; the reason on
    stderr, never an exception."""
    sandbox = ale_conformance_sandbox
    missing = sandbox.exec(["ale-no-such-program", "arg"])
    assert missing.exit_code == 127 and missing.stderr.strip(), missing
    sandbox.write_text(sandbox.path("not-executable.sh"), "#!/bin/sh\necho ran\n")
    denied = sandbox.exec([sandbox.path("not-executable.sh")])
    assert denied.exit_code == 126 and "ermission denied" in denied.stderr, denied
    assert "ran" not in denied.stdout


def test_a_permission_the_agent_lacks_is_a_failed_command(ale_conformance_sandbox: Sandbox) -> None:
    sandbox = ale_conformance_sandbox
    done = sandbox.sh("printf old > locked && chmod 444 locked && echo new > locked")
    assert done.exit_code != 0 and "ermission denied" in done.stderr, done
    assert sandbox.read_text(sandbox.path("locked")) == "old"
    assert not sandbox.exec(["sh", "-c", "echo x > /etc/ale-conformance"]).ok


def test_a_timeout_keeps_what_was_printed_and_a_quick_command_is_not_timed_out(
    ale_conformance_sandbox: Sandbox,
) -> None:
    done = ale_conformance_sandbox.sh("echo before; echo oops >&2; sleep 60; echo after", timeout=2)
    assert done.timed_out and not done.ok
    assert done.stdout == "before\n" and "oops" in done.stderr, done
    quick = ale_conformance_sandbox.sh("sleep 0.1; echo done", timeout=60)
    assert quick.ok and not quick.timed_out and quick.stdout == "done\n"


def test_exec_env_holds_any_value_and_nothing_of_the_host(
    ale_conformance_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values with newlines, quotes and non-ASCII characters arrive as they are; the host's
    own environment (its keys) never enters the sandbox, nor does a login's PATH the agent
    cannot use."""
    monkeypatch.setenv("ALE_CONFORMANCE_HOST_SECRET", "sk-not-for-the-agent")
    value = "line one\nline 'two' \"3\" $HOME ✓"
    done = ale_conformance_sandbox.sh(
        'printf %s "$V"; printenv ALE_CONFORMANCE_HOST_SECRET', env={"V": value}
    )
    assert done.stdout == value, done
    assert "sk-not-for-the-agent" not in done.stdout
    for folder in ale_conformance_sandbox.sh('printf %s "$PATH"').stdout.split(":"):
        searchable = ale_conformance_sandbox.exec(["sh", "-c", 'test ! -e "$1" || test -x "$1"', "-", folder])
        assert searchable.ok, f"the agent's PATH holds {folder}, which the agent cannot search"


def test_exec_output_is_capped_not_kept_without_end(ale_conformance_sandbox: Sandbox) -> None:
    """An agent printing without end: each stream keeps its first 16 MiB, the rest dropped
    saying so (the host's memory is not the agent's to fill)."""
    done = ale_conformance_sandbox.sh(
        "head -c 40000000 /dev/zero | tr '\\0' y; head -c 40000000 /dev/zero >&2", timeout=300
    )
    assert done.ok, done.stderr[-500:]
    for stream in (done.stdout, done.stderr):
        assert CAP <= len(stream) < CAP + 4096, len(stream)
        assert stream[:CAP].strip("y\0") == "" and "dropped" in stream[CAP:]
