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
    """Upstream 429/5xx retries: how many, first backoff, longest wait; and when to give up.

    One model request may spend at most ``give_up`` of the trial's agent timeout on a
    failing upstream (retries, waits, silence), and no more than ``read_timeout_s`` of
    silence from it. Past either the gateway gives up: the trial is stopped and ends as
    an infrastructure error, never as the agent's timeout.
    """

    retries: int = 5
    base_s: float = 0.5
    max_wait_s: float = 60.0
    #: share of the agent's timeout one failing request may take before the trial is stopped
    give_up: float = 0.25
    #: longest silence (no headers, no next chunk) from the upstream, in seconds
    read_timeout_s: float = 300.0
    #: the give-up bound when the agent's timeout is not known
    default_bound_s: float = 600.0

    def bound_s(self, agent_timeout_s: float | None) -> float:
        """Seconds one failing request may take, for an agent given ``agent_timeout_s``."""
        if agent_timeout_s and agent_timeout_s > 0:
            return self.give_up * agent_timeout_s
        return self.default_bound_s

    def gave_up(self, timeout_s: float | None, role: str = "agent") -> str:
        """What the gateway says when a failing request hit its bound: for the agent, the
        agent's timeout bounds it; for a judge, the grader's."""
        whose = "agent" if role == "agent" else "grader"
        of = f"{self.give_up:g} of the {whose}'s {timeout_s:g} s timeout" if timeout_s else "default"
        return f"gave up at the {self.bound_s(timeout_s):g} s bound ({of}) and stopped the {role}"

    def read_timeout_for(self, agent_timeout_s: float | None) -> float:
        """The silence allowed from the upstream: never past the give-up bound, so always
        below the agent's own timeout."""
        return min(self.read_timeout_s, self.bound_s(agent_timeout_s))


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
