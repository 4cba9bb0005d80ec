"""Running at scale: xdist parity, the release gate, resume after a kill, shards, crash sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import like_a_terminal, results

COIN = """
import random
INSTRUCTION = "flip"
def evaluate(output_dir, reference_dir, sandbox):
    # deterministic per trial: the agent writes its trial's verdict
    verdict = output_dir / "verdict.txt"
    return float(verdict.read_text()) if verdict.is_file() else 0.0
"""


def summary(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "reports" / "summary.json").read_text())


def test_xdist_summary_equals_serial_summary(pytester: pytest.Pytester, make_task, command_agent) -> None:
    for name in ("a", "b", "c"):
        make_task(name, main=COIN)
    command_agent("half", "echo 1 > output/verdict.txt")
    make_task("d", main=COIN.replace("float(verdict.read_text())", "0.5"))
    serial = pytester.runpytest("tasks", "--ale-agent=half", "--ale-agent=noop", "--ale-trials=3")
    serial.assert_outcomes(passed=9, failed=15)
    first = summary(pytester)
    parallel = pytester.runpytest(
        "tasks", "--ale-agent=half", "--ale-agent=noop", "--ale-trials=3", "-n", "2"
    )
    parallel.assert_outcomes(passed=9, failed=15)
    second = summary(pytester)
    assert first["run_id"] != second["run_id"]
    assert first["groups"] == second["groups"]
    assert first["tasks"] == second["tasks"]
    half_all = next(g for g in second["groups"] if g["agent"] == "half" and g["domain"] == "ALL")
    assert half_all["pass_at_k"] == {"1": 0.75, "2": 0.75, "3": 0.75}
    assert half_all["mean_score"] == pytest.approx((9 * 1.0 + 3 * 0.5) / 12)


def gate_run(pytester: pytest.Pytester, agent: str, *extra: str) -> pytest.RunResult:
    return pytester.runpytest("tasks", f"--ale-agent={agent}", "--ale-trials=4", *extra)


def test_release_gate_fails_on_a_real_regression_and_passes_against_itself(
    pytester: pytest.Pytester, make_task, command_agent
) -> None:
    for name in ("a", "b", "c"):
        make_task(name, main=COIN, files={"input/id.txt": name})
    command_agent("good", "echo 1 > output/verdict.txt")
    command_agent(
        "worse", '[ "$(cat input/id.txt)" = a ] && echo 0 > output/verdict.txt || echo 1 > output/verdict.txt'
    )
    gate_run(pytester, "good", "--ale-run-id=base").assert_outcomes(passed=12)
    baseline = pytester.path / "reports" / "runs" / "base" / "results.jsonl"
    saved_summary = pytester.path / "baseline-summary.json"
    saved_summary.write_text((pytester.path / "reports" / "summary.json").read_text())

    same = gate_run(pytester, "good", f"--ale-baseline={baseline}")
    assert same.ret == pytest.ExitCode.OK
    same.stdout.fnmatch_lines(["*pytest-ale release gate*", "good vs baseline good: gate passed*"])

    # "worse" fails every trial of task a
    worse = gate_run(pytester, "worse", f"--ale-baseline={baseline}")
    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    worse.stdout.fnmatch_lines(
        [
            "worse vs baseline good: gate FAILED (alpha 0.05)*",
            "  regression: demo/a/base: 1.000 (n=4) -> 0.000 (n=4), p = 0.0143",
        ]
    )
    # a summary.json baseline works the same, and improvements are listed
    better = gate_run(pytester, "good", f"--ale-baseline={saved_summary}", "--ale-gate-alpha=0.2")
    assert better.ret == pytest.ExitCode.OK
    reverse_baseline = pytester.path / "reports" / "summary.json"
    reverse = pytester.path / "worse-summary.json"
    gate_run(pytester, "worse")
    reverse.write_text(reverse_baseline.read_text())
    improved = gate_run(pytester, "good", f"--ale-baseline={reverse}")
    improved.stdout.fnmatch_lines(
        ["*gate passed*", "  improvement: demo/a/base: 0.000 (n=4) -> 1.000 (n=4)*"]
    )


def test_gate_with_unreadable_baseline_is_a_usage_error(pytester: pytest.Pytester, make_task) -> None:
    make_task("a")
    (pytester.path / "junk.jsonl").write_text("not json\n")
    run = pytester.runpytest("tasks", "--ale-baseline=junk.jsonl")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stdout.fnmatch_lines(["*junk.jsonl is not a pytest-ale results.jsonl or summary.json*"])


def test_killed_run_resumed_ends_with_one_result_per_trial(
    pytester: pytest.Pytester, make_task, command_agent
) -> None:
    for name in ("a", "b", "c", "d"):
        make_task(name)
    command_agent("slow", "sleep 1; tr a-z A-Z < input/data.txt > output/data.txt")
    args = [
        sys.executable,
        "-m",
        "pytest",
        "tasks",
        "--ale-agent=slow",
        "--ale-trials=2",
        "--ale-run-id=crashy",
        "-p",
        "no:cacheprovider",
    ]
    proc = subprocess.Popen(args, cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results_file = pytester.path / "reports" / "runs" / "crashy" / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if results_file.is_file() and len(results_file.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(results_file.read_text().splitlines())
    assert 3 <= before < 8
    resumed = pytester.runpytest(
        "tasks", "--ale-agent=slow", "--ale-trials=2", "--ale-run-id=crashy", "--ale-resume"
    )
    resumed.assert_outcomes(passed=8 - before, deselected=before)
    ids = [r["test_id"] for r in results(pytester)]
    assert len(ids) == 8 and len(set(ids)) == 8
    assert summary(pytester)["groups"][0]["trials"] == 8  # the summary covers the whole run
    pytester.runpytest("--ale-sweep", "--ale-run-id=crashy")  # the killed trial's sandbox


def test_shards_split_the_suite_deterministically(pytester: pytest.Pytester, make_task) -> None:
    for name in "abcdefgh":
        make_task(name)

    def ids(*extra: str) -> set[str]:
        run = pytester.runpytest("--collect-only", "-q", "tasks", "--ale-trials=2", *extra)
        return {line for line in run.outlines if "::" in line}

    everything = ids()
    shards = [ids(f"--ale-shard={i}/3") for i in (1, 2, 3)]
    assert set().union(*shards) == everything and sum(map(len, shards)) == len(everything) == 16
    assert all(shards)  # 16 items over 3 shards: none empty
    assert ids("--ale-shard=2/3") == shards[1]
    bad = pytester.runpytest("tasks", "--ale-shard=4/3")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


@pytest.fixture
def sandboxes(tmp_path: Path) -> Path:
    """A private root for the local provider's trial folders: tests running beside this one
    (xdist) make theirs elsewhere, so what appears here is this test's alone."""
    return tmp_path / "sandboxes"


