"""What the wire formats share: a neutral reply, token usage and SSE framing.

Each model API the harnesses speak (Anthropic Messages, OpenAI Responses and Chat
Completions, Gemini ``generateContent``) is one ``WireFormat`` subclass in its own module.
A format knows how to read a request (model, streaming, offered tools, the conversation
so far), how to render a neutral ``Reply`` as that API's response (JSON or SSE), and how
to read token usage back out of a real upstream response. Finding the format of a
request is ``wire_lookup``'s.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class Call:
    """One tool call the model makes."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:20])


@dataclass
class Reply:
    """A model answer, independent of wire format: some text and/or tool calls."""

    text: str = ""
    calls: list[Call] = field(default_factory=list)


@dataclass
class Usage:
    """Model usage: of one response, or summed (a trial's meter, an agent's run, a trial's
    attempts). The one shape token counts take from the gateway to ``TrialResult`` and
    results.jsonl, meaning the same for every vendor:

    - ``input_tokens``: every prompt token, cached ones included. Anthropic reports the
      uncached part alone (``input_tokens`` beside ``cache_read_input_tokens`` and
      ``cache_creation_input_tokens``), OpenAI and Gemini the whole prompt: each format's
      ``usage`` turns its vendor's figures into this one.
    - ``output_tokens``: every generated token, reasoning / thinking included.
    - ``cache_read_tokens``: the part of ``input_tokens`` served from the prompt cache.
    - ``cache_write_tokens``: the part of ``input_tokens`` written to the prompt cache
      (Anthropic's cache creation; OpenAI and Gemini report none).
    - ``cost_usd`` and ``requests``: what the meter priced and counted (a wire format's
      reading of one response leaves them 0).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    requests: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        """The prompt tokens neither read from nor written to the cache."""
        return max(0, self.input_tokens - self.cache_read_tokens - self.cache_write_tokens)

    @property
    def cache_tokens(self) -> int:
        """``cache_read_tokens + cache_write_tokens``."""
        return self.cache_read_tokens + self.cache_write_tokens

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cost_usd += other.cost_usd
        self.requests += other.requests


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    """Frame ``(event name or None, data)`` pairs as a ``text/event-stream`` body."""
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        out.append((f"event: {name}\n" if name else "") + f"data: {payload}\n\n")
    return "".join(out).encode()


def sse_data(body: bytes) -> Iterator[Any]:
    """The JSON ``data:`` payloads of an SSE body (non-JSON ones, like ``[DONE]``, skipped)."""
    for block in re.split(r"\r?\n\r?\n", body.decode("utf-8", "replace")):
        lines = [line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")]
        if not lines:
            continue
        try:
            yield json.loads("\n".join(lines))
        except ValueError:
            continue


def estimate_tokens(data: bytes | str) -> int:
    """A deterministic stand-in for a tokenizer (about four bytes a token)."""
    size = len(data.encode() if isinstance(data, str) else data)
    return max(1, (size + 3) // 4)


def as_text(content: Any) -> str:
    """Flatten the many shapes message content takes (strings, block lists) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(t for t in (as_text(part) for part in content) if t)
    if isinstance(content, dict):
        for key in ("text", "content", "output", "result"):
            if key in content:
                return as_text(content[key])
        return ""
    return str(content)


class WireFormat:
    """One model API. Subclasses implement every method; all are pure functions."""

    name: ClassVar[str] = ""
    #: which upstream (and which key) serves this format
    provider: ClassVar[str] = ""

    @classmethod
    def matches(cls, path: str) -> bool:
        raise NotImplementedError

    @classmethod
    def model(cls, path: str, body: dict[str, Any]) -> str:
        return str(body.get("model") or "unknown")

    @classmethod
    def is_stream(cls, path: str, query: str, body: dict[str, Any]) -> bool:
        return bool(body.get("stream"))

    @classmethod
    def tools(cls, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Offered tools by name -> their parameter JSON schema."""
        raise NotImplementedError

    @classmethod
    def tool_turns(cls, body: dict[str, Any]) -> int:
        """How many model turns with tool calls the conversation already holds."""
        raise NotImplementedError

    @classmethod
    def conversation(cls, body: dict[str, Any]) -> list[dict[str, str]]:
        """The conversation as ``{role, kind, text}`` items, system prompts left out."""
        raise NotImplementedError

    @classmethod
    def render(cls, reply: Reply, model: str, usage: Usage, stream: bool) -> tuple[str, bytes]:
        """``(content type, body)`` of a response carrying ``reply``."""
        raise NotImplementedError

    @classmethod
    def usage(cls, body: bytes, stream: bool) -> Usage:
        """Token usage reported by an upstream response body."""
        raise NotImplementedError

    @classmethod
    def structured_schema(cls, body: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON schema the request asks the answer to follow, if any."""
        return None


def error_body(status: int, kind: str, message: str) -> dict[str, Any]:
    """An error every client understands: Anthropic/OpenAI read ``type``/``message``,
    Gemini ``code``/``status``/``message``."""
    grpc = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        402: "FAILED_PRECONDITION",
        403: "PERMISSION_DENIED",
    }
    return {
        "type": "error",
        "error": {
            "type": kind,
            "code": status,
            "status": grpc.get(status, "FAILED_PRECONDITION"),
            "message": message,
        },
    }
