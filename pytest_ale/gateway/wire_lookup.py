"""Which wire format a request speaks: the list of formats the gateway serves, and lookup.

Its own module so that ``wire`` (what the formats share) imports none of the formats that
build on it: the import graph stays a tree.
"""

from __future__ import annotations

from .wire import WireFormat
from .wire_anthropic import AnthropicMessages
from .wire_gemini import GeminiGenerate
from .wire_openai import OpenAIChat, OpenAIResponses


def formats() -> list[type[WireFormat]]:
    """Every wire format the gateway serves, the most specific path first."""
    return [AnthropicMessages, OpenAIResponses, OpenAIChat, GeminiGenerate]


def detect(path: str) -> type[WireFormat] | None:
    """The wire format served at URL ``path``, or ``None`` (not a model endpoint)."""
    for fmt in formats():
        if fmt.matches(path):
            return fmt
    return None