def trial_folders(root: Path) -> set[Path]:
    base = root / "pytest-ale"
    return set(base.glob("trial-*")) if base.is_dir() else set()


def wait_for(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_releases_every_sandbox(
    pytester: pytest.Pytester, make_task, command_agent, sig: signal.Signals, sandboxes: Path
) -> None:
    make_task("a")
    command_agent("sleeper", "sleep 120")
    before = trial_folders(sandboxes)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "tasks",
            "--ale-agent=sleeper",
            "-p",
            "no:cacheprovider",
            f"--ale-provider-opt=root={sandboxes}",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=like_a_terminal,
    )
    assert wait_for(lambda: trial_folders(sandboxes) - before), "no sandbox was started"
    time.sleep(0.5)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    assert trial_folders(sandboxes) - before == set()
    assert b"KeyboardInterrupt" in out


def test_dead_xdist_worker_is_swept_by_the_controller(
    pytester: pytest.Pytester, make_task, command_agent, sandboxes: Path
) -> None:
    make_task("a")
    make_task("b")
    command_agent("sleeper", "sleep 20")
    before = trial_folders(sandboxes)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "tasks",
            "--ale-agent=sleeper",
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            "--ale-provider-opt=isolation=none",
            f"--ale-provider-opt=root={sandboxes}",
            "--ale-timeout=20",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=like_a_terminal,
    )
    assert wait_for(lambda: len(trial_folders(sandboxes) - before) == 2), "sandboxes did not start"
    owners = [json.loads((f / ".ale-owner.json").read_text()) for f in trial_folders(sandboxes) - before]
    victim = owners[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert "died; swept 1 sandbox(es) it held" in text, text
    assert trial_folders(sandboxes) - before == set()


def test_sweep_option_removes_leftovers_of_a_killed_run(
    pytester: pytest.Pytester, make_task, command_agent, sandboxes: Path
) -> None:
    make_task("a")
    marker = f"60.{os.getpid()}{int(time.time() * 1000) % 10**6}"
    command_agent("sleeper", f"sleep {marker}")
    before = trial_folders(sandboxes)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "tasks",
            "--ale-agent=sleeper",
            "--ale-run-id=doomed",
            "-p",
            "no:cacheprovider",
            "--ale-provider-opt=isolation=none",
            f"--ale-provider-opt=root={sandboxes}",
        ],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert wait_for(lambda: trial_folders(sandboxes) - before)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = trial_folders(sandboxes) - before
    assert len(left) == 1
    run = pytester.runpytest("--ale-sweep", "--ale-run-id=doomed", f"--ale-provider-opt=root={sandboxes}")
    assert run.ret == 0
    run.stdout.fnmatch_lines(["pytest-ale sweep: 1 sandbox(es) removed by provider 'local'"])
    assert trial_folders(sandboxes) - before == set()
    # the agent's process outlived the SIGKILLed pytest (no bubblewrap); the sweep killed it
    assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).stdout == b""


# -- interrupts, live runs and resumes (issue 10: scores you can trust) ----------------------


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
