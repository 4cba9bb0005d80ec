"""End-to-end runs of the plugin on the local sandbox: pass/fail, reports, artifacts."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_ale.agents.base import Agent, AgentContext, AgentResult, run_script
from pytest_ale.card import load_card
from pytest_ale.native import NativeTask
from pytest_ale.providers.local import LocalProvider
from pytest_ale.sandbox import Sandbox
from pytest_ale.trajectory import validate_trajectory
from pytest_ale.trial import TrialPlan, run_trial

from .conftest import GOOD_MAIN, results


def test_oracle_passes_and_noop_fails(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    make_task("lower", domain="finance")
    run = pytester.runpytest("tasks", "--ale-agent=oracle", "--ale-agent=noop", "-v")
    run.assert_outcomes(passed=2, failed=2)
    run.stdout.fnmatch_lines(
        [
            "*tasks/demo/upper/main.py::upper[[]oracle-base-t1[]] *PASSED*",
            "*tasks/demo/upper/main.py::upper[[]noop-base-t1[]] *FAILED*",
            "*pytest-ale results*",
            "agent*domain*trials*mean*pass rate*errors*",
            "noop*demo*1*0.000*0%*0*",
            "oracle*finance*1*1.000*100%*0*",
        ]
    )
    assert run.ret == pytest.ExitCode.TESTS_FAILED
    by_agent = {(r["agent"], r["task"]): r for r in results(pytester)}
    assert by_agent[("oracle", "upper")]["score"] == 1.0
    assert by_agent[("noop", "upper")]["score"] == 0.0
    assert by_agent[("noop", "upper")]["explanation"] == "output/data.txt is missing"


def test_exit_code_zero_only_when_every_trial_passed(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    assert pytester.runpytest("tasks").ret == pytest.ExitCode.OK
    assert pytester.runpytest("tasks", "--ale-agent=noop").ret == pytest.ExitCode.TESTS_FAILED


def test_failure_message_carries_score_and_explanation(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    run = pytester.runpytest("tasks", "--ale-agent=noop")
    run.stdout.fnmatch_lines(
        [
            "*upper [[]noop base t1[]]: score 0.000 < threshold 1.000 (status failed)*",
            "*grader: output/data.txt is missing*",
        ]
    )
    run.stdout.no_fnmatch_line("*Traceback*")


def test_junitxml_carries_score_properties_without_warnings(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    make_task("other")
    run = pytester.runpytest(
        "tasks",
        "--ale-agent=oracle",
        "--ale-agent=noop",
        "--junitxml=junit.xml",
        "-W",
        "error",
        "-p",
        "no:benchmark",
    )
    run.assert_outcomes(passed=2, failed=2)
    cases = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    scores = {}
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        scores[case.get("name")] = (props["ale_score"], props["ale_status"], props["ale_duration_s"])
    assert {name: s[:2] for name, s in scores.items()} == {
        "upper[oracle-base-t1]": ("1.0", "passed"),
        "upper[noop-base-t1]": ("0.0", "failed"),
        "other[oracle-base-t1]": ("1.0", "passed"),
        "other[noop-base-t1]": ("0.0", "failed"),
    }
    assert all(float(s[2]) > 0 for s in scores.values())
    run.stdout.no_fnmatch_line("*warnings summary*")


def test_artifacts_hold_output_result_log_and_trajectory(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    pytester.runpytest("tasks", "--ale-run-id=r1").assert_outcomes(passed=1)
    folder = pytester.path / "reports" / "runs" / "r1" / "tasks" / "demo" / "upper" / "oracle-base-t1"
    assert (folder / "output" / "data.txt").read_text() == "HELLO WORLD\n"
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "passed" and result["score"] == 1.0
    assert set(result["phases"]) >= {"acquire", "stage", "setup", "agent", "fence", "grade"}
    trajectory = json.loads((folder / "trajectory.json").read_text())
    assert trajectory["steps"][0]["source"] == "user"
    assert trajectory["steps"][0]["message"].startswith("Copy input/data.txt")
    assert (folder / "agent.log").exists()
    summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
    assert summary["run_id"] == "r1"
    assert {"agent": "oracle", "domain": "demo"}.items() <= summary["groups"][0].items()


def test_threshold_from_option_and_card(pytester: pytest.Pytester, make_task) -> None:
    half = """
        INSTRUCTION = "do it"
        def evaluate(output_dir, reference_dir, sandbox):
            return 0.5, "half"
    """
    make_task("half", main=half, card={"domain": "demo", "threshold": 0.5})
    make_task("strict", main=half)
    pytester.runpytest("tasks").assert_outcomes(passed=1, failed=1)
    pytester.runpytest("tasks", "--ale-threshold=0.4").assert_outcomes(passed=2)
    pytester.runpytest("tasks", "--ale-threshold=0.9").assert_outcomes(failed=2)


def test_ini_keys_configure_the_run(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    pytester.makeini("[pytest]\nale_agent =\n    noop\n    oracle\nale_trials = 2\n")
    run = pytester.runpytest("tasks")
    run.assert_outcomes(passed=2, failed=2)


def test_reference_never_enters_the_sandbox(pytester: pytest.Pytester, make_task, command_agent) -> None:
    make_task("upper", files={"reference/secret-answer.txt": "MARKER-5f1c-REFERENCE"})
    tasks_dir = pytester.path / "tasks"
    command_agent(
        "snoop",
        "find / \\( -path /proc -o -path /sys \\) -prune -o -name 'secret-answer.txt' -print "
        "2>/dev/null > output/found.txt; "
        f"ls {tasks_dir} >> output/found.txt 2>&1; "
        # content search of every folder but the system's binaries and libraries
        "grep -rl MARKER-5f1c-REFERENCE /etc /home /root /tmp /workspace /media /mnt /srv /var "
        "2>/dev/null >> output/found.txt; true",
    )
    pytester.runpytest("tasks", "--ale-agent=snoop", "--ale-run-id=snoop")
    found = next((pytester.path / "reports" / "runs" / "snoop").rglob("found.txt")).read_text()
    assert "secret-answer" not in found
    assert "MARKER" not in found
    assert "No such file" in found  # the host's task folder is not visible at all


def test_ordinary_test_files_are_left_to_pytest(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    (pytester.path / "helpers").mkdir()
    (pytester.path / "helpers" / "main.py").write_text("raise SystemExit('must not be imported')\n")
    run = pytester.runpytest("-v")
    run.assert_outcomes(passed=2)
    run.stdout.fnmatch_lines(["*test_plain.py::test_ok PASSED*"])


def test_verbose_run_shows_each_trial_phase_live(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    verbose = pytester.runpytest_subprocess("tasks", "-v")
    verbose.stdout.fnmatch_lines(
        ["*upper[[]oracle-base-t1[]] acquire stage setup install agent fence collect grade release PASSED*"]
    )
    quiet = pytester.runpytest_subprocess("tasks", "-q")
    quiet.stdout.no_fnmatch_line("*acquire stage*")


def test_keep_leaves_the_sandbox_and_says_where(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    run = pytester.runpytest("tasks", "--ale-keep", "-W", "default")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*upper: kept for debugging: local sandbox (*): files kept in /*"])
    kept = results(pytester)[0]["warnings"][-1].rsplit(" ", 1)[-1]
    assert (Path(kept) / "workspace" / "output" / "data.txt").read_text() == "HELLO WORLD\n"
    pytester.runpytest("--ale-sweep", f"--ale-run-id={results(pytester)[0]['run_id']}")
    assert not Path(kept).exists()


@pytest.mark.parametrize("size", [30, 200_000], ids=["inline", "file"])
def test_command_agent_gets_the_instruction_file_and_text(
    pytester: pytest.Pytester, make_task, command_agent, size: int
) -> None:
    main = f"""
        INSTRUCTION = "Echo me back, $HOME and `quotes` stay as written. " + "x" * {size}
        def evaluate(output_dir, reference_dir, sandbox):
            got = (output_dir / "file.txt").read_text()
            env = (output_dir / "env.txt").read_text()
            ok = got == INSTRUCTION + "\\n" and env == "unset\\n"
            return (1.0, "same") if ok else (0.0, f"file {{got[:60]!r}}, env {{env!r}}")
    """
    make_task("echo", main=main)
    command_agent(
        "echoer",
        'cp "$ALE_INSTRUCTION_FILE" output/file.txt; '
        "(printenv ALE_INSTRUCTION_TEXT || echo unset) > output/env.txt",
    )
    pytester.runpytest("tasks", "--ale-agent=echoer").assert_outcomes(passed=1)


class BrokenConverter(Agent):
    """Solves the task, then its trajectory converter raises (a parser bug)."""

    name = "broken-converter"
    runs = 0

    def run(self, sandbox: Sandbox, context: AgentContext) -> AgentResult:
        self.runs += 1
        done = run_script(sandbox, context, ["sh", "-c", "tr a-z A-Z < input/data.txt > output/data.txt"])
        done.transcript = '{"type": "step"}\n'
        return done

    def trajectory(self, run: AgentResult, instruction: str, session_id: str) -> dict[str, Any] | None:
        raise KeyError("steps")


def test_a_converter_that_raises_costs_the_trajectory_not_the_score(tmp_path: Path) -> None:
    """The trajectory is converted after the run, by the trial: a converter's bug is a
    warning in the trial's record, not an error, and the (paid) run is not repeated."""
    folder = tmp_path / "tasks" / "demo" / "upper"
    for sub in ("input", "reference"):
        (folder / sub).mkdir(parents=True)
    (folder / "main.py").write_text(GOOD_MAIN)
    (folder / "task_card.json").write_text('{"domain": "demo", "timeout": 30}')
    (folder / "input" / "data.txt").write_text("hello\n")
    (folder / "reference" / "data.txt").write_text("HELLO\n")
    task = NativeTask.load(folder, load_card(folder / "task_card.json"))
    agent = BrokenConverter()
    plan = TrialPlan(
        task=task, variant="base", trial=1, agent=agent,
        provider=LocalProvider({"root": str(tmp_path / "root")}), provider_name="local",
        run_id="conv", test_id="conv", artifacts=tmp_path / "artifacts", threshold=1.0, timeout_s=30,
    )  # fmt: skip
    result = run_trial(plan)
    assert (result.status, result.score, result.error_kind) == ("passed", 1.0, None), result
    assert agent.runs == 1 and result.attempts == 1
    assert any("converter raised KeyError" in w for w in result.warnings), result.warnings
    trajectory = json.loads((plan.artifacts / "trajectory.json").read_text())
    validate_trajectory(trajectory)  # the bare record of the run stands in
    assert trajectory["steps"][0]["message"] == task.instruction("base")
    assert json.loads((plan.artifacts / "result.json").read_text())["warnings"] == result.warnings
