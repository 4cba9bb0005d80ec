"""``claude-code``: Anthropic's Claude Code CLI (npm ``@anthropic-ai/claude-code``), headless.

Runs ``claude -p INSTRUCTION --output-format stream-json --verbose
--dangerously-skip-permissions --model MODEL``. Claude Code refuses that last flag as root
unless ``IS_SANDBOX=1``; ``ANTHROPIC_BASE_URL`` points it at the gateway and
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` stops it calling home. Its stream-json log
(``system``/``assistant``/``user``/``result`` events) converts to the trajectory.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..trajectory import AgentInfo, StepMetrics, StepsBuilder, ToolCall, Trajectory
from .base import AgentContext
from .cli import BASE_URL, CLIHarness, Launch, json_events


class ClaudeCodeAgent(CLIHarness):
    name: ClassVar[str] = "claude-code"
    npm_package: ClassVar[str] = "@anthropic-ai/claude-code"
    binary: ClassVar[str] = "claude"
    model_provider: ClassVar[str] = "anthropic"
    default_model: ClassVar[str] = "claude-sonnet-4-5"

    def launch(self, context: AgentContext, command: str, token: str, model: str) -> Launch:
        argv = [
            command,
            "-p",
            context.instruction,
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
            "--model",
            model,
        ]
        env = {
            "ANTHROPIC_BASE_URL": BASE_URL,
            "ANTHROPIC_API_KEY": token,
            "IS_SANDBOX": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }
        return Launch(argv=argv, env=env)

    def convert(self, log: str, session_id: str, agent: AgentInfo, instruction: str) -> Trajectory:
        steps = StepsBuilder()
        steps.add("user", instruction)
        current: dict[str, Any] = {}  # message id -> its step
        extra: dict[str, Any] = {}
        for event in json_events(log):
            kind = event.get("type")
            if kind == "system" and event.get("subtype") == "init":
                session_id = str(event.get("session_id") or session_id)
                agent.version = str(event.get("claude_code_version") or agent.version)
            elif kind == "assistant":
                message = event.get("message") or {}
                step = current.get(message.get("id"))
                if step is None:
                    step = steps.agent(metrics=_metrics(message.get("usage")))
                    current[message.get("id")] = step
                for block in message.get("content") or []:
                    if block.get("type") == "text":
                        step.message = (step.message + "\n" + block.get("text", "")).strip()
                    elif block.get("type") == "thinking":
                        step.reasoning_content = (
                            (step.reasoning_content or "") + block.get("thinking", "")
                        ) or None
                    elif block.get("type") == "tool_use":
                        call = ToolCall(
                            tool_call_id=str(block.get("id")),
                            function_name=str(block.get("name")),
                            arguments=block.get("input") or {},
                        )
                        steps.call(step, call)
            elif kind == "user":
                for block in (event.get("message") or {}).get("content") or []:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        steps.observe(block.get("tool_use_id"), _text(block.get("content")))
            elif kind == "result":
                extra = {
                    "extra": {
                        "result": event.get("result"),
                        "is_error": event.get("is_error"),
                        "num_turns": event.get("num_turns"),
                        "stop_reason": event.get("terminal_reason") or event.get("stop_reason"),
                    }
                }
        return steps.trajectory(session_id, agent, **extra)


def _metrics(usage: Any) -> StepMetrics | None:
    if not isinstance(usage, dict):
        return None
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + int(usage.get("cache_creation_input_tokens") or 0)
    return StepMetrics(
        prompt_tokens=prompt, completion_tokens=int(usage.get("output_tokens") or 0), cached_tokens=cached
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "" if content is None else str(content)
