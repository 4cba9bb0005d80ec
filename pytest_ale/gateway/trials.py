"""What the gateway knows about one trial: its token, meter, cassette and what happened.

A harness opens a trial before it launches the CLI (getting the per-trial token it hands
to the sandbox in place of a real key) and closes it afterwards (getting the totals, the
per-request log and any stop reason: budget, replay divergence, upstream failure).

The first stop reason *halts* the trial: every later request is refused at once, and
after a short grace the harness is stopped (``on_stop``, and the in-sandbox launcher's
watch), so a CLI that retries a refusal never runs on to its timeout.

A trial has a ``role``: ``agent`` (the harness in the sandbox) or ``judge`` (the task's
grader, asking a model on the host while it grades, ``judge.py``); each role has its own
token, meter, books and cassette section, so the agent's figures never hold the judge's.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AleError, ConfigError, InfrastructureError, ReplayDivergence
from .cassette import Player, Recorder
from .meter import Meter

TOKEN_PREFIX = "ale-trial-"
#: who is asking: the agent in its sandbox, or the task's grader on the host
ROLES = ("agent", "judge")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_hex(16)


@dataclass
class GatewayTrial:
    """The gateway's books on one trial, open from ``open_trial`` to ``close_trial``."""

    trial_id: str
    task: str | None
    role: str = "agent"
    token: str = field(default_factory=new_token)
    meter: Meter = field(default_factory=Meter)
    recorder: Recorder | None = None
    player: Player | None = None
    #: one entry per model request: format, model, status, tokens, cost, retries, timing
    events: list[dict[str, Any]] = field(default_factory=list)
    budget_exceeded: str | None = None
    divergence: str | None = None
    upstream_failure: str | None = None
    config_error: str | None = None
    rate_limit_retries: int = 0
    on_stop: Callable[[], Any] | None = None
    #: the agent's timeout, which bounds how long a failing upstream may take
    agent_timeout_s: float | None = None
    #: the kind (attribute name) of the stop reason that halted the trial, if any
    halted: str | None = None
    #: why the gateway stopped the harness, once it has (after the grace)
    stopped: str | None = None
    opened: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def log(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append({"t": round(time.time() - self.opened, 3), **event})

    def first(self, attribute: str, value: str) -> None:
        """Set a stop reason unless one of that kind is already set (the first one tells)."""
        with self._lock:
            if getattr(self, attribute) is None:
                setattr(self, attribute, value)

    def halt(self, kind: str, reason: str) -> bool:
        """Record stop reason ``reason`` of ``kind`` (``budget_exceeded``, ``config_error``,
        ``upstream_failure``, ``divergence``) and halt the trial; ``True`` when this is the
        trial's first halt (the caller then stops the harness)."""
        with self._lock:
            if getattr(self, kind) is None:
                setattr(self, kind, reason)
            if self.halted is not None:
                return False
            self.halted = kind
            return True

    @property
    def halt_reason(self) -> str | None:
        return getattr(self, self.halted) if self.halted else None

    def fault(self) -> AleError | None:
        """The gateway's fault (not the agent's, nor the grader's) to report as the trial's
        error, if any: a replay divergence, a refused key, a failing upstream."""
        if self.divergence:
            return ReplayDivergence(self.divergence)
        if self.config_error:
            return ConfigError(f"model gateway: {self.config_error}")
        if self.upstream_failure:
            return InfrastructureError(f"model gateway: {self.upstream_failure}")
        return None

    def summary(self) -> dict[str, Any]:
        usage = self.meter.totals()
        return {
            "trial": self.trial_id,
            "role": self.role,
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "cost_usd": round(usage.cost_usd, 6),
            "rate_limit_retries": self.rate_limit_retries,
            "budget_exceeded": self.budget_exceeded,
            "replay_divergence": self.divergence,
            "upstream_failure": self.upstream_failure,
            "config_error": self.config_error,
            "stopped": self.stopped,
            "unpriced_models": sorted(self.meter.unpriced),
        }
