"""Judges through the gateway: a task's grader that asks a model (an OpenAI client, as
ALE's ``tasks/utils/evaluation.py`` builds one) reaches the gateway with a judge token,
is metered apart from the agent, scripted, recorded and replayed (a native task's grader
too); a judge the gateway cannot serve is an error, never the agent's 0.

The judge-graded ALE-format task is ``tests/data/judge`` (tree and data, as ALE keeps them).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_ale.gateway.fake_upstream import FakeUpstream
from pytest_ale.gateway.judge import JUDGE_ENV, JudgeBooks, judging
from pytest_ale.gateway.meter import Budget
from pytest_ale.gateway.scripted import Script
from tests.fakes.gateways import gateways
from tests.test_harness import junit_properties

openai = pytest.importorskip("openai")

DATA = Path(__file__).parent / "data" / "judge"
REAL_KEY = "sk-REAL-judge-key-0123456789abcdef"
SUMMARY = "Otters hold hands while they sleep so that they do not drift apart."
#: the judge's script: 0.7 for a summary about otters holding hands, 0.1 for anything else
JUDGE_SCRIPT: dict[str, Any] = {
    "judge": {
        "judged_summary": [{"match": "hold hands", "text": '{"score": 0.7}'}, {"text": '{"score": 0.1}'}]
    }
}


@pytest.fixture
def make_gateway():
    yield from gateways(REAL_KEY)


@pytest.fixture
def judged(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The judge-graded tree at ``ale/tasks/...``, its data at ``ale-data/``; the host holds
    a real-looking OpenAI key (which must never reach the grader)."""
    shutil.copytree(DATA / "tree", pytester.path / "ale")
    shutil.copytree(DATA / "data", pytester.path / "ale-data")
    (pytester.path / "pytest.ini").write_text("[pytest]\n")
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    for var in ("OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return pytester.path


def script(folder: Path, data: dict[str, Any]) -> str:
    path = folder / "script.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "ale/tasks",
        "--ale-data",
        "ale-data",
        "-p",
        "no:cacheprovider",
        "--junitxml=junit.xml",
        *args,
        timeout=600,
    )


def record(pytester: pytest.Pytester) -> dict[str, Any]:
    (path,) = (pytester.path / "reports" / "runs").glob("*/results.jsonl")
    (line,) = path.read_text().splitlines()
    return json.loads(line)


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_judge_is_scripted_metered_apart_recorded_and_replayed(pytester: pytest.Pytester, judged: Path):
    cassettes = judged / "cassettes"
    scripted = script(judged, JUDGE_SCRIPT)
    result = run(
        pytester, "--ale-agent=oracle", "--ale-scripted-model", scripted, "--ale-record", str(cassettes)
    )
    result.assert_outcomes(failed=1)  # 0.7 is below the threshold of 1.0
    first = record(pytester)
    assert first["score"] == 0.7 and first["status"] == "failed", first
    assert first["judge_requests"] == 1 and first["judge_tokens_in"] > 0 and first["judge_tokens_out"] > 0
    assert first["input_tokens"] == first["output_tokens"] == 0  # the oracle asked no model
    summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
    (whole,) = [g for g in summary["groups"] if g["domain"] == "ALL"]
    assert whole["judge_requests"] == 1 and whole["cost_usd"] == 0.0  # the judge's, apart
    assert "judge $" in result.stdout.str()  # the table shows the judge's cost beside the agent's
    (props,) = junit_properties(pytester).values()
    assert (
        props["ale_judge_requests"] == "1" and int(props["ale_judge_tokens_in"]) == first["judge_tokens_in"]
    )
    assert int(props["ale_judge_tokens_out"]) == first["judge_tokens_out"] and "ale_judge_cost_usd" in props
    folder = Path(first["artifacts"])
    (event,) = [json.loads(line) for line in (folder / "judge.jsonl").read_text().splitlines()]
    assert (event["format"], event["model"], event["mode"], event["status"]) == (
        "openai-chat", "gpt-4o-mini", "scripted", 200,
    )  # fmt: skip
    assert json.loads((folder / "judge.json").read_text())["role"] == "judge"
    assert not (folder / "gateway.json").exists()  # the agent's books hold no judge
    (cassette,) = cassettes.glob("*.json")
    saved = json.loads(cassette.read_text())
    assert saved["exchanges"] == [] and len(saved["judge_exchanges"]) == 1
    assert REAL_KEY not in cassette.read_text()

    # replayed: no script, no key, an upstream nobody listens on; the same score
    shutil.rmtree(judged / "reports")
    os.environ.pop("OPENAI_API_KEY")
    dead = f"http://127.0.0.1:{dead_port()}"
    result = run(
        pytester, "--ale-agent=oracle", "--ale-replay", str(cassettes), "--ale-upstream-openai", dead
    )
    result.assert_outcomes(failed=1)
    again = record(pytester)
    assert again["score"] == 0.7 and again["judge_requests"] == 1, again
    assert again["judge_tokens_in"] == first["judge_tokens_in"]

    # a judge asked what its cassette does not hold: a replay error, not a score
    shutil.rmtree(judged / "reports")
    (judged / "ale-data" / "essays" / "judged_summary" / "base" / "reference" / "rubric.txt").write_text(
        "New."
    )
    result = run(pytester, "--ale-agent=oracle", "--ale-replay", str(cassettes))
    result.assert_outcomes(errors=1)
    diverged = record(pytester)
    assert (diverged["error_kind"], diverged["score"]) == ("replay", None), diverged
    assert "replay diverged" in diverged["error"]


