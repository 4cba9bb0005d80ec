"""Interrupts, crashes and live runs: Ctrl-C and SIGTERM stop an ``-n N`` run at once,
workers outlive no controller, a live run is never swept (unless forced, and then its
vanished sandboxes are infrastructure errors), and a resumed run reports all its trials.
(The randomised version on Docker is ``tests/adversarial/test_chaos.py``.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import results
from .test_run_control import summary, trial_folders, wait_for


@pytest.fixture
def sandboxes(tmp_path: Path) -> Path:
    """A private root for the local provider's trial folders (see test_run_control)."""
    return tmp_path / "sandboxes"


def start_run(pytester: pytest.Pytester, *args: str, ignore_sigint: bool = False) -> subprocess.Popen:
    """A run in its own process; with ``ignore_sigint``, started as a shell's background job
    is (SIGINT ignored), where xdist alone let a `kill -INT` run go on to the end."""

    def prepare() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN if ignore_sigint else signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "tasks", "-p", "no:cacheprovider", *args],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=prepare,
    )


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def gone(pids: list[int]) -> bool:
    return not any(Path(f"/proc/{p}").exists() for p in pids)


def test_sigint_stops_an_xdist_run_at_once_even_when_sigint_was_ignored(
    pytester: pytest.Pytester, make_task, command_agent, sandboxes: Path
) -> None:
    for name in "abcd":
        make_task(name, card={"domain": "demo", "timeout": 300})
    command_agent("sleeper", "sleep 200")
    before = trial_folders(sandboxes)
    proc = start_run(
        pytester, "--ale-agent=sleeper", "-n", "2", f"--ale-provider-opt=root={sandboxes}", ignore_sigint=True
    )
    assert wait_for(lambda: len(trial_folders(sandboxes) - before) == 2), "the trials did not start"
    workers = children(proc.pid)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert time.monotonic() - started < 20, "the run went on after SIGINT"
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out.decode()[-3000:]
    assert b"stopping 2 worker(s)" in out
    assert wait_for(lambda: gone(workers), 10)
    assert trial_folders(sandboxes) - before == set()


def test_workers_stop_and_release_when_their_controller_is_killed(
    pytester: pytest.Pytester, make_task, command_agent, sandboxes: Path
) -> None:
    for name in "abcd":
        make_task(name, card={"domain": "demo", "timeout": 300})
    marker = f"200.{os.getpid()}{int(time.time() * 1000) % 10**6}"
    command_agent("sleeper", f"sleep {marker}")
    before = trial_folders(sandboxes)
    proc = start_run(
        pytester, "--ale-agent=sleeper", "-n", "2", "--ale-provider-opt=isolation=none",
        f"--ale-provider-opt=root={sandboxes}", "--ale-run-id=orphaned",
    )  # fmt: skip
    assert wait_for(lambda: len(trial_folders(sandboxes) - before) == 2), "the trials did not start"
    workers = children(proc.pid)
    proc.kill()
    proc.communicate(timeout=30)
    # each worker sees its parent gone, interrupts itself and releases its sandbox
    assert wait_for(lambda: gone(workers), 30), "the workers outlived their controller"
    assert trial_folders(sandboxes) - before == set()
    assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).stdout == b""
    run = pytester.runpytest("--ale-sweep", "--ale-run-id=orphaned", f"--ale-provider-opt=root={sandboxes}")
    run.stdout.fnmatch_lines(["pytest-ale sweep: 0 sandbox(es) removed by provider 'local'"])


