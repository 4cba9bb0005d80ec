"""The model gateway over real HTTP: wire formats, scripted model, key swap, metering,
budgets, rate-limit retries, record/replay and the in-sandbox relay (no CLIs here)."""

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
from typing import Any

import pytest

from pytest_ale.errors import ConfigError
from pytest_ale.gateway.config import RetryPolicy
from pytest_ale.gateway.fake_upstream import FakeUpstream
from pytest_ale.gateway.keys import Keys, Redactor, load_keys
from pytest_ale.gateway.meter import Budget, PriceTable
from pytest_ale.gateway.scripted import Script, ScriptedModel
from pytest_ale.gateway.server import Gateway
from pytest_ale.gateway.upstream import retry_delay
from pytest_ale.gateway.wire import sse_data
from pytest_ale.gateway.wire_anthropic import AnthropicMessages
from pytest_ale.gateway.wire_gemini import GeminiGenerate
from pytest_ale.gateway.wire_openai import OpenAIChat, OpenAIResponses
from tests.fakes.gateways import gateways

REAL_KEY = "sk-ant-api03-REALKEY-do-not-leak-0123456789"
SCRIPT = {
    "tasks": {
        "upper": {
            "match": "Upper-case",
            "turns": [
                {"shell": "tr a-z A-Z < in > out", "say": "working"},
                {"text": "all done"},
            ],
        }
    }
}
SHELL = {"type": "object", "properties": {"command": {"type": "string"}}}


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("content-type", "")


@pytest.fixture
def script_file(tmp_path: Path) -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(json.dumps(SCRIPT))
    return path


@pytest.fixture
def make_gateway():
    yield from gateways(REAL_KEY)


@pytest.fixture
def fake_upstream():
    started: list[FakeUpstream] = []

    def make(**kwargs: Any) -> FakeUpstream:
        upstream = FakeUpstream(script=Script.model_validate(SCRIPT), key=REAL_KEY, **kwargs).start()
        started.append(upstream)
        return upstream

    yield make
    for upstream in started:
        upstream.stop()


def anthropic_request(history: list[dict[str, Any]] | None = None, stream: bool = True) -> dict[str, Any]:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Upper-case the file"}]}]
    return {
        "model": "claude-sonnet-4-5",
        "stream": stream,
        "max_tokens": 100,
        "tools": [{"name": "Bash", "input_schema": SHELL}, {"name": "Read", "input_schema": {}}],
        "messages": messages + (history or []),
    }


# -- scripted model, every wire format --------------------------------------------------
def test_scripted_anthropic_stream_plays_turns_from_the_conversation(make_gateway, script_file):
    gateway = make_gateway(scripted=script_file)
    trial = gateway.open_trial("t::upper[a]", task="upper")
    url = f"{gateway.tcp_url}/v1/messages?beta=true"
    status, body, ctype = post(url, anthropic_request(), {"x-api-key": trial.token})
    assert status == 200 and ctype.startswith("text/event-stream")
    events = list(sse_data(body))
    assert next(e["type"] for e in events) == "message_start" and events[-1]["type"] == "message_stop"
    call = next(e for e in events if e.get("content_block", {}).get("type") == "tool_use")["content_block"]
    arguments = json.loads(
        next(e for e in events if e.get("delta", {}).get("type") == "input_json_delta")["delta"][
            "partial_json"
        ]
    )
    assert call["name"] == "Bash" and arguments["command"] == "tr a-z A-Z < in > out"
    history = [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": call["id"], "name": "Bash", "input": arguments}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": ""}]},
    ]
    status, body, _ = post(url, anthropic_request(history, stream=False), {"x-api-key": trial.token})
    message = json.loads(body)
    assert status == 200 and message["content"] == [{"type": "text", "text": "all done"}]
    assert message["stop_reason"] == "end_turn"
    gateway.close_trial(trial)
    assert trial.meter.usage.requests == 2
    assert trial.meter.usage.input_tokens > 0 and trial.meter.usage.output_tokens > 0
    assert trial.meter.usage.cost_usd > 0  # claude-sonnet-4* is priced in the built-in table
    assert [e["status"] for e in trial.events] == [200, 200]


