"""Scores you can trust, with the real ``claude``, ``codex`` and ``gemini`` CLIs on local
through the gateway (the gateway-level half is ``test_gateway_books.py``): token figures
mean the same through every CLI, every CLI marks a budget stop, and Claude Code is ended
within seconds by a refused key, and as an infrastructure error by an upstream that
fails or hangs, with the spend and trajectory kept."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_ale.gateway.fake_upstream import FakeUpstream
from pytest_ale.trajectory import validate_trajectory
from tests.test_harness import _script, junit_properties, write_suite

REAL_KEY = "sk-REAL-books-key-0123456789abcdef"

AGENTS = {
    "claude-code": ("claude", "anthropic"),
    "codex": ("codex", "openai"),
    "gemini-cli": ("gemini", "gemini"),
}


def need(binary: str) -> None:
    if shutil.which(binary) is None or shutil.which("bwrap") is None:
        pytest.skip(f"`{binary}` or bubblewrap is not installed (bash .ci/harness.sh installs them)")


@pytest.fixture(params=list(AGENTS))
def cli(request: pytest.FixtureRequest) -> str:
    need(AGENTS[request.param][0])
    return request.param


def suite(pytester: pytest.Pytester, timeout: int, name: str = "upper") -> Path:
    script = write_suite(pytester.path, [name])
    card = pytester.path / "tasks" / "demo" / name / "task_card.json"
    card.write_text(json.dumps({**json.loads(card.read_text()), "timeout": timeout}))
    return script


def run(pytester: pytest.Pytester, agent: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "tasks", "-p", "no:cacheprovider", "--ale-agent", agent, "--junitxml=junit.xml", *args, timeout=600
    )


def env_file(tmp_path: Path, key: str = REAL_KEY) -> str:
    path = tmp_path / ".env"
    path.write_text(
        "".join(f"{v}={key}\n" for v in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"))
    )
    return str(path)


def artifacts(pytester: pytest.Pytester) -> Path:
    (found,) = (pytester.path / "reports" / "runs").glob("*/tasks/demo/*/*/result.json")
    return found.parent


def props(pytester: pytest.Pytester) -> dict[str, str]:
    (found,) = junit_properties(pytester).values()
    return found


def fake_upstream(**kwargs: Any) -> FakeUpstream:
    return FakeUpstream(script=_script(), **kwargs).start()


def test_cache_figures_mean_the_same_through_every_cli(pytester: pytest.Pytester, cli: str, tmp_path: Path):
    suite(pytester, timeout=120)
    fake = fake_upstream(key=REAL_KEY, cache_read=1000, cache_write=300)
    try:
        result = run(
            pytester, cli, f"--ale-upstream-{AGENTS[cli][1]}", fake.url, "--ale-env-file", env_file(tmp_path)
        )
    finally:
        fake.stop()
    result.assert_outcomes(passed=1)
    found = props(pytester)
    billed = fake.billed
    assert int(found["ale_input_tokens"]) == billed.input_tokens  # the whole prompt, cache included
    assert int(found["ale_cache_read_tokens"]) == billed.cache_read_tokens == 1000 * fake.requests
    writes = 300 * fake.requests if cli == "claude-code" else 0
    assert int(found["ale_cache_write_tokens"]) == billed.cache_write_tokens == writes
    assert int(found["ale_output_tokens"]) == billed.output_tokens


def test_budget_stop_is_marked_by_every_cli(pytester: pytest.Pytester, cli: str):
    script = suite(pytester, timeout=300, name="budget")
    began = time.monotonic()
    result = run(pytester, cli, "--ale-scripted-model", str(script), "--ale-budget-tokens", "50")
    assert time.monotonic() - began < 120  # not the 300 s timeout
    result.assert_outcomes(failed=1)
    found = props(pytester)
    assert found["ale_budget_exceeded"] == "true" and found["ale_status"] == "budget"
    assert int(found["ale_model_requests"]) >= 1 and int(found["ale_input_tokens"]) > 0
    gateway = json.loads((artifacts(pytester) / "gateway.json").read_text())
    assert "exceeded the budget of 50" in gateway["budget_exceeded"]


NO_KILL_ALL = """
from pytest_ale.gateway import server

_open = server.Gateway.open_trial


def open_trial(self, trial_id, task=None, on_stop=None, timeout_s=None):
    return _open(self, trial_id, task=task, on_stop=None, timeout_s=timeout_s)