def test_a_live_run_is_never_swept_unless_forced_and_then_its_trial_is_an_infrastructure_error(
    pytester: pytest.Pytester, make_task, command_agent, sandboxes: Path
) -> None:
    make_task("a")
    command_agent("slow", "sleep 8; tr a-z A-Z < input/data.txt > output/data.txt")
    root = f"--ale-provider-opt=root={sandboxes}"
    before = trial_folders(sandboxes)
    proc = start_run(pytester, "--ale-agent=slow", "--ale-run-id=live", "--ale-infra-retries=0", root)
    assert wait_for(lambda: trial_folders(sandboxes) - before), "the trial did not start"
    refused = pytester.runpytest("--ale-sweep", "--ale-run-id=live", root)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        ["*run 'live' is still running (controller pid *): sweeping it would remove*--ale-sweep-force*"]
    )
    assert trial_folders(sandboxes) - before, "a refused sweep removed the live run's sandbox"
    twin = pytester.runpytest("tasks", "--ale-agent=slow", "--ale-run-id=live", "--ale-resume", root)
    assert twin.ret == pytest.ExitCode.USAGE_ERROR
    twin.stderr.fnmatch_lines(["*run 'live' is still running*a second run with this --ale-run-id*"])
    forced = pytester.runpytest("--ale-sweep", "--ale-run-id=live", "--ale-sweep-force", root)
    forced.stdout.fnmatch_lines(["*forced while run 'live' still runs*", "*1 sandbox(es) removed*"])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out.decode()[-3000:]
    (row,) = results(pytester)
    assert (row["status"], row["error_kind"], row["score"]) == ("error", "infrastructure", None)
    assert "vanished" in row["error"] or "removed" in row["error"], row["error"]
    # the run is over: resuming it runs that trial again, on a sandbox of its own
    resumed = pytester.runpytest("tasks", "--ale-agent=slow", "--ale-run-id=live", "--ale-resume", root)
    resumed.assert_outcomes(passed=1)
    assert [r["status"] for r in results(pytester)] == ["passed"]


VERDICT_AGENT = '[ "$(cat input/id.txt)" = a ] || tr a-z A-Z < input/data.txt > output/data.txt'


def test_resumed_xdist_run_reports_and_exits_on_every_trial_of_the_run(
    pytester: pytest.Pytester, make_task, command_agent
) -> None:
    for name in "abcd":
        make_task(name, files={"input/id.txt": name})
    command_agent("fails-a", VERDICT_AGENT)
    args = ["tasks", "--ale-agent=fails-a", "--ale-run-id=again", "-n", "2", "-p", "no:cacheprovider"]
    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=3, failed=1)
    results_file = pytester.path / "reports" / "runs" / "again" / "results.jsonl"
    lines = results_file.read_text().splitlines()
    # as if killed: b and c never finished, and a SIGKILL cut the last line short
    kept = [line for line in lines if "/b/" not in line and "/c/" not in line]
    results_file.write_text("\n".join(kept) + "\n" + kept[-1][:40])
    resumed = pytester.runpytest(*args, "--ale-resume")
    resumed.assert_outcomes(passed=2)  # b and c only (xdist counts no deselections)
    assert resumed.ret == pytest.ExitCode.TESTS_FAILED  # a's failure, recorded before, counts
    resumed.stdout.fnmatch_lines(["*resumed: 2 trial(s) recorded earlier in run again (1 not passed)*"])
    group = next(g for g in summary(pytester)["groups"] if g["domain"] == "ALL")
    assert (group["trials"], group["passed"]) == (4, 3)
    rows = [json.loads(line) for line in results_file.read_text().splitlines()]
    assert sorted(r["task"] for r in rows) == ["a", "b", "c", "d"]
    # nothing left to run: still the run's verdict, not "no tests collected"
    done = pytester.runpytest(*args, "--ale-resume")
    assert done.ret == pytest.ExitCode.TESTS_FAILED
    assert next(g for g in summary(pytester)["groups"] if g["domain"] == "ALL")["trials"] == 4


