"""Gemini ``models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE with
``alt=sse``, else a JSON array): what Gemini CLI speaks."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, ClassVar

from .wire import Reply, Usage, WireFormat, as_text, sse, sse_data

PATH = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$")


class GeminiGenerate(WireFormat):
    name: ClassVar[str] = "gemini"
    provider: ClassVar[str] = "gemini"

    @classmethod
    def matches(cls, path: str) -> bool:
        return PATH.search(path) is not None

    @classmethod
    def model(cls, path: str, body: dict[str, Any]) -> str:
        found = PATH.search(path)
        return found.group("model") if found else "unknown"

    @classmethod
    def is_stream(cls, path: str, query: str, body: dict[str, Any]) -> bool:
        found = PATH.search(path)
        return bool(found and found.group("method") == "streamGenerateContent")

    @classmethod
    def tools(cls, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for tool in body.get("tools") or []:
            for decl in (tool or {}).get("functionDeclarations") or []:
                if decl.get("name"):
                    found[str(decl["name"])] = (
                        decl.get("parametersJsonSchema") or decl.get("parameters") or {}
                    )
        return found

    @classmethod
    def tool_turns(cls, body: dict[str, Any]) -> int:
        return sum(
            1
            for content in body.get("contents") or []
            if content.get("role") == "model" and any("functionCall" in p for p in content.get("parts") or [])
        )

    @classmethod
    def conversation(cls, body: dict[str, Any]) -> list[dict[str, str]]:
        items: list[dict[str, str]] = []
        for content in body.get("contents") or []:
            role = str(content.get("role") or "user")
            for part in content.get("parts") or []:
                if part.get("thought"):
                    continue
                if "text" in part:
                    items.append({"role": role, "kind": "text", "text": str(part["text"])})
                elif "functionCall" in part:
                    call = part["functionCall"]
                    text = f"{call.get('name')} {json.dumps(call.get('args'), sort_keys=True)}"
                    items.append({"role": role, "kind": "tool_call", "text": text})
                elif "functionResponse" in part:
                    response = part["functionResponse"].get("response")
                    items.append({"role": role, "kind": "tool_result", "text": as_text(response)})
        return items

    @classmethod
    def structured_schema(cls, body: dict[str, Any]) -> dict[str, Any] | None:
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        return schema if isinstance(schema, dict) else None

    @classmethod
    def render(cls, reply: Reply, model: str, usage: Usage, stream: bool) -> tuple[str, bytes]:
        parts: list[dict[str, Any]] = []
        if reply.text:
            parts.append({"text": reply.text})
        for call in reply.calls:
            parts.append({"functionCall": {"name": call.name, "args": call.arguments}})
        prompt = usage.input_tokens
        body = {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": prompt,
                "candidatesTokenCount": usage.output_tokens,
                "totalTokenCount": prompt + usage.output_tokens,
                "cachedContentTokenCount": usage.cache_read_tokens,
            },
            "modelVersion": model,
            "responseId": uuid.uuid4().hex[:24],
        }
        if stream:
            return "text/event-stream", sse([(None, body)])
        return "application/json", json.dumps(body).encode()

    @classmethod
    def usage(cls, body: bytes, stream: bool) -> Usage:
        metadata: Any = None
        chunks: list[Any]
        try:
            parsed = json.loads(body)
            chunks = parsed if isinstance(parsed, list) else [parsed]
        except ValueError:
            chunks = list(sse_data(body))
        for chunk in chunks:
            if isinstance(chunk, dict) and chunk.get("usageMetadata"):
                metadata = chunk["usageMetadata"]
        if not isinstance(metadata, dict):
            return Usage()
        # promptTokenCount holds the cached tokens; tool-use prompts are prompt tokens too
        cached = int(metadata.get("cachedContentTokenCount") or 0)
        return Usage(
            input_tokens=int(metadata.get("promptTokenCount") or 0)
            + int(metadata.get("toolUsePromptTokenCount") or 0),
            output_tokens=int(metadata.get("candidatesTokenCount") or 0)
            + int(metadata.get("thoughtsTokenCount") or 0),
            cache_read_tokens=cached,
        )
