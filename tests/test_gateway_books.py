"""Scores you can trust, the books part, over HTTP against loopback upstreams (the real
CLIs are ``test_harness_books.py``): what the gateway counts means the same for every
vendor, a run that fails keeps what it spent, and a gateway stop (a refused key, the
budget, an upstream failing or hanging) ends the agent's run promptly as the right kind
of result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_ale import trial as trial_engine
from pytest_ale.agents.base import Agent, AgentResult
from pytest_ale.agents.codex import CodexAgent
from pytest_ale.errors import InfrastructureError
from pytest_ale.gateway.config import GatewayConfig, RetryPolicy
from pytest_ale.gateway.fake_upstream import FakeUpstream
from pytest_ale.gateway.keys import Keys
from pytest_ale.gateway.meter import Budget, PriceTable
from pytest_ale.gateway.scripted import Script
from pytest_ale.gateway.server import Gateway
from pytest_ale.gateway.wire import Reply, Usage, WireFormat
from pytest_ale.gateway.wire_anthropic import AnthropicMessages
from pytest_ale.gateway.wire_gemini import GeminiGenerate
from pytest_ale.gateway.wire_lookup import formats
from pytest_ale.gateway.wire_openai import OpenAIChat, OpenAIResponses
from pytest_ale.outcome import TrialResult
from pytest_ale.trajectory import AgentInfo, validate_trajectory
from tests.fakes.gateways import gateways

REAL_KEY = "sk-REAL-books-key-0123456789abcdef"
SCRIPT = {"tasks": {"upper": {"match": "Upper-case", "turns": [{"shell": "true"}, {"text": "done"}]}}}
LAUNCHER = Path(__file__).parent.parent / "pytest_ale" / "gateway" / "launcher.py"


# -- helpers -------------------------------------------------------------------------------
def post(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def anthropic_call(gateway: Gateway, token: str, stream: bool = True) -> tuple[int, bytes]:
    body = {
        "model": "claude-sonnet-4-5",
        "stream": stream,
        "max_tokens": 100,
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "Upper-case the file"}],
    }
    return post(f"{gateway.tcp_url}/v1/messages", body, {"x-api-key": token})


@pytest.fixture
def make_gateway():
    yield from gateways(REAL_KEY)


@pytest.fixture
def upstream():
    started: list[FakeUpstream] = []

    def make(**kwargs: Any) -> FakeUpstream:
        kwargs.setdefault("key", REAL_KEY)
        fake = FakeUpstream(script=Script.model_validate(SCRIPT), **kwargs).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


def wait_for(check: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


# -- 6. one meaning of the token figures, from recorded wire payloads ------------------------
# One conversation as each vendor bills it, in tests/data/wire_usage/ (written to each
# API's documented response shape, JSON and SSE): a 21 812-token prompt of which 20 000
# came from the prompt cache, 345 tokens out (Anthropic also wrote 1 800 to the cache).
WIRE = Path(__file__).parent / "data" / "wire_usage"
RECORDED = {
    "anthropic.json": (AnthropicMessages, False),
    "anthropic.sse": (AnthropicMessages, True),
    "responses.json": (OpenAIResponses, False),
    "responses.sse": (OpenAIResponses, True),
    "chat.json": (OpenAIChat, False),
    "chat.sse": (OpenAIChat, True),
    "gemini.json": (GeminiGenerate, False),  # streamGenerateContent without alt=sse: an array
    "gemini.sse": (GeminiGenerate, True),
}
SAME_PROMPT = Usage(input_tokens=21812, output_tokens=345, cache_read_tokens=20000)


@pytest.mark.parametrize("name", list(RECORDED))
def test_input_tokens_are_the_whole_prompt_for_every_vendor(name: str):
    fmt, stream = RECORDED[name]
    usage = fmt.usage((WIRE / name).read_bytes(), stream)
    writes = 1800 if fmt is AnthropicMessages else 0  # only Anthropic reports cache writes
    assert usage == Usage(21812, 345, cache_read_tokens=20000, cache_write_tokens=writes)
    assert usage.total == 21812 + 345  # cached tokens are part of the prompt, counted once
    assert usage.uncached_input_tokens == 21812 - 20000 - writes


def test_cost_charges_each_part_of_the_prompt_at_its_own_price():
    prices = PriceTable.load()
    claude = AnthropicMessages.usage((WIRE / "anthropic.json").read_bytes(), False)
    sonnet = prices.lookup("claude-sonnet-4-5")
    assert sonnet is not None
    assert sonnet.cost(claude) == pytest.approx((12 * 3.0 + 20000 * 0.30 + 1800 * 3.75 + 345 * 15.0) / 1e6)
    gpt = prices.lookup("gpt-5")
    assert gpt is not None
    assert gpt.cost(SAME_PROMPT) == pytest.approx((1812 * 1.25 + 20000 * 0.125 + 345 * 10.0) / 1e6)


@pytest.mark.parametrize("fmt", formats(), ids=lambda f: f.name)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_what_a_format_renders_it_reads_back_the_same(fmt: type[WireFormat], stream: bool):
    writes = 300 if fmt is AnthropicMessages else 0
    usage = Usage(input_tokens=5000, output_tokens=70, cache_read_tokens=4000, cache_write_tokens=writes)
    _, body = fmt.render(Reply(text="hi"), "m", usage, stream)
    assert fmt.usage(body, stream) == usage


CALLS = {  # one request per wire format, as the harnesses send it
    "anthropic": ("/v1/messages", {"model": "claude-sonnet-4-5", "stream": True, "messages": []}),
    "responses": ("/v1/responses", {"model": "gpt-5", "stream": True, "input": "Upper-case it"}),
    "chat": ("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
    "gemini": ("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", {"contents": []}),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_the_meter_keeps_cache_reads_and_writes_apart(make_gateway, upstream, call: str):
    fake = upstream(cache_read=4000, cache_write=500)
    path, body = CALLS[call]
    provider = {"responses": "openai", "chat": "openai"}.get(call, call)
    gateway = make_gateway(upstreams={provider: fake.url})
    trial = gateway.open_trial("t::cache")
    for _ in range(2):
        status, _ = post(gateway.tcp_url + path, body, {"x-api-key": trial.token})
        assert status == 200
    gateway.close_trial(trial)
    summary = trial.summary()
    billed = fake.billed
    assert summary["input_tokens"] == billed.input_tokens > 2 * 4500  # cached tokens included
    assert summary["cache_read_tokens"] == billed.cache_read_tokens == 8000
    assert summary["cache_write_tokens"] == billed.cache_write_tokens == (1000 if call == "anthropic" else 0)
    assert summary["output_tokens"] == billed.output_tokens > 0


def test_junit_properties_carry_the_cache_figures():
    result = TrialResult("r", "t", "task", "demo", "a", "local", "v", 0, 1.0)
    agent = AgentResult(
        usage=Usage(input_tokens=9000, output_tokens=10, cache_read_tokens=8000, cache_write_tokens=700)
    )
    trial_engine._absorb_agent(result, agent)
    props = dict(result.properties())
    assert props["ale_input_tokens"] == 9000 and props["ale_output_tokens"] == 10
    assert props["ale_cache_read_tokens"] == 8000 and props["ale_cache_write_tokens"] == 700
    record = result.to_json()  # results.jsonl: the same flat fields as ever
    assert (record["input_tokens"], record["output_tokens"], record["cost_usd"]) == (9000, 10, 0.0)
    assert (record["cache_read_tokens"], record["cache_write_tokens"]) == (8000, 700)
    assert record["cache_tokens"] == 8700 and "usage" not in record  # the old sum, for older readers
    assert TrialResult.from_json(json.loads(json.dumps(record))) == result  # and back (the xdist controller)


# -- 3. an upstream failing or hanging costs a bounded time, then stops the trial ------------
def test_upstream_failing_for_good_gives_up_within_its_bound_and_stops_the_trial(make_gateway, upstream):
    fake = upstream(fail_after=0, fail_status=500, retry_after=0.4)
    retry = RetryPolicy(retries=100, base_s=0.05)  # the bound, not the retry count, ends it
    gateway = make_gateway(upstreams={"anthropic": fake.url}, retry=retry, stop_grace_s=0.2)
    stopped = threading.Event()
    trial = gateway.open_trial("t::500", on_stop=stopped.set, timeout_s=8)  # bound: 2 s
    began = time.monotonic()
    status, body = anthropic_call(gateway, trial.token)
    took = time.monotonic() - began
    assert status == 500 and b"fake upstream failing" in body
    assert 1.0 < took < 4, took
    assert stopped.wait(5), "the harness would retry the 500 for minutes: it must be stopped"
    failure = trial.upstream_failure or ""
    assert f"upstream anthropic ({fake.url}) answered HTTP 500" in failure
    assert "fake upstream failing with HTTP 500" in failure and "2 s bound" in failure
    sent = fake.failures_sent
    began = time.monotonic()
    status, body = anthropic_call(gateway, trial.token)  # the harness retrying: refused at once
    assert status == 503 and b"stopped this trial" in body and time.monotonic() - began < 1
    assert fake.failures_sent == sent
    gateway.close_trial(trial)
    assert trial.summary()["stopped"] and trial.halted == "upstream_failure"


def test_a_hung_upstream_gives_up_before_the_agent_timeout(make_gateway, upstream):
    fake = upstream(hang_after=0)
    gateway = make_gateway(upstreams={"anthropic": fake.url}, stop_grace_s=0.1)
    stopped = threading.Event()
    trial = gateway.open_trial("t::hang", on_stop=stopped.set, timeout_s=4)  # bound and silence: 1 s
    began = time.monotonic()
    status, _ = anthropic_call(gateway, trial.token)
    assert status == 504 and time.monotonic() - began < 3
    assert stopped.wait(5)
    assert f"upstream anthropic ({fake.url}) sent no answer for 1 s" in (trial.upstream_failure or "")
    gateway.close_trial(trial)


def test_an_upstream_silent_mid_answer_is_cut_and_what_it_billed_is_kept(make_gateway, upstream):
    fake = upstream(stall_after=0)  # headers and message_start (the prompt's tokens), then silence
    gateway = make_gateway(upstreams={"anthropic": fake.url}, stop_grace_s=0.1)
    stopped = threading.Event()
    trial = gateway.open_trial("t::stall", on_stop=stopped.set, timeout_s=4)
    began = time.monotonic()
    status, body = anthropic_call(gateway, trial.token)
    assert status == 200 and b"message_start" in body and time.monotonic() - began < 3
    assert stopped.wait(5)
    gateway.close_trial(trial)
    assert "stopped mid-answer (HTTP 200" in (trial.upstream_failure or "")
    assert trial.meter.usage.input_tokens == fake.billed.input_tokens > 0  # the prompt still counts


@pytest.mark.parametrize("timeout_s", [10, 60, 600, 3600, 86400])
def test_the_upstream_read_timeout_is_always_below_the_agent_timeout(timeout_s: float):
    policy = RetryPolicy()
    assert policy.read_timeout_for(timeout_s) <= policy.bound_s(timeout_s) < timeout_s
    assert policy.read_timeout_for(timeout_s) <= policy.read_timeout_s


def test_the_give_up_options_are_checked(pytester: pytest.Pytester):
    result = pytester.runpytest("--ale-upstream-give-up", "1.5")
    result.stderr.fnmatch_lines(["*--ale-upstream-give-up must be a share of the agent's timeout*"])
    result = pytester.runpytest("--ale-upstream-timeout", "0")
    result.stderr.fnmatch_lines(["*--ale-upstream-timeout must be a positive number*"])


# -- 1. a stop ends the run: refusals at once, and the launcher's own watch ----------------
def test_a_refused_key_is_not_sent_upstream_again(make_gateway, upstream):
    fake = upstream()  # insists on REAL_KEY
    gateway = make_gateway(upstreams={"anthropic": fake.url}, keys=Keys({"anthropic": "sk-wrong-123456"}, {}))
    trial = gateway.open_trial("t::401", timeout_s=60)
    assert anthropic_call(gateway, trial.token)[0] == 401
    for _ in range(3):  # Claude Code retries a 401
        assert anthropic_call(gateway, trial.token)[0] == 401
    gateway.close_trial(trial)
    assert fake.rejected_keys == ["sk-wrong-123456"]
    assert "ANTHROPIC_API_KEY" in (trial.config_error or "")


def run_launcher(gateway: Gateway, tmp_path: Path, command: str, token: str) -> subprocess.Popen[bytes]:
    spec = {
        "socket": gateway.socket_path,
        "argv": ["sh", "-c", command],
        "env": {"TOKEN": token, "BASE": "@ALE_BASE_URL@"},
        "log": str(tmp_path / "agent.jsonl"),
        "token": token,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, str(LAUNCHER), str(tmp_path / "spec.json")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


CLIENT = (
    "import json,os,urllib.request;"
    "body=json.dumps({'model':'claude-sonnet-4-5','max_tokens':9,"
    "'messages':[{'role':'user','content':'Upper-case the file'}]}).encode();"
    "req=urllib.request.Request(os.environ['BASE']+'/v1/messages',data=body,"
    "headers={'x-api-key':os.environ['TOKEN'],'content-type':'application/json'});"
    "print(urllib.request.urlopen(req).status)"
)


def test_the_launcher_ends_the_cli_when_the_gateway_stops_the_trial(make_gateway, tmp_path):
    """No kill_all here at all (``on_stop`` is None): the launcher's watch alone ends the
    CLI and what it started, so a stop works whatever the provider can kill."""
    script = tmp_path / "script.yaml"
    script.write_text(json.dumps(SCRIPT))
    gateway = make_gateway(scripted=script, budget=Budget(tokens=1), stop_grace_s=0.2)
    trial = gateway.open_trial("t::launcher", task="upper")
    pidfile = tmp_path / "sleep.pid"
    command = f'{sys.executable} -c "{CLIENT}"; sleep 300 & echo $! > {pidfile}; wait'
    began = time.monotonic()
    proc = run_launcher(gateway, tmp_path, command, trial.token)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    gateway.close_trial(trial)
    assert time.monotonic() - began < 15
    assert proc.returncode == 125, err.decode()
    assert b"the model gateway stopped the agent: " in err and b"exceeded the budget of 1" in err
    assert out.strip() == b"200"  # the one answer came through before the stop
    pid = int(pidfile.read_text())
    assert wait_for(lambda: not _alive(pid), 5), "the CLI's own child must die with it"
    assert trial.stopped and any(e.get("stop") == "budget_exceeded" for e in trial.events)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_stop_watch_hangs_up_when_the_trial_closes(make_gateway, tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(json.dumps(SCRIPT))
    gateway = make_gateway(scripted=script)
    trial = gateway.open_trial("t::watch")
    threading.Timer(0.5, gateway.close_trial, args=(trial,)).start()
    request = urllib.request.Request(f"{gateway.tcp_url}/ale/stop", headers={"x-api-key": trial.token})
    began = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    assert 0.4 < time.monotonic() - began < 3
    closed = urllib.request.Request(f"{gateway.tcp_url}/ale/stop", headers={"x-api-key": trial.token})
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(closed, timeout=10)


def test_a_stop_watch_never_holds_up_the_gateways_shutdown(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text(json.dumps(SCRIPT))
    gateway = Gateway(GatewayConfig(tcp=True, scripted=script), keys=Keys({}, {})).start()
    trial = gateway.open_trial("t::still-open")  # e.g. Ctrl-C while the agent runs
    answered: list[int] = []
    request = urllib.request.Request(f"{gateway.tcp_url}/ale/stop", headers={"x-api-key": trial.token})

    def watch() -> None:
        with urllib.request.urlopen(request, timeout=30) as response:
            answered.append(response.status)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.5)
    began = time.monotonic()
    gateway.stop()
    watcher.join(10)
    assert time.monotonic() - began < 5 and answered == [204]


# -- 2. a run that raises keeps its books ----------------------------------------------------
class SpendThenFail(Agent):
    name = "spend-then-fail"

    def run(self, sandbox: Any, context: Any) -> AgentResult:
        spent = AgentResult(
            exit_code=1,
            log="worked a while",
            usage=Usage(
                input_tokens=1234, output_tokens=56, cache_read_tokens=1000, cost_usd=0.02, requests=3
            ),
            properties={"ale_model_requests": 3},
        )
        self.keep_partial(sandbox.spec.trial_id, spent)
        raise InfrastructureError("model gateway: upstream anthropic answered HTTP 500")

    def trajectory(self, run: AgentResult, instruction: str, session_id: str) -> dict[str, Any]:
        return {
            "schema_version": "ATIF-v1.4",
            "session_id": session_id,
            "agent": {"name": self.name},
            "steps": [{"step_id": 1, "source": "user", "message": instruction}],
        }


def test_an_error_trial_keeps_its_spend_and_writes_its_trajectory(tmp_path: Path):
    artifacts = tmp_path / "t1"
    task = SimpleNamespace(name="demo/upper", data=lambda variant: SimpleNamespace(solution=None))
    attempt = SimpleNamespace(instruction="Upper-case the file")
    agent = SpendThenFail()
    plan = SimpleNamespace(
        task=task, variant="v", timeout_s=60, artifacts=artifacts, agent=agent, test_id="t1", on_phase=None
    )
    result = TrialResult("r", "t1", "demo/upper", "demo", agent.label, "local", "v", 0, 1.0)
    sandbox = SimpleNamespace(workdir="/w", spec=SimpleNamespace(trial_id="t1"))
    with pytest.raises(InfrastructureError):
        trial_engine._run_agent(plan, sandbox, attempt, result.phases, result)  # type: ignore[arg-type]
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (1234, 56, 1000)
    assert usage.cost_usd == 0.02 and usage.requests == 3
    assert result.extra_properties["ale_model_requests"] == 3
    assert (artifacts / "agent.log").read_text() == "worked a while"
    assert (
        json.loads((artifacts / "trajectory.json").read_text())["steps"][0]["message"]
        == "Upper-case the file"
    )
    assert agent.partial_result("t1") is None  # handed over once


# -- 5. Codex error events keep their text -----------------------------------------------------
def test_codex_error_events_keep_their_message():
    log = "\n".join(
        [
            '{"type":"thread.started","thread_id":"th_1"}',
            '{"type":"turn.started"}',
            '{"type":"error","message":"Reconnecting... 1/5 (stream disconnected before completion)"}',
            '{"type":"turn.failed","error":{"message":"unexpected status 500 Internal Server Error"}}',
        ]
    )
    trajectory = CodexAgent().convert(log, "s", AgentInfo(name="codex"), "do it")
    validate_trajectory(trajectory.model_dump(exclude_none=True))
    messages = [s.message for s in trajectory.steps if s.source == "system"]
    assert messages == [
        "codex error: Reconnecting... 1/5 (stream disconnected before completion)",
        "codex turn.failed: unexpected status 500 Internal Server Error",
    ]
