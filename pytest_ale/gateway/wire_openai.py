"""OpenAI Responses (``/v1/responses``, what Codex speaks) and Chat Completions
(``/v1/chat/completions``), JSON and SSE."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, ClassVar

from .wire import Reply, Usage, WireFormat, as_text, sse, sse_data

SYSTEM_ROLES = ("system", "developer")


def _usage_json(usage: Usage) -> dict[str, Any]:
    prompt = usage.input_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + usage.output_tokens,
    }


def _from_openai(usage: Any, prompt_key: str, completion_key: str, details_key: str) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    # OpenAI's prompt figure already holds the cached tokens; it reports no cache writes
    prompt = int(usage.get(prompt_key) or 0)
    cached = int((usage.get(details_key) or {}).get("cached_tokens") or 0)
    return Usage(
        input_tokens=prompt,
        output_tokens=int(usage.get(completion_key) or 0),
        cache_read_tokens=cached,
    )


class OpenAIResponses(WireFormat):
    name: ClassVar[str] = "openai-responses"
    provider: ClassVar[str] = "openai"

    @classmethod
    def matches(cls, path: str) -> bool:
        return path.rstrip("/").endswith("/responses")

    @classmethod
    def tools(cls, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for tool in body.get("tools") or []:
            if not isinstance(tool, dict):
                continue
            if tool.get("type") == "local_shell":
                found["local_shell"] = {}
            elif tool.get("name"):
                found[str(tool["name"])] = tool.get("parameters") or {}
        return found

    @classmethod
    def _items(cls, body: dict[str, Any]) -> list[dict[str, Any]]:
        raw = body.get("input")
        if isinstance(raw, str):
            return [{"type": "message", "role": "user", "content": raw}]
        return [item for item in raw or [] if isinstance(item, dict)]

    @classmethod
    def tool_turns(cls, body: dict[str, Any]) -> int:
        kinds = ("function_call", "custom_tool_call", "local_shell_call")
        return sum(1 for item in cls._items(body) if item.get("type") in kinds)

    @classmethod
    def conversation(cls, body: dict[str, Any]) -> list[dict[str, str]]:
        items: list[dict[str, str]] = []
        for item in cls._items(body):
            kind = item.get("type", "message")
            if kind == "message" and item.get("role") not in SYSTEM_ROLES:
                items.append(
                    {"role": str(item.get("role")), "kind": "text", "text": as_text(item.get("content"))}
                )
            elif kind in ("function_call", "custom_tool_call", "local_shell_call"):
                args = item.get("arguments") or item.get("input") or json.dumps(item.get("action"))
                items.append({"role": "assistant", "kind": "tool_call", "text": f"{item.get('name')} {args}"})
            elif kind.endswith("_call_output"):
                items.append({"role": "tool", "kind": "tool_result", "text": as_text(item.get("output"))})
        return items

    @classmethod
    def render(cls, reply: Reply, model: str, usage: Usage, stream: bool) -> tuple[str, bytes]:
        output: list[dict[str, Any]] = []
        if reply.text:
            output.append(
                {
                    "type": "message",
                    "id": "msg_" + uuid.uuid4().hex[:24],
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            )
        for call in reply.calls:
            output.append(
                {
                    "type": "function_call",
                    "id": "fc_" + uuid.uuid4().hex[:24],
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": json.dumps(call.arguments),
                    "status": "completed",
                }
            )
        response = {
            "id": "resp_" + uuid.uuid4().hex[:24],
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": output,
            "usage": _usage_json(usage),
        }
        if not stream:
            return "application/json", json.dumps(response).encode()
        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        events: list[tuple[str | None, Any]] = [
            ("response.created", {"type": "response.created", "response": pending}),
        ]
        for index, item in enumerate(output):
            events.append(
                (
                    "response.output_item.added",
                    {"type": "response.output_item.added", "output_index": index, "item": item},
                )
            )
            if item["type"] == "message":
                events.append(
                    (
                        "response.output_text.delta",
                        {
                            "type": "response.output_text.delta",
                            "item_id": item["id"],
                            "output_index": index,
                            "content_index": 0,
                            "delta": reply.text,
                        },
                    )
                )
            events.append(
                (
                    "response.output_item.done",
                    {"type": "response.output_item.done", "output_index": index, "item": item},
                )
            )
        events.append(("response.completed", {"type": "response.completed", "response": response}))
        for number, (_, data) in enumerate(events):
            data["sequence_number"] = number
        return "text/event-stream", sse(events)

    @classmethod
    def usage(cls, body: bytes, stream: bool) -> Usage:
        usage: Any = None
        if stream:
            for event in sse_data(body):
                if isinstance(event, dict) and event.get("type") in (
                    "response.completed",
                    "response.incomplete",
                ):
                    usage = (event.get("response") or {}).get("usage")
        else:
            try:
                usage = json.loads(body).get("usage")
            except (ValueError, AttributeError):
                usage = None
        return _from_openai(usage, "input_tokens", "output_tokens", "input_tokens_details")


class OpenAIChat(WireFormat):
    name: ClassVar[str] = "openai-chat"
    provider: ClassVar[str] = "openai"

    @classmethod
    def matches(cls, path: str) -> bool:
        return path.rstrip("/").endswith("/chat/completions")

    @classmethod
    def tools(cls, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for tool in body.get("tools") or []:
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict) and function.get("name"):
                found[str(function["name"])] = function.get("parameters") or {}
        return found

    @classmethod
    def tool_turns(cls, body: dict[str, Any]) -> int:
        return sum(
            1 for m in body.get("messages") or [] if m.get("role") == "assistant" and m.get("tool_calls")
        )

    @classmethod
    def conversation(cls, body: dict[str, Any]) -> list[dict[str, str]]:
        items: list[dict[str, str]] = []
        for message in body.get("messages") or []:
            role = str(message.get("role"))
            if role in SYSTEM_ROLES:
                continue
            kind = "tool_result" if role == "tool" else "text"
            if message.get("content"):
                items.append({"role": role, "kind": kind, "text": as_text(message.get("content"))})
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                text = f"{function.get('name')} {function.get('arguments')}"
                items.append({"role": role, "kind": "tool_call", "text": text})
        return items

    @classmethod
    def render(cls, reply: Reply, model: str, usage: Usage, stream: bool) -> tuple[str, bytes]:
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in reply.calls
        ]
        finish = "tool_calls" if calls else "stop"
        usage_json = {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        }
        base = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "created": int(time.time()), "model": model}
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, "finish_reason": finish}
            body = {**base, "object": "chat.completion", "choices": [choice], "usage": usage_json}
            return "application/json", json.dumps(body).encode()
        chunk = {**base, "object": "chat.completion.chunk"}
        delta: dict[str, Any] = {"role": "assistant", "content": reply.text or ""}
        if calls:
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
        events: list[tuple[str | None, Any]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
            (
                None,
                {
                    **chunk,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                    "usage": usage_json,
                },
            ),
            (None, "[DONE]"),
        ]
        return "text/event-stream", sse(events)

    @classmethod
    def usage(cls, body: bytes, stream: bool) -> Usage:
        usage: Any = None
        if stream:
            for event in sse_data(body):
                if isinstance(event, dict) and event.get("usage"):
                    usage = event["usage"]
        else:
            try:
                usage = json.loads(body).get("usage")
            except (ValueError, AttributeError):
                usage = None
        return _from_openai(usage, "prompt_tokens", "completion_tokens", "prompt_tokens_details")
