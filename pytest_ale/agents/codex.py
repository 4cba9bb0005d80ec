"""``codex``: OpenAI's Codex CLI (npm ``@openai/codex``), headless.

Codex ignores ``OPENAI_BASE_URL``: the gateway is declared as a custom provider in
``$CODEX_HOME/config.toml`` (``wire_api = "responses"``, the token read from
``ALE_GATEWAY_TOKEN``). Runs ``codex exec --json --skip-git-repo-check
--dangerously-bypass-approvals-and-sandbox`` (the sandbox is already the isolation) with
stdin closed; its JSONL events (``item.completed`` with ``agent_message``,
``reasoning``, ``command_execution``, ``file_change``, ...) convert to the trajectory.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ..trajectory import AgentInfo, StepMetrics, StepsBuilder, ToolCall, Trajectory
from .base import AgentContext
from .cli import BASE_URL, CLIHarness, Launch, json_events

CONFIG = """\
model = {model}
model_provider = "ale"
approval_policy = "never"
sandbox_mode = "danger-full-access"

[model_providers.ale]
name = "pytest-ale model gateway"
base_url = "{base_url}/v1"
env_key = "ALE_GATEWAY_TOKEN"
wire_api = "responses"
"""


class CodexAgent(CLIHarness):
    name: ClassVar[str] = "codex"
    npm_package: ClassVar[str] = "@openai/codex"
    binary: ClassVar[str] = "codex"
    model_provider: ClassVar[str] = "openai"
    default_model: ClassVar[str] = "gpt-5.5"

    def launch(self, context: AgentContext, command: str, token: str, model: str) -> Launch:
        argv = [
            command,
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "--cd",
            context.workdir,
            "--model",
            model,
            context.instruction,
        ]
        env = {"CODEX_HOME": "~/.codex", "ALE_GATEWAY_TOKEN": token}
        config = CONFIG.format(model=json.dumps(model), base_url=BASE_URL)
        return Launch(argv=argv, env=env, files={"~/.codex/config.toml": config})

    def convert(self, log: str, session_id: str, agent: AgentInfo, instruction: str) -> Trajectory:
        steps = StepsBuilder()
        steps.add("user", instruction)
        reasoning: list[str] = []
        turn_steps: list[Any] = []
        for event in json_events(log):
            kind = event.get("type")
            if kind == "thread.started":
                session_id = str(event.get("thread_id") or session_id)
            elif kind == "item.completed":
                item = event.get("item") or {}
                if item.get("type") == "reasoning":
                    reasoning.append(str(item.get("text") or ""))
                    continue
                step = _item_step(steps, item, "\n".join(reasoning))
                if step is not None:
                    reasoning.clear()
                    turn_steps.append(step)
            elif kind == "turn.completed":
                usage = event.get("usage") or {}
                agents = [s for s in turn_steps if s.source == "agent"]
                if agents:
                    agents[-1].metrics = StepMetrics(
                        prompt_tokens=int(usage.get("input_tokens") or 0),
                        completion_tokens=int(usage.get("output_tokens") or 0),
                        cached_tokens=int(usage.get("cached_input_tokens") or 0),
                    )
                turn_steps = []
            elif kind in ("turn.failed", "error"):
                steps.add("system", f"codex {kind}: {_error_text(event)}".strip())
        return steps.trajectory(session_id, agent)


def _item_step(steps: StepsBuilder, item: dict[str, Any], reasoning: str) -> Any:
    kind = item.get("type")
    call_id = str(item.get("id"))
    if kind == "agent_message":
        return steps.agent(str(item.get("text") or ""), reasoning=reasoning)
    if kind == "command_execution":
        call = ToolCall(
            tool_call_id=call_id, function_name="exec_command", arguments={"cmd": item.get("command")}
        )
        step = steps.agent(reasoning=reasoning, tool_calls=[call])
        output = str(item.get("aggregated_output") or "")
        steps.observe(call_id, f"exit code {item.get('exit_code')}\n{output}".rstrip())
        return step
    if kind == "file_change":
        call = ToolCall(
            tool_call_id=call_id, function_name="apply_patch", arguments={"changes": item.get("changes")}
        )
        step = steps.agent(reasoning=reasoning, tool_calls=[call])
        steps.observe(call_id, str(item.get("status") or ""))
        return step
    if kind in ("mcp_tool_call", "web_search", "todo_list"):
        arguments = {k: v for k, v in item.items() if k not in ("id", "type", "result", "status")}
        name = f"{item.get('server')}.{item.get('tool')}" if kind == "mcp_tool_call" else kind
        step = steps.agent(
            reasoning=reasoning,
            tool_calls=[ToolCall(tool_call_id=call_id, function_name=name, arguments=arguments)],
        )
        steps.observe(call_id, json.dumps(item.get("result") or item.get("status") or ""))
        return step
    if kind == "error":
        return steps.add("system", str(item.get("message") or ""))
    return None


def _error_text(event: dict[str, Any]) -> str:
    """The text of a Codex ``error`` (``{"message": ...}``) or ``turn.failed``
    (``{"error": {"message": ...}}``) event, whichever shape it has."""
    error = event.get("error")
    if isinstance(error, dict):
        error = error.get("message") or json.dumps(error, sort_keys=True)
    text = event.get("message") or error
    return "" if text is None else str(text)
