"""Scores you can trust, the books part: what the gateway counts means the same for every
vendor, a run that fails keeps what it spent, and a gateway stop (a refused key, the
budget, an upstream failing or hanging) ends the agent's run promptly as the right kind
of result: over HTTP against loopback upstreams, then with the real CLIs on local."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from pytest_ale import trial as trial_engine
from pytest_ale.agents.base import Agent, AgentResult, Usage
from pytest_ale.agents.codex import CodexAgent
from pytest_ale.errors import InfrastructureError
from pytest_ale.gateway.config import GatewayConfig, RetryPolicy
from pytest_ale.gateway.fake_upstream import FakeUpstream
from pytest_ale.gateway.keys import Keys
from pytest_ale.gateway.meter import Budget, PriceTable
from pytest_ale.gateway.scripted import Script
from pytest_ale.gateway.server import Gateway
from pytest_ale.gateway.wire import Reply, TokenUsage, WireFormat, formats, sse
from pytest_ale.gateway.wire_anthropic import AnthropicMessages
from pytest_ale.gateway.wire_gemini import GeminiGenerate
from pytest_ale.gateway.wire_openai import OpenAIChat, OpenAIResponses
from pytest_ale.outcome import TrialResult
from pytest_ale.trajectory import AgentInfo, validate_trajectory

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
    started: list[Gateway] = []

    def make(**kwargs: Any) -> Gateway:
        keys = kwargs.pop("keys", Keys({"anthropic": REAL_KEY, "openai": REAL_KEY, "gemini": REAL_KEY}, {}))
        gateway = Gateway(GatewayConfig(tcp=True, **kwargs), keys=keys).start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


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
# One conversation as each vendor bills it: a 21 812-token prompt of which 20 000 came from
# the prompt cache, 345 tokens out (Anthropic also wrote 1 800 prompt tokens to the cache).
ANTHROPIC_JSON = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Done."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 1800,
        "cache_read_input_tokens": 20000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1800, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 345,
        "service_tier": "standard",
    },
}
ANTHROPIC_START = {
    "type": "message_start",
    "message": {
        **ANTHROPIC_JSON,
        "content": [],
        "stop_reason": None,
        "usage": {**ANTHROPIC_JSON["usage"], "output_tokens": 1},
    },
}
ANTHROPIC_SSE = sse(
    [
        ("message_start", ANTHROPIC_START),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Done."}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 345},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
)
RESPONSES_USAGE = {
    "input_tokens": 21812,
    "input_tokens_details": {"cached_tokens": 20000},
    "output_tokens": 345,
    "output_tokens_details": {"reasoning_tokens": 256},
    "total_tokens": 22157,
}
RESPONSE = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "status": "completed",
    "model": "gpt-5-2025-08-07",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Done."}],
        }
    ],
    "usage": RESPONSES_USAGE,
}
RESPONSES_SSE = sse(
    [
        ("response.created", {"type": "response.created", "response": {**RESPONSE, "usage": None}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Done."}),
        ("response.completed", {"type": "response.completed", "response": RESPONSE}),
    ]
)
CHAT_USAGE = {
    "prompt_tokens": 21812,
    "completion_tokens": 345,
    "total_tokens": 22157,
    "prompt_tokens_details": {"cached_tokens": 20000, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0},
}
CHAT_JSON = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}],
    "usage": CHAT_USAGE,
}
CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06"}
CHAT_SSE = sse(
    [
        (None, {**CHUNK, "choices": [{"index": 0, "delta": {"content": "Done."}}], "usage": None}),
        (None, {**CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None}),
        (None, {**CHUNK, "choices": [], "usage": CHAT_USAGE}),
        (None, "[DONE]"),
    ]
)
GEMINI_USAGE = {
    "promptTokenCount": 21812,
    "candidatesTokenCount": 89,
    "thoughtsTokenCount": 256,
    "totalTokenCount": 22157,
    "cachedContentTokenCount": 20000,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 21812}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 20000}],
}
GEMINI_CHUNKS = [
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Do"}]}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 21812, "totalTokenCount": 21812},
        "modelVersion": "gemini-2.5-pro",
    },
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "ne."}]}, "finishReason": "STOP"}],
        "usageMetadata": GEMINI_USAGE,
        "modelVersion": "gemini-2.5-pro",
    },
]
SAME_PROMPT = TokenUsage(input_tokens=21812, output_tokens=345, cache_read_tokens=20000)
RECORDED = {
    "anthropic-json": (AnthropicMessages, json.dumps(ANTHROPIC_JSON).encode(), False),
    "anthropic-sse": (AnthropicMessages, ANTHROPIC_SSE, True),
    "responses-json": (OpenAIResponses, json.dumps(RESPONSE).encode(), False),
    "responses-sse": (OpenAIResponses, RESPONSES_SSE, True),
    "chat-json": (OpenAIChat, json.dumps(CHAT_JSON).encode(), False),
    "chat-sse": (OpenAIChat, CHAT_SSE, True),
    "gemini-array": (GeminiGenerate, json.dumps(GEMINI_CHUNKS).encode(), False),
    "gemini-sse": (GeminiGenerate, sse([(None, c) for c in GEMINI_CHUNKS]), True),
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_input_tokens_are_the_whole_prompt_for_every_vendor(name: str):
    fmt, body, stream = RECORDED[name]
    usage = fmt.usage(body, stream)
    writes = 1800 if fmt is AnthropicMessages else 0  # only Anthropic reports cache writes
    assert usage == TokenUsage(21812, 345, cache_read_tokens=20000, cache_write_tokens=writes)
    assert usage.total == 21812 + 345  # cached tokens are part of the prompt, counted once
    assert usage.uncached_input_tokens == 21812 - 20000 - writes


def test_cost_charges_each_part_of_the_prompt_at_its_own_price():
    prices = PriceTable.load()
    claude = AnthropicMessages.usage(json.dumps(ANTHROPIC_JSON).encode(), False)
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
    usage = TokenUsage(input_tokens=5000, output_tokens=70, cache_read_tokens=4000, cache_write_tokens=writes)
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
    assert result.cache_tokens == 8700  # the old sum, for older readers


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


class StallingUpstream:
    """Answers one Anthropic stream: its first event, then silence."""

    def __init__(self) -> None:
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._release: asyncio.Event | None = None

    def start(self) -> StallingUpstream:
        ready: Future[str] = Future()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            ready.set_result(self._loop.run_until_complete(self._startup()))
            self._loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        self.url = ready.result(timeout=30)
        return self

    async def _startup(self) -> str:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        out = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await out.prepare(request)
        await out.write(sse([("message_start", ANTHROPIC_START)]))
        assert self._release is not None
        await self._release.wait()
        return out

    def stop(self) -> None:
        assert self._release is not None
        self._loop.call_soon_threadsafe(self._release.set)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def test_an_upstream_silent_mid_answer_is_cut_and_what_it_billed_is_kept(make_gateway):
    stalling = StallingUpstream().start()
    try:
        gateway = make_gateway(upstreams={"anthropic": stalling.url}, stop_grace_s=0.1)
        stopped = threading.Event()
        trial = gateway.open_trial("t::stall", on_stop=stopped.set, timeout_s=4)
        began = time.monotonic()
        status, body = anthropic_call(gateway, trial.token)
        assert status == 200 and b"message_start" in body and time.monotonic() - began < 3
        assert stopped.wait(5)
        gateway.close_trial(trial)
    finally:
        stalling.stop()
    assert "stopped mid-answer" in (trial.upstream_failure or "")
    assert trial.meter.usage.input_tokens == 21812  # the prompt it was billed for still counts


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
            trajectory={
                "schema_version": "ATIF-v1.4",
                "session_id": "s",
                "agent": {"name": self.name},
                "steps": [{"step_id": 1, "source": "user", "message": context.instruction}],
            },
            properties={"ale_model_requests": 3},
        )
        self.keep_partial(sandbox.spec.trial_id, spent)
        raise InfrastructureError("model gateway: upstream anthropic answered HTTP 500")


def test_an_error_trial_keeps_its_spend_and_writes_its_trajectory(tmp_path: Path):
    artifacts = tmp_path / "t1"
    task = SimpleNamespace(
        name="demo/upper",
        instruction=lambda variant: "Upper-case the file",
        data=lambda variant: SimpleNamespace(solution=None),
    )
    agent = SpendThenFail()
    plan = SimpleNamespace(
        task=task, variant="v", timeout_s=60, artifacts=artifacts, agent=agent, test_id="t1", on_phase=None
    )
    result = TrialResult("r", "t1", "demo/upper", "demo", agent.label, "local", "v", 0, 1.0)
    sandbox = SimpleNamespace(workdir="/w", spec=SimpleNamespace(trial_id="t1"))
    with pytest.raises(InfrastructureError):
        trial_engine._run_agent(plan, sandbox, result.phases, result)  # type: ignore[arg-type]
    assert (result.input_tokens, result.output_tokens, result.cache_read_tokens) == (1234, 56, 1000)
    assert result.cost_usd == 0.02 and result.extra_properties["ale_model_requests"] == 3
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


# -- the real CLIs on local, through the gateway -------------------------------------------------
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
    from tests.test_harness import write_suite

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
    from tests.test_harness import junit_properties

    (found,) = junit_properties(pytester).values()
    return found


def fake_upstream(**kwargs: Any) -> FakeUpstream:
    from tests.test_harness import _script

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
    assert record["error_kind"] == "config"
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


@pytest.mark.xfail(
    strict=True, reason="trial._attempt must pass its TrialResult to _run_agent (the lead's one-line change)"
)
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
