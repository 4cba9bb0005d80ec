"""Time budgets: an agent past its timeout is killed with everything it started, then graded."""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest

from .conftest import results


def live_processes_with(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_agent_past_timeout_is_killed_graded_and_marked(
    pytester: pytest.Pytester, make_task, command_agent, isolation: str
) -> None:
    marker = f"300.{uuid.uuid4().int % 10**9:09d}"  # a unique argument to find the sleeps by
    make_task("upper")
    # a foreground sleep, a background child, and a daemonised grandchild in its own session
    command_agent(
        "sleepy",
        "tr a-z A-Z < input/data.txt > output/data.txt; "
        f"(sleep {marker}) & "
        f"setsid sh -c 'sleep {marker}' & "
        f"sleep {marker}",
    )
    started = time.monotonic()
    run = pytester.runpytest_subprocess(
        "tasks", "--ale-agent=sleepy", "--ale-timeout=2", f"--ale-provider-opt=isolation={isolation}"
    )
    elapsed = time.monotonic() - started
    # far below the 300 s sleeps: the tree was killed at the timeout (the slack is pytest's
    # own start-up and a noisy 2-core CI machine, not the kill)
    assert elapsed < 2 + 25, f"took {elapsed:.1f}s"
    run.assert_outcomes(passed=1)  # the output was written before it hung: graded, full marks
    row = results(pytester)[0]
    assert row["timed_out"] is True and row["score"] == 1.0
    assert row["agent_exit_code"] is None
    assert live_processes_with(marker) == []


def test_timed_out_agent_below_threshold_is_status_timeout(
    pytester: pytest.Pytester, make_task, command_agent
) -> None:
    make_task("upper")
    command_agent("stuck", "sleep 60")
    run = pytester.runpytest("tasks", "--ale-agent=stuck", "--ale-timeout=1")
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(
        [
            "*score 0.000 < threshold 1.000 (status timeout)*",
            "*the agent ran out of time and was killed; its output was graded anyway*",
        ]
    )
    row = results(pytester)[0]
    assert row["status"] == "timeout"
    assert row["phases"]["agent"] < 1 + 5


def test_card_timeout_is_the_default_budget(pytester: pytest.Pytester, make_task, command_agent) -> None:
    make_task("upper", card={"domain": "demo", "timeout": 1})
    command_agent("stuck", "sleep 60")
    pytester.runpytest("tasks", "--ale-agent=stuck").assert_outcomes(failed=1)
    assert results(pytester)[0]["status"] == "timeout"


@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_background_process_is_fenced_before_grading(
    pytester: pytest.Pytester, make_task, command_agent, isolation: str
) -> None:
    marker = f"300.{uuid.uuid4().int % 10**9:09d}"
    main = f"""
        import subprocess
        INSTRUCTION = "leave a process behind"
        def evaluate(output_dir, reference_dir, sandbox):
            ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            alive = [line for line in ps.splitlines() if "{marker}" in line]
            return (0.0, f"still running: {{alive}}") if alive else (1.0, "fenced")
    """
    make_task("fence", main=main)
    command_agent("lingerer", f"setsid sh -c 'sleep {marker}' > /dev/null 2>&1 & exit 0")
    run = pytester.runpytest("tasks", "--ale-agent=lingerer", f"--ale-provider-opt=isolation={isolation}")
    run.assert_outcomes(passed=1)
    if isolation == "none":  # (with bubblewrap the PID namespace is gone with the agent)
        # one process, or two when the shell had forked its `sleep` before the fence struck
        warnings = results(pytester)[0]["warnings"]
        assert any(re.match(r"fence: killed [12] process", w) for w in warnings), warnings
    assert live_processes_with(marker) == []
