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

    def owners() -> list[dict]:  # a folder appears a moment before its owner file is written
        try:
            folders = trial_folders(sandboxes) - before
            return [json.loads((f / ".ale-owner.json").read_text()) for f in folders]
        except (OSError, ValueError):
            return []

    assert wait_for(owners), "the sandboxes' owner files were never written"
    victim = owners()[0]["pid"]
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
    # killed once its agent runs: its folder then names its run (a folder killed before
    # its owner file is written names none, and only the expiry sweep takes it)
    assert wait_for(lambda: subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).stdout)
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