def test_a_judge_whose_upstream_fails_is_an_infrastructure_error_not_a_zero(
    pytester: pytest.Pytester, judged: Path
):
    dead = f"http://127.0.0.1:{dead_port()}"
    result = run(pytester, "--ale-agent=oracle", "--ale-upstream-openai", dead, "--ale-upstream-retries", "0")
    result.assert_outcomes(errors=1)
    row = record(pytester)
    assert (row["status"], row["error_kind"], row["score"]) == ("error", "infrastructure", None), row
    assert "model gateway" in row["error"] and "unreachable" in row["error"]
    assert row["attempts"] == 2  # an infrastructure error: retried on a fresh sandbox
    assert row["judge_requests"] == 0  # the meter counts answers; none came
    events = (Path(row["artifacts"]) / "judge.jsonl").read_text()
    assert '"status": 502' in events and '"halt": "upstream_failure"' in events


def test_judging_points_the_clients_at_the_gateway_and_restores_the_environment(
    make_gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", REAL_KEY)
    for var in set(JUDGE_ENV) - {"OPENAI_API_KEY", "GEMINI_API_KEY"}:
        monkeypatch.delenv(var, raising=False)
    before = dict(os.environ)
    gateway = make_gateway(scripted=Path(script(tmp_path, JUDGE_SCRIPT)))
    books = JudgeBooks()
    with judging("t::judged", "judged_summary", 60, books, gateway=gateway):
        token = os.environ["OPENAI_API_KEY"]
        assert token.startswith("ale-trial-") and REAL_KEY not in os.environ.values()
        assert os.environ["OPENAI_API_BASE"] == os.environ["OPENAI_BASE_URL"] == gateway.host_url() + "/v1"
        assert os.environ["GOOGLE_API_KEY"] == os.environ["GEMINI_API_KEY"] == token
        assert os.environ["GOOGLE_GEMINI_BASE_URL"] == gateway.host_url()
        client = openai.OpenAI()  # from the SDK's own variables, as a grader's default client
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Otters hold hands."}]
        )
        assert answer.choices[0].message.content == '{"score": 0.7}'
    assert dict(os.environ) == before
    assert books.usage.requests == 1 and books.usage.input_tokens > 0
    assert books.summary is not None and books.summary["requests"] == 1
    with pytest.raises(openai.AuthenticationError):  # the judge's token dies with the grading
        dead = openai.OpenAI(api_key=token, base_url=gateway.host_url() + "/v1", max_retries=0)
        dead.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Again?"}])


def test_the_agents_usage_figures_exclude_the_judges(pytester: pytest.Pytester, judged: Path):
    if shutil.which("claude") is None or shutil.which("bwrap") is None:
        pytest.skip("claude or bubblewrap is not installed (bash .ci/harness.sh installs them)")
    turns = [{"shell": f"echo '{SUMMARY}' > output/summary.txt"}, {"text": "Done: output/summary.txt."}]
    scripted = script(judged, {"tasks": {"judged_summary": turns}, **JUDGE_SCRIPT})
    result = run(pytester, "--ale-agent=claude-code", "--ale-scripted-model", scripted)
    result.assert_outcomes(failed=1)
    row = record(pytester)
    assert row["score"] == 0.7, row
    folder = Path(row["artifacts"])
    agent = json.loads((folder / "gateway.json").read_text())
    judge = json.loads((folder / "judge.json").read_text())
    assert agent["requests"] >= 2 and judge["requests"] == 1
    assert (row["input_tokens"], row["output_tokens"]) == (agent["input_tokens"], agent["output_tokens"])
    assert (row["judge_tokens_in"], row["judge_tokens_out"]) == (
        judge["input_tokens"],
        judge["output_tokens"],
    )
    assert row["extra_properties"]["ale_model_requests"] == agent["requests"]
    agent_events = [json.loads(line) for line in (folder / "gateway.jsonl").read_text().splitlines()]
    assert sum(e.get("input_tokens", 0) for e in agent_events) == row["input_tokens"]
    assert {e["format"] for e in agent_events if "format" in e} == {"anthropic-messages"}  # no judge call
    (props,) = junit_properties(pytester).values()
    assert int(props["ale_input_tokens"]) == agent["input_tokens"] and props["ale_judge_requests"] == "1"


