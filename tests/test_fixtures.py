"""The public fixtures (``pytest_ale/fixtures.py``) as a user writes tests with them: an agent
run in a sandbox and what it left there, on the local provider; the same in a user's
project, with a ``command`` agent, on xdist workers, and a real harness behind the
scripted gateway; and a conftest overriding the provider and the harness."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from pytest_ale.sandbox import Sandbox

from .conftest import results


def test_an_agent_leaves_its_work_in_the_sandbox(ale_sandbox: Sandbox, ale_agent, tmp_path: Path) -> None:
    """A user's test, built from the fixtures alone: the run's default agent (``oracle``)
    on the default provider (``local``), handed a solution to run."""
    solution = tmp_path / "solution"
    solution.mkdir()
    (solution / "solve.sh").write_text("cat input.txt | tr a-z A-Z > output/shout.txt\nsleep 600 &\n")
    ale_sandbox.write_text(ale_sandbox.path("input.txt"), "hello\n")
    result = ale_agent("Shout input.txt into output/shout.txt.", solution=solution)
    assert result.exit_code == 0 and not result.timed_out
    assert ale_sandbox.read_text(ale_sandbox.path("output", "shout.txt")) == "HELLO\n"
    assert ale_sandbox.agent_processes() == 0  # the sleep it left behind was fenced


USER_TESTS = """
def test_writer_leaves_a_report(ale_sandbox, ale_agent):
    result = ale_agent("Write a report")
    assert result.exit_code == 0, result.log
    assert ale_sandbox.read_text(ale_sandbox.path("output", "report.txt")) == "Write a report\\n"
    assert "wrote it" in result.log


def test_each_test_gets_a_fresh_sandbox(ale_sandbox):
    assert ale_sandbox.listdir(ale_sandbox.path("output")) == []
    ale_sandbox.write_text(ale_sandbox.path("output", "mine.txt"), "x")


def test_again_fresh(ale_sandbox):
    assert ale_sandbox.listdir(ale_sandbox.path("output")) == []
"""
WRITER = "cat {instruction_file} > output/report.txt && echo wrote it"


@pytest.mark.parametrize("xdist", [False, True], ids=["n0", "n2"])
def test_user_project_runs_its_agent_through_the_fixtures(
    pytester: pytest.Pytester, command_agent, xdist: bool
) -> None:
    if xdist:
        pytest.importorskip("xdist")
    pytester.makepyfile(test_user=USER_TESTS)
    agent = command_agent("writer", WRITER)
    extra = ["-n", "2"] if xdist else []
    root = pytester.path / "sandboxes"
    run = pytester.runpytest(
        f"--ale-agent={agent}", f"--ale-provider-opt=root={root}", "-p", "no:cacheprovider", *extra
    )
    run.assert_outcomes(passed=3)
    assert not list((pytester.path / "reports" / "runs").glob("*/results.jsonl"))  # no trials
    assert list(root.glob("pytest-ale/trial-*")) == []  # every sandbox released


MATRIX_TESTS = """
def test_each_agent(ale_harness, ale_sandbox, ale_agent):
    result = ale_agent("Write a report")
    assert result.exit_code == 0
    written = ale_sandbox.exists(ale_sandbox.path("output", "report.txt"))
    assert written == (ale_harness.label == "writer")


def test_no_agent_here(ale_sandbox):
    pass
"""


def test_several_agents_run_a_fixture_test_once_each(pytester: pytest.Pytester, command_agent) -> None:
    pytester.makepyfile(test_matrix=MATRIX_TESTS)
    agent = command_agent("writer", WRITER)
    run = pytester.runpytest(f"--ale-agent={agent}", "--ale-agent=noop", "-v", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=3)
    run.stdout.fnmatch_lines_random(
        [
            "*test_matrix.py::test_each_agent[[]writer[]] PASSED*",
            "*test_matrix.py::test_each_agent[[]noop[]] PASSED*",
            "*test_matrix.py::test_no_agent_here PASSED*",
        ]
    )


PROVIDER_CONFTEST = """
import pytest
from pytest_ale.agents.command import CommandAgent
from pytest_ale.providers.local import LocalProvider