@pytest.mark.parametrize("kind", ["local", "docker"])
def test_a_sandbox_removed_behind_its_trial_is_noticed_at_release(kind: str, tmp_path: Path) -> None:
    """``WatchedProvider``: a trial that ended normally on a sandbox someone removed meanwhile
    (after its agent, while grading, say) raises ``SandboxGoneError``; an intact one and one
    released while an interrupt unwinds do not."""
    from pytest_ale.errors import SandboxGoneError
    from pytest_ale.sandbox import SandboxSpec
    from pytest_ale.watched import WatchedProvider

    if kind == "docker":
        from pytest_ale.providers.docker import DockerProvider

        from .test_docker_provider import IMAGE, docker_client_or_skip

        docker_client_or_skip()
        inner = DockerProvider({"image": IMAGE})
    else:
        from pytest_ale.providers.local import LocalProvider

        inner = LocalProvider({"root": str(tmp_path)})
    provider = WatchedProvider(inner)
    try:
        run = f"watched-{os.getpid()}-{kind}"
        intact = provider.acquire(SandboxSpec(run_id=f"{run}-a", trial_id="t1"))
        provider.release(intact)  # no error
        doomed = provider.acquire(SandboxSpec(run_id=f"{run}-b", trial_id="t2"))
        assert inner.sweep(f"{run}-b")  # what a forced sweep does to a live run
        with pytest.raises(SandboxGoneError, match="vanished during the trial"):
            provider.release(doomed)
        unwinding = provider.acquire(SandboxSpec(run_id=f"{run}-c", trial_id="t3"))
        assert inner.sweep(f"{run}-c")
        with pytest.raises(KeyboardInterrupt):
            try:
                raise KeyboardInterrupt
            finally:
                provider.release(unwinding)  # the interrupt goes on, not a SandboxGoneError
    finally:
        provider.close()


DEFERRAL = """
import os, signal, time
from pytest_ale import interrupts

interrupts.install()
watch = interrupts.Watch(lambda: None, 60, watch_parent=False)
watch.start()
fake = {"__name__": "execnet.gateway_base", "os": os, "signal": signal, "time": time}
exec(
    "def send():\\n"
    "    os.kill(os.getpid(), signal.SIGINT)\\n"
    "    deadline = time.monotonic() + 0.3\\n"
    "    while time.monotonic() < deadline:\\n"
    "        pass\\n",
    fake,
)
try:
    fake["send"]()  # an xdist message being written: never cut short
    print("message sent whole")
    time.sleep(5)
    print("never interrupted")
except KeyboardInterrupt:
    print("interrupted after the message")
try:
    os.kill(os.getpid(), signal.SIGTERM)  # a second signal: the release goes on
    time.sleep(0.2)
    print("second signal ignored")
except KeyboardInterrupt:
    print("second signal raised")
"""


def test_a_signal_inside_execnet_waits_for_the_message_and_a_second_one_is_ignored() -> None:
    done = subprocess.run([sys.executable, "-c", DEFERRAL], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == [
        "message sent whole",
        "interrupted after the message",
        "second signal ignored",
    ], done.stdout + done.stderr
    assert "SIGTERM: already stopping" in done.stderr


GUARD = """
import os, signal, time
from pytest_ale.providers.docker.guard import ContainerGuard

guard = ContainerGuard(
    lambda container: print("removed", container, flush=True),
    stop=lambda: print("the provider released what it held", flush=True),
)
guard.add("c1", "ale-c1")
with guard._lock:  # the main thread is inside add/forget/live when SIGTERM lands
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(2)
print("SIGTERM did not end the process", flush=True)
"""


def test_the_docker_guard_removes_its_containers_on_a_signal_that_lands_while_it_holds_its_lock() -> None:
    """The guard's SIGTERM/SIGINT handler has the provider release what it holds (through
    ``Provider.release``), then removes what is still owed; it takes the guard's lock in the
    main thread, which the signal may have interrupted while holding it: with a plain lock
    the process hung for good (and ignored every later SIGTERM), its worker never released
    the run."""
    proc = subprocess.Popen([sys.executable, "-c", GUARD], stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the process deadlocked in the guard's signal handler: {out!r}")
    assert out.splitlines() == ["the provider released what it held", "removed c1"]
    assert proc.returncode == -signal.SIGTERM
