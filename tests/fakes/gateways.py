"""Gateways started on loopback for a test, each holding the same real-looking key for every
vendor, and all stopped when the test ends (shared by the gateway test modules)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pytest_ale.gateway.config import GatewayConfig
from pytest_ale.gateway.keys import Keys
from pytest_ale.gateway.server import Gateway


def gateways(real_key: str) -> Iterator[Callable[..., Gateway]]:
    """For a fixture: ``make(**GatewayConfig fields, keys=...)`` starts a TCP gateway whose
    keys default to ``real_key`` for anthropic, openai and gemini."""
    started: list[Gateway] = []

    def make(**kwargs: Any) -> Gateway:
        keys = kwargs.pop("keys", Keys({"anthropic": real_key, "openai": real_key, "gemini": real_key}, {}))
        gateway = Gateway(GatewayConfig(tcp=True, **kwargs), keys=keys).start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop()