def test_scripted_openai_responses_and_chat(make_gateway, script_file):
    gateway = make_gateway(scripted=script_file)
    trial = gateway.open_trial("t::upper[o]", task="upper")
    auth = {"authorization": f"Bearer {trial.token}"}
    tools = [{"type": "function", "name": "exec_command", "parameters": {}}]
    request = {
        "model": "gpt-5.5",
        "stream": True,
        "tools": tools,
        "input": [{"type": "message", "role": "user", "content": "go"}],
    }
    status, body, _ = post(f"{gateway.tcp_url}/v1/responses", request, auth)
    events = list(sse_data(body))
    assert status == 200 and events[-1]["type"] == "response.completed"
    call = next(
        e["item"]
        for e in events
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"
    )
    assert call["name"] == "exec_command" and json.loads(call["arguments"]) == {
        "cmd": "tr a-z A-Z < in > out"
    }
    assert OpenAIResponses.usage(body, True).output_tokens > 0

    chat_tools = [{"type": "function", "function": {"name": "bash", "parameters": SHELL}}]
    chat = {"model": "gpt-4o", "tools": chat_tools, "messages": [{"role": "user", "content": "go"}]}
    status, body, _ = post(f"{gateway.tcp_url}/v1/chat/completions", chat, auth)
    choice = json.loads(body)["choices"][0]
    assert status == 200 and choice["finish_reason"] == "tool_calls"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "command": "tr a-z A-Z < in > out"
    }
    status, body, _ = post(f"{gateway.tcp_url}/v1/chat/completions", {**chat, "stream": True}, auth)
    assert body.rstrip().endswith(b"data: [DONE]") and OpenAIChat.usage(body, True).output_tokens > 0
    gateway.close_trial(trial)


