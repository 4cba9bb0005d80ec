"""The gateway's settings (from the command line / ini, see ``hooks.py``), importable
without the server's dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .meter import Budget

DEFAULT_UPSTREAMS = {
    "anthropic": "https://api.anthropic.com",
    "openai": "https://api.openai.com",
    "gemini": "https://generativelanguage.googleapis.com",
}


@dataclass
class RetryPolicy:
    """Upstream 429/5xx retries: how many, first backoff, longest wait."""

    retries: int = 5
    base_s: float = 0.5
    max_wait_s: float = 60.0


@dataclass
class GatewayConfig:
    scripted: Path | None = None
    record: Path | None = None
    replay: Path | None = None
    budget: Budget = field(default_factory=Budget)
    upstreams: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_UPSTREAMS))
    prices: list[Path] = field(default_factory=list)
    env_file: Path | None = None
    tcp: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: seconds a harness gets to exit by itself after its budget is refused, before it is killed
    stop_grace_s: float = 5.0

    @property
    def mode(self) -> str:
        return "scripted" if self.scripted else "replay" if self.replay else "upstream"