class CountingProvider(LocalProvider):
    name = "counting"

    def acquire(self, spec):
        with open("ledger.txt", "a") as fh:
            fh.write(f"acquire {spec.trial_id} {spec.labels['ale-test-id']}\\n")
        return super().acquire(spec)

    def release(self, sandbox):
        with open("ledger.txt", "a") as fh:
            fh.write(f"release {sandbox.spec.trial_id}\\n")
        super().release(sandbox)


@pytest.fixture(scope="session")
def ale_provider():
    provider = CountingProvider({})
    yield provider
    provider.close()


@pytest.fixture(scope="session")
def ale_harness():
    return CommandAgent({"command": "echo overridden > output/who.txt"}, label="mine")
"""

OVERRIDE_TESTS = """
import pytest


def test_uses_the_conftest_harness(ale_sandbox, ale_agent):
    assert ale_agent("anything").exit_code == 0
    assert ale_sandbox.read_text(ale_sandbox.path("output", "who.txt")) == "overridden\\n"


def test_a_failing_test_still_releases(ale_sandbox):
    assert ale_sandbox.exists(ale_sandbox.path("output"))
    raise AssertionError("the user's assertion failed")


@pytest.mark.ale_sandbox(workdir="/work")
def test_marker_sets_the_spec(ale_sandbox):
    assert ale_sandbox.spec.workdir == "/work" and ale_sandbox.workdir.endswith("/work")
"""


def test_conftest_overrides_the_provider_and_the_harness(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    pytester.makeconftest(PROVIDER_CONFTEST)
    pytester.makepyfile(test_override=OVERRIDE_TESTS)
    run = pytester.runpytest(
        "test_override.py", "tasks", "--ale-agent=oracle", "--ale-agent=noop", "-p", "no:cacheprovider"
    )
    run.assert_outcomes(passed=3, failed=2)  # the overridden harness is no matrix of agents
    ledger = (pytester.path / "ledger.txt").read_text().splitlines()
    acquired = [line.split()[1] for line in ledger if line.startswith("acquire")]
    released = [line.split()[1] for line in ledger if line.startswith("release")]
    assert (
        sorted(acquired)
        == sorted(released)
        == sorted(
            f"test_override.py::{name}"
            for name in (
                "test_uses_the_conftest_harness",
                "test_a_failing_test_still_releases",
                "test_marker_sets_the_spec",
            )
        )
    )
    assert all(line.split()[1] == line.split()[2] for line in ledger if line.startswith("acquire"))
    # the task's trials still run on the run's own provider and agents
    trials = sorted((r["agent"], r["status"]) for r in results(pytester))
    assert trials == [("noop", "failed"), ("oracle", "passed")]


SCRIPTED_TESTS = """
def test_harness_copies_the_file(ale_sandbox, ale_agent, ale_gateway):
    ale_sandbox.write_text(ale_sandbox.path("data.txt"), "hello world\\n")
    result = ale_agent("Copy data.txt to output/data.txt, upper-cased.", timeout_s=300)
    assert result.exit_code == 0, result.log
    assert ale_sandbox.read_text(ale_sandbox.path("output", "data.txt")) == "HELLO WORLD\\n"
    assert result.usage.requests >= 2 and result.usage.input_tokens > 0
    assert ale_gateway.socket_path
"""


def test_a_real_harness_behind_the_scripted_gateway(pytester: pytest.Pytester) -> None:
    for tool in ("claude", "bwrap"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not installed (bash .ci/harness.sh installs it)")
    turns = [
        {"shell": "tr a-z A-Z < data.txt > output/data.txt", "say": "Upper-casing."},
        {"text": "Done."},
    ]
    script = {"tasks": {"copy": {"match": "Copy data.txt", "turns": turns}}}
    (pytester.path / "script.yaml").write_text(yaml.safe_dump(script))
    (pytester.path / "pytest.ini").write_text("[pytest]\n")
    pytester.makepyfile(test_scripted=textwrap.dedent(SCRIPTED_TESTS))
    run = pytester.runpytest_subprocess(
        "test_scripted.py",
        "-p",
        "no:cacheprovider",
        "--ale-agent=claude-code",
        "--ale-scripted-model=script.yaml",
        timeout=600,
    )
    run.assert_outcomes(passed=1)
    books = list((pytester.path / "reports" / "runs").glob("*/tests/*/gateway.json"))
    assert len(books) == 1 and json.loads(books[0].read_text())
