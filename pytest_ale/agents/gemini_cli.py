"""``gemini-cli``: Google's Gemini CLI (npm ``@google/gemini-cli``), headless.

Gemini CLI honours ``GOOGLE_GEMINI_BASE_URL`` only with an auth type set in
``~/.gemini/settings.json`` (``security.auth.selectedType: gemini-api-key``) and an
explicit ``-m`` model; the token goes in ``GEMINI_API_KEY``. It refuses to auto-approve
tools in an untrusted folder, so ``GEMINI_CLI_TRUST_WORKSPACE=true``. Runs ``gemini -m
MODEL -p INSTRUCTION --output-format stream-json --yolo``; its events (``init``,
``message``, ``tool_use``, ``tool_result``, ``error``, ``result``) convert to the trajectory.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ..trajectory import AgentInfo, StepsBuilder, ToolCall, Trajectory
from .base import AgentContext
from .cli import BASE_URL, CLIHarness, Launch, json_events

SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
}


class GeminiCliAgent(CLIHarness):
    name: ClassVar[str] = "gemini-cli"
    npm_package: ClassVar[str] = "@google/gemini-cli"
    binary: ClassVar[str] = "gemini"
    model_provider: ClassVar[str] = "gemini"
    default_model: ClassVar[str] = "gemini-2.5-pro"

    def launch(self, context: AgentContext, command: str, token: str, model: str) -> Launch:
        argv = [command, "-m", model, "-p", context.instruction, "--output-format", "stream-json", "--yolo"]
        env = {
            "GOOGLE_GEMINI_BASE_URL": BASE_URL,
            "GEMINI_API_KEY": token,
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }
        return Launch(argv=argv, env=env, files={"~/.gemini/settings.json": json.dumps(SETTINGS, indent=2)})

    def convert(self, log: str, session_id: str, agent: AgentInfo, instruction: str) -> Trajectory:
        steps = StepsBuilder()
        steps.add("user", instruction)
        step = None  # the agent step being streamed into
        extra: dict[str, Any] = {}
        for event in json_events(log):
            kind = event.get("type")
            if kind == "init":
                session_id = str(event.get("session_id") or session_id)
            elif kind == "message" and event.get("role") == "assistant":
                if step is None or step.tool_calls:
                    step = steps.agent()
                step.message += str(event.get("content") or "")
            elif kind == "tool_use":
                call = ToolCall(
                    tool_call_id=str(event.get("tool_id")),
                    function_name=str(event.get("tool_name")),
                    arguments=event.get("parameters") or {},
                )
                if step is None:
                    step = steps.agent()
                steps.call(step, call)
            elif kind == "tool_result":
                output = event.get("output")
                if output is None and isinstance(event.get("error"), dict):
                    output = event["error"].get("message")
                steps.observe(str(event.get("tool_id")), str(output or event.get("status") or ""))
                step = None if step is None or step.tool_calls else step
            elif kind == "error":
                steps.add("system", f"gemini error: {event.get('message') or event}")
            elif kind == "result":
                extra = {"extra": {"status": event.get("status"), "stats": event.get("stats")}}
        return steps.trajectory(session_id, agent, **extra)
