"""Anthropic Messages (``POST /v1/messages``), JSON and SSE: what Claude Code speaks."""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

from .wire import Reply, Usage, WireFormat, as_text, sse, sse_data


class AnthropicMessages(WireFormat):
    name: ClassVar[str] = "anthropic-messages"
    provider: ClassVar[str] = "anthropic"

    @classmethod
    def matches(cls, path: str) -> bool:
        return path.rstrip("/").endswith("/v1/messages")

    @classmethod
    def tools(cls, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            str(t["name"]): t.get("input_schema") or {}
            for t in body.get("tools") or []
            if isinstance(t, dict) and t.get("name")
        }

    @classmethod
    def tool_turns(cls, body: dict[str, Any]) -> int:
        return sum(
            1
            for m in body.get("messages") or []
            if m.get("role") == "assistant"
            and isinstance(m.get("content"), list)
            and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in m["content"])
        )

    @classmethod
    def conversation(cls, body: dict[str, Any]) -> list[dict[str, str]]:
        items: list[dict[str, str]] = []
        for message in body.get("messages") or []:
            role = str(message.get("role"))
            content = message.get("content")
            if isinstance(content, str):
                items.append({"role": role, "kind": "text", "text": content})
                continue
            for block in content or []:
                kind = block.get("type")
                if kind == "text":
                    items.append({"role": role, "kind": "text", "text": block.get("text", "")})
                elif kind == "tool_use":
                    text = f"{block.get('name')} {json.dumps(block.get('input'), sort_keys=True)}"
                    items.append({"role": role, "kind": "tool_call", "text": text})
                elif kind == "tool_result":
                    items.append({"role": role, "kind": "tool_result", "text": as_text(block.get("content"))})
        return items

    @classmethod
    def render(cls, reply: Reply, model: str, usage: Usage, stream: bool) -> tuple[str, bytes]:
        blocks: list[dict[str, Any]] = []
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        for call in reply.calls:
            blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
        stop = "tool_use" if reply.calls else "end_turn"
        usage_json = {
            "input_tokens": usage.uncached_input_tokens,  # Anthropic's: the uncached part
            "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
        }
        message = {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage_json,
        }
        if not stream:
            return "application/json", json.dumps(message).encode()
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage_json, "output_tokens": 1}}
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": start})
        ]
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                opening = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            else:
                opening = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events += [
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": opening},
                ),
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": index}),
            ]
        events += [
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": usage.output_tokens},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return "text/event-stream", sse(events)

    @classmethod
    def usage(cls, body: bytes, stream: bool) -> Usage:
        found: dict[str, int] = {}
        if stream:
            for event in sse_data(body):
                if not isinstance(event, dict):
                    continue
                if event.get("type") == "message_start":
                    found.update(_ints((event.get("message") or {}).get("usage")))
                elif event.get("type") == "message_delta":
                    found.update(_ints(event.get("usage")))
        else:
            try:
                found = _ints(json.loads(body).get("usage"))
            except (ValueError, AttributeError):
                found = {}
        read = found.get("cache_read_input_tokens", 0)
        write = found.get("cache_creation_input_tokens", 0)
        return Usage(  # Anthropic's input_tokens is the uncached part of the prompt only
            input_tokens=found.get("input_tokens", 0) + read + write,
            output_tokens=found.get("output_tokens", 0),
            cache_read_tokens=read,
            cache_write_tokens=write,
        )


def _ints(usage: Any) -> dict[str, int]:
    if not isinstance(usage, dict):
        return {}
    return {k: int(v) for k, v in usage.items() if isinstance(v, int | float) and not isinstance(v, bool)}