def test_scripted_gemini_stream_and_schema_side_request(make_gateway, script_file):
    gateway = make_gateway(scripted=script_file)
    trial = gateway.open_trial("t::upper[g]", task="upper")
    tools = [{"functionDeclarations": [{"name": "run_shell_command", "parametersJsonSchema": SHELL}]}]
    request = {"contents": [{"role": "user", "parts": [{"text": "go"}]}], "tools": tools}
    url = f"{gateway.tcp_url}/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    status, body, _ = post(url, request, {"x-goog-api-key": trial.token})
    chunk = next(sse_data(body))
    part = chunk["candidates"][0]["content"]["parts"][1]
    assert status == 200 and part["functionCall"]["name"] == "run_shell_command"
    assert GeminiGenerate.usage(body, True).input_tokens > 0
    schema = {"type": "object", "properties": {"next_speaker": {"type": "string", "enum": ["user", "model"]}}}
    check = {"contents": request["contents"], "generationConfig": {"responseJsonSchema": schema}}
    status, body, _ = post(
        f"{gateway.tcp_url}/v1beta/models/gemini-2.5-flash:generateContent",
        check,
        {"x-goog-api-key": trial.token},
    )
    text = json.loads(body)["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(text) == {"next_speaker": "user"}
    gateway.close_trial(trial)


def test_unknown_token_and_path_are_refused(make_gateway, script_file):
    gateway = make_gateway(scripted=script_file)
    status, body, _ = post(
        f"{gateway.tcp_url}/v1/messages", anthropic_request(), {"x-api-key": "ale-trial-nope"}
    )
    assert status == 401 and b"unknown" in body
    trial = gateway.open_trial("t::x", task="upper")
    status, _, _ = post(f"{gateway.tcp_url}/v1/embeddings", {}, {"x-api-key": trial.token})
    assert status == 404
    gateway.close_trial(trial)
    status, _, _ = post(f"{gateway.tcp_url}/v1/messages", anthropic_request(), {"x-api-key": trial.token})
    assert status == 401  # a closed trial's token is dead


# -- upstream: key swap, metering, retries, budget ------------------------------------------
def test_upstream_gets_the_real_key_and_rate_limits_are_retried(make_gateway, fake_upstream):
    upstream = fake_upstream(fail_first=2, retry_after=0.3)
    gateway = make_gateway(upstreams={"anthropic": upstream.url}, retry=RetryPolicy(retries=3, base_s=0.01))
    trial = gateway.open_trial("t::upper[up]", task="upper")
    started = time.monotonic()
    status, body, _ = post(f"{gateway.tcp_url}/v1/messages", anthropic_request(), {"x-api-key": trial.token})
    assert status == 200 and b"tool_use" in body
    assert time.monotonic() - started >= 0.6  # two retry-after waits honoured
    assert upstream.failures_sent == 2 and upstream.requests == 1 and upstream.rejected_keys == []
    gateway.close_trial(trial)
    assert trial.rate_limit_retries == 2 and trial.upstream_failure is None
    assert [e.get("retry") for e in trial.events[:2]] == [429, 429]
    assert trial.meter.usage.output_tokens > 0 and trial.meter.usage.cost_usd > 0


def test_upstream_that_keeps_failing_is_an_upstream_failure(make_gateway, fake_upstream):
    upstream = fake_upstream(fail_first=100, fail_status=503, retry_after=0)
    gateway = make_gateway(upstreams={"anthropic": upstream.url}, retry=RetryPolicy(retries=2, base_s=0.01))
    trial = gateway.open_trial("t::fail")
    status, _, _ = post(f"{gateway.tcp_url}/v1/messages", anthropic_request(), {"x-api-key": trial.token})
    gateway.close_trial(trial)
    assert status == 503 and upstream.failures_sent == 3
    assert trial.upstream_failure and "503" in trial.upstream_failure


def openai_call(gateway: Gateway, trial) -> int:
    status, _, _ = post(
        f"{gateway.tcp_url}/v1/responses",
        {"model": "gpt-5", "input": "hi"},
        {"authorization": f"Bearer {trial.token}"},
    )
    return status


def test_missing_key_for_the_vendor_api_is_a_config_error_before_any_call(make_gateway):
    gateway = make_gateway(keys=Keys({}, {}))  # default upstreams: the vendors' APIs
    assert "OPENAI_API_KEY" in (gateway.missing_key("openai") or "")
    trial = gateway.open_trial("t::nokey")
    assert openai_call(gateway, trial) == 401 and "OPENAI_API_KEY" in (trial.config_error or "")


def test_an_upstream_of_ones_own_needs_no_key_and_never_sees_the_trial_token(make_gateway, fake_upstream):
    upstream = FakeUpstream(script=Script.model_validate(SCRIPT), key=None).start()
    try:
        gateway = make_gateway(upstreams={"openai": upstream.url}, keys=Keys({}, {}))
        assert gateway.missing_key("openai") is None
        trial = gateway.open_trial("t::local-model")
        assert openai_call(gateway, trial) == 200
        gateway.close_trial(trial)
        assert upstream.keys_seen == [""] and trial.config_error is None
    finally:
        upstream.stop()


@pytest.mark.parametrize("has_key", [True, False], ids=["wrong-key", "no-key"])
def test_an_upstream_refusing_the_key_stops_the_trial_as_a_config_error(make_gateway, fake_upstream, has_key):
    upstream = fake_upstream()  # insists on REAL_KEY
    keys = Keys({"openai": "sk-wrong-0123456789"}, {}) if has_key else Keys({}, {})
    gateway = make_gateway(upstreams={"openai": upstream.url}, keys=keys, stop_grace_s=0)
    stopped = threading.Event()
    trial = gateway.open_trial("t::badkey", on_stop=stopped.set)
    assert openai_call(gateway, trial) == 401
    assert stopped.wait(10), "the harness would retry a 401 for minutes: the trial must be stopped"
    assert "OPENAI_API_KEY" in (trial.config_error or "") and upstream.requests == 0
    assert upstream.rejected_keys == (["sk-wrong-0123456789"] if has_key else [""])


def test_budget_exceeded_refuses_and_stops_the_trial(make_gateway, script_file):
    gateway = make_gateway(scripted=script_file, budget=Budget(tokens=10), stop_grace_s=0.1)
    stopped: list[bool] = []
    trial = gateway.open_trial("t::budget", task="upper", on_stop=lambda: stopped.append(True))
    url = f"{gateway.tcp_url}/v1/messages"
    assert post(url, anthropic_request(), {"x-api-key": trial.token})[0] == 200
    status, body, _ = post(url, anthropic_request(), {"x-api-key": trial.token})
    assert status == 402 and b"budget" in body
    deadline = time.monotonic() + 5
    while not stopped and time.monotonic() < deadline:
        time.sleep(0.05)
    gateway.close_trial(trial)
    assert stopped and "exceeded the budget of 10" in (trial.budget_exceeded or "")
    assert trial.meter.usage.requests == 1


# -- record / replay ------------------------------------------------------------------------
def test_record_then_replay_answers_the_same_and_diverging_is_a_diff(make_gateway, fake_upstream, tmp_path):
    upstream = fake_upstream()
    cassettes = tmp_path / "cassettes"
    recorder = make_gateway(upstreams={"anthropic": upstream.url}, record=cassettes)
    trial = recorder.open_trial("tasks/x/main.py::upper[claude]", task="upper")
    url = f"{recorder.tcp_url}/v1/messages"
    _, recorded, _ = post(url, anthropic_request(), {"x-api-key": trial.token})
    recorder.close_trial(trial)
    saved = list(cassettes.glob("*.json"))
    assert len(saved) == 1 and REAL_KEY not in saved[0].read_text()

    player = make_gateway(replay=cassettes, keys=Keys({}, {}), upstreams={"anthropic": "http://127.0.0.1:9"})
    trial = player.open_trial("tasks/x/main.py::upper[claude]", task="upper")
    status, replayed, _ = post(
        f"{player.tcp_url}/v1/messages", anthropic_request(), {"x-api-key": trial.token}
    )
    assert status == 200 and replayed == recorded and upstream.requests == 1, replayed
    other = anthropic_request()
    other["messages"][0]["content"][0]["text"] = "Lower-case the file"
    status, _body, _ = post(f"{player.tcp_url}/v1/messages", other, {"x-api-key": trial.token})
    player.close_trial(trial)
    assert status == 400
    diff = trial.divergence or ""
    assert '-   "text": "Upper-case the file"' in diff and '+   "text": "Lower-case the file"' in diff
    with pytest.raises(ConfigError, match="record it first"):
        player.open_trial("never recorded")


# -- keys, redaction, prices, retry delays, script validation --------------------------------
def test_keys_from_dotenv_and_redaction(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"ANTHROPIC_API_KEY={REAL_KEY}\nGEMINI_API_KEY=AIzaSyFAKEFAKEFAKE123\n")
    keys = load_keys(env_file, environ={"OPENAI_API_KEY": "sk-proj-abcdefghijkl", "HOME": "/root"})
    assert keys.key("anthropic") == REAL_KEY and keys.key("openai") == "sk-proj-abcdefghijkl"
    assert keys.key("gemini") == "AIzaSyFAKEFAKEFAKE123"
    redact = Redactor(keys.secrets)
    text = redact(f"x-api-key: {REAL_KEY} and sk-proj-abcdefghijkl, HOME=/root")
    assert REAL_KEY not in text and "sk-proj-abcdefghijkl" not in text and "/root" in text
    assert "[REDACTED:ANTHROPIC_API_KEY]" in text
    with pytest.raises(ConfigError, match="does not exist"):
        load_keys(tmp_path / "missing.env")


def test_price_table_globs_and_extension(tmp_path):
    prices = PriceTable.load()
    assert prices.lookup("claude-sonnet-4-5-20250929").output == 15.0
    assert prices.lookup("gpt-5-mini").input == 0.25  # longest glob wins over gpt-5*
    assert prices.lookup("my-local-model") is None
    extra = tmp_path / "prices.yaml"
    extra.write_text("my-local-model: {input: 1.0, output: 2.0}\n")
    assert PriceTable.load(extra).lookup("my-local-model").output == 2.0
    extra.write_text("bad: {input: cheap}\n")
    with pytest.raises(ConfigError, match=r"prices\.yaml"):
        PriceTable.load(extra)


def test_retry_delay_honours_the_server():
    policy = RetryPolicy(base_s=1.0, max_wait_s=30)
    assert retry_delay({"retry-after": "7"}, 1, policy) == 7
    assert retry_delay({"retry-after-ms": "250"}, 1, policy) == 0.25
    assert retry_delay({"retry-after": "3600"}, 1, policy) == 30
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    assert 3 <= retry_delay({"retry-after": when}, 1, policy) <= 5
    assert 0.75 * 4 <= retry_delay({}, 3, policy) <= 1.25 * 4


def test_bad_scripts_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("tasks:\n  t:\n    - {text: early}\n    - {shell: late}\n")
    with pytest.raises(ConfigError, match=r"(?s)bad\.yaml.*only the last turn"):
        ScriptedModel.load(path)
    path.write_text("tasks:\n  t:\n    - {shell: a, text: b}\n")
    with pytest.raises(ConfigError, match="exactly one"):
        ScriptedModel.load(path)


def test_scripted_model_without_a_shell_tool_says_so():
    model = ScriptedModel(Script.model_validate(SCRIPT))
    body = anthropic_request()
    body["tools"] = [{"name": "Read", "input_schema": {}}]
    reply = model.answer(AnthropicMessages, body, "upper")
    assert not reply.calls and "no shell tool" in reply.text


# -- the in-sandbox launcher / relay ---------------------------------------------------------
def test_launcher_relays_to_the_socket_and_fills_the_base_url(make_gateway, script_file, tmp_path):
    gateway = make_gateway(scripted=script_file)
    trial = gateway.open_trial("t::relay", task="upper")
    client = (
        "import json,os,sys,urllib.request\n"
        "cfg=json.load(open(os.path.expanduser('~/.cfg/c.json')))\n"
        "req=urllib.request.Request(cfg['url']+'/v1/messages',data=sys.argv[1].encode(),"
        "headers={'x-api-key':os.environ['TOKEN'],'content-type':'application/json'})\n"
        "print(urllib.request.urlopen(req).read().decode())\n"
    )
    spec = {
        "socket": gateway.socket_path,
        "argv": [sys.executable, "-c", client, json.dumps(anthropic_request(stream=False))],
        "env": {"TOKEN": trial.token, "WHERE": "~/x"},
        "files": {"~/.cfg/c.json": json.dumps({"url": "@ALE_BASE_URL@"})},
        "log": str(tmp_path / "agent.jsonl"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    launcher = Path(__file__).parent.parent / "pytest_ale" / "gateway" / "launcher.py"
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(launcher), str(tmp_path / "spec.json")], env=env, capture_output=True, timeout=60
    )
    gateway.close_trial(trial)
    assert done.returncode == 0, done.stderr.decode()
    answer = json.loads(done.stdout)
    assert answer["content"][-1]["name"] == "Bash"
    assert (tmp_path / "agent.jsonl").read_bytes() == done.stdout
    assert json.loads((tmp_path / "home" / ".cfg" / "c.json").read_text())["url"].startswith(
        "http://127.0.0.1:"
    )
    assert trial.meter.usage.requests == 1


def test_bad_gateway_options_are_usage_errors(pytester: pytest.Pytester):
    result = pytester.runpytest("--ale-scripted-model", "nope.yaml")
    result.stderr.fnmatch_lines(["*--ale-scripted-model*nope.yaml does not exist*"])
    result = pytester.runpytest("--ale-budget-usd", "lots")
    result.stderr.fnmatch_lines(["*--ale-budget-usd must be a float*"])