server.Gateway.open_trial = open_trial
"""


@pytest.mark.parametrize("stoppers", ["kill_all+launcher", "launcher-only"])
def test_upstream_401_ends_claude_code_within_seconds(
    pytester: pytest.Pytester, tmp_path: Path, stoppers: str
):
    need("claude")
    suite(pytester, timeout=300)
    if stoppers == "launcher-only":  # as on a provider whose kill_all cannot reach a running command
        (pytester.path / "conftest.py").write_text(NO_KILL_ALL)
    fake = fake_upstream(key=REAL_KEY)
    try:
        result = run(
            pytester, "claude-code", "--ale-upstream-anthropic", fake.url,
            "--ale-env-file", env_file(tmp_path, "sk-wrong-key-0123456789"), "--ale-infra-retries", "0",
        )  # fmt: skip
    finally:
        fake.stop()
    result.assert_outcomes(errors=1)
    found = props(pytester)
    assert found["ale_status"] == "error" and float(found["ale_duration_s"]) < 60  # not 300 s
    folder = artifacts(pytester)
    record = json.loads((folder / "result.json").read_text())
    assert record["error_kind"] == "settings"  # a key the upstream refuses
    assert f"upstream anthropic ({fake.url}) answered HTTP 401" in record["error"]
    assert "ANTHROPIC_API_KEY" in record["error"]
    assert (folder / "trajectory.json").is_file() and (folder / "gateway.json").is_file()
    assert fake.rejected_keys and len(fake.rejected_keys) <= 2  # later tries refused by the gateway
    events = [json.loads(line) for line in (folder / "gateway.jsonl").read_text().splitlines()]
    assert any(e.get("stop") == "config_error" for e in events)  # Claude Code retries a 401: it was stopped
    if stoppers == "launcher-only":
        assert "ale launcher: the model gateway stopped the agent" in (folder / "agent.log").read_text()


def failing_after_work(pytester: pytest.Pytester, tmp_path: Path) -> tuple[Path, str]:
    """Claude Code on an upstream that answers once, then 500 for good: the trial's folder."""
    need("claude")
    suite(pytester, timeout=120)
    fake = fake_upstream(key=REAL_KEY, fail_after=1, fail_status=500, retry_after=0)
    began = time.monotonic()
    try:
        result = run(
            pytester, "claude-code", "--ale-upstream-anthropic", fake.url,
            "--ale-env-file", env_file(tmp_path), "--ale-upstream-retries", "2", "--ale-infra-retries", "0",
        )  # fmt: skip
    finally:
        fake.stop()
    assert time.monotonic() - began < 100  # bound 30 s + grace: well below the 120 s timeout
    result.assert_outcomes(errors=1)
    return artifacts(pytester), fake.url


def test_an_upstream_failing_after_some_work_is_an_infrastructure_error_with_its_books(
    pytester: pytest.Pytester, tmp_path: Path
):
    folder, url = failing_after_work(pytester, tmp_path)
    record = json.loads((folder / "result.json").read_text())
    assert record["error_kind"] == "infrastructure" and not record["timed_out"]
    assert f"upstream anthropic ({url}) answered HTTP 500" in record["error"]
    gateway = json.loads((folder / "gateway.json").read_text())
    assert gateway["input_tokens"] > 0 and gateway["requests"] >= 1
    trajectory = validate_trajectory(json.loads((folder / "trajectory.json").read_text()))
    assert trajectory.final_metrics is not None  # the run's own trajectory, with the gateway's figures
    assert trajectory.final_metrics.total_prompt_tokens == gateway["input_tokens"]
    assert any(s.source == "agent" for s in trajectory.steps)
    assert "answered HTTP 500" in trajectory.steps[-1].message


def test_an_error_trials_result_and_junit_keep_the_gateways_figures(
    pytester: pytest.Pytester, tmp_path: Path
):
    folder, _ = failing_after_work(pytester, tmp_path)
    gateway = json.loads((folder / "gateway.json").read_text())
    record = json.loads((folder / "result.json").read_text())
    assert record["status"] == "error" and gateway["input_tokens"] > 0
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        assert record[name] == gateway[name], name
    assert record["cost_usd"] == pytest.approx(gateway["cost_usd"])
    found = props(pytester)
    assert int(found["ale_input_tokens"]) == gateway["input_tokens"]
    assert int(found["ale_model_requests"]) == gateway["requests"]


def test_a_hung_upstream_is_an_infrastructure_error_not_the_agents_timeout(
    pytester: pytest.Pytester, tmp_path: Path
):
    need("claude")
    suite(pytester, timeout=40)  # bound and silence: 10 s
    fake = fake_upstream(key=REAL_KEY, hang_after=0)
    try:
        result = run(
            pytester, "claude-code", "--ale-upstream-anthropic", fake.url,
            "--ale-env-file", env_file(tmp_path), "--ale-infra-retries", "0",
        )  # fmt: skip
    finally:
        fake.stop()
    result.assert_outcomes(errors=1)
    record = json.loads((artifacts(pytester) / "result.json").read_text())
    assert record["error_kind"] == "infrastructure" and not record["timed_out"]
    assert f"upstream anthropic ({fake.url}) sent no answer for 10 s" in record["error"]
    assert record["phases"]["agent"] < 35