ASKED = "Otters hold hands."
#: (base URL variable, path, key header, key variable, body): how each vendor's client asks
GEMINI_CALL = (
    "GOOGLE_GEMINI_BASE_URL", "/v1beta/models/gemini-2.5-flash:generateContent",
    "x-goog-api-key", "GEMINI_API_KEY", {"contents": [{"role": "user", "parts": [{"text": ASKED}]}]},
)  # fmt: skip
ANTHROPIC_CALL = (
    "ANTHROPIC_BASE_URL", "/v1/messages", "x-api-key", "ANTHROPIC_API_KEY",
    {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": ASKED}]},
)  # fmt: skip


@pytest.mark.parametrize("call", [GEMINI_CALL, ANTHROPIC_CALL], ids=["gemini", "anthropic"])
def test_a_gemini_or_anthropic_judge_reaches_the_gateway_from_its_variables(
    make_gateway, tmp_path: Path, call
):
    base_var, path, header, key_var, body = call
    gateway = make_gateway(scripted=Path(script(tmp_path, JUDGE_SCRIPT)))
    books = JudgeBooks()
    with judging("t::judged", "judged_summary", 60, books, gateway=gateway):
        request = urllib.request.Request(
            os.environ[base_var] + path,
            data=json.dumps(body).encode(),
            headers={header: os.environ[key_var], "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
    assert '{\\"score\\": 0.7}' in text, text
    assert books.usage.requests == 1 and books.events[0]["status"] == 200


def test_gradings_in_threads_take_turns_with_the_environment(make_gateway, tmp_path: Path):
    """The environment is the process's: two gradings at once would see each other's token;
    the second waits until the first has put the environment back."""
    gateway = make_gateway(scripted=Path(script(tmp_path, JUDGE_SCRIPT)))
    inside, release, seen = threading.Event(), threading.Event(), []

    def first() -> None:
        with judging("t::one", "judged_summary", 60, JudgeBooks(), gateway=gateway):
            seen.append(("one", os.environ["OPENAI_API_KEY"]))
            inside.set()
            release.wait(10)
            seen.append(("one", os.environ["OPENAI_API_KEY"]))

    def second() -> None:
        with judging("t::two", "judged_summary", 60, JudgeBooks(), gateway=gateway):
            seen.append(("two", os.environ["OPENAI_API_KEY"]))

    one = threading.Thread(target=first)
    one.start()
    assert inside.wait(10)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.5)
    assert two.is_alive()  # waiting for the first grading's environment to be put back
    release.set()
    one.join(10)
    two.join(10)
    assert [who for who, _ in seen] == ["one", "one", "two"]
    assert seen[0][1] == seen[1][1] != seen[2][1]


def test_upstream_the_gateway_swaps_the_judges_token_for_the_real_key(
    pytester: pytest.Pytester, judged: Path
):
    fake = FakeUpstream(script=Script.model_validate(JUDGE_SCRIPT), key=REAL_KEY, judge_task="judged_summary")
    fake.start()
    try:
        cassettes = judged / "cassettes"
        result = run(
            pytester, "--ale-agent=oracle", "--ale-upstream-openai", fake.url, "--ale-record", str(cassettes)
        )
    finally:
        fake.stop()
    result.assert_outcomes(failed=1)
    row = record(pytester)
    assert row["score"] == 0.7 and row["judge_requests"] == 1, row
    assert fake.keys_seen == [REAL_KEY] and not fake.rejected_keys  # the grader held only its token
    (cassette,) = cassettes.glob("*.json")
    assert (
        REAL_KEY not in cassette.read_text() and len(json.loads(cassette.read_text())["judge_exchanges"]) == 1
    )


def test_the_agents_budget_neither_holds_nor_stops_the_judge(make_gateway, tmp_path: Path):
    gateway = make_gateway(scripted=Path(script(tmp_path, JUDGE_SCRIPT)), budget=Budget(tokens=1))
    books = JudgeBooks()
    with judging("t::judged", "judged_summary", 60, books, gateway=gateway):
        client = openai.OpenAI(max_retries=0)
        for _ in range(2):  # past the agent's one-token budget, and answered again
            answer = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Otters hold hands."}]
            )
            assert answer.choices[0].message.content == '{"score": 0.7}'
    assert books.usage.requests == 2 and books.usage.total > 1
    assert books.summary is not None and books.summary["budget_exceeded"] is None


NATIVE_JUDGED = """
from pathlib import Path

from openai import OpenAI

INSTRUCTION = "Do nothing; the judge decides."


def evaluate(output_dir: Path, reference_dir: Path, sandbox):
    client = OpenAI()  # the SDK's own OPENAI_API_KEY and OPENAI_BASE_URL
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Otters hold hands."}]
    )
    text = answer.choices[0].message.content
    return float(text.split(":")[1].strip(" }")), text
"""


def test_a_native_tasks_grader_asks_its_judge_through_the_gateway(pytester: pytest.Pytester, judged: Path):
    folder = judged / "tasks" / "demo" / "judged"
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(NATIVE_JUDGED)
    (folder / "task_card.json").write_text(json.dumps({"domain": "demo", "timeout": 60}))
    scripted = script(judged, {"judge": {"*": '{"score": 0.7}'}})
    result = pytester.runpytest_subprocess(
        "tasks", "-p", "no:cacheprovider", "--ale-agent=noop", "--ale-scripted-model", scripted, timeout=300
    )
    result.assert_outcomes(failed=1)
    row = record(pytester)
    assert row["score"] == 0.7 and row["judge_requests"] == 1 and row["input_tokens"] == 0, row
