"""The judge: a grader's model calls, made on the host while a task grades, go through
the gateway like the agent's, metered apart, recorded, replayed and scripted.

ALE's graders build their clients from the environment (``tasks/utils/evaluation.py``:
``OpenAI(api_key=OPENAI_API_KEY, base_url=OPENAI_API_BASE)``, ``genai.Client(api_key=
GOOGLE_API_KEY or GEMINI_API_KEY)``, which reads ``GOOGLE_GEMINI_BASE_URL``). ``judging``
opens a ``judge`` trial on the gateway (its own token, meter and cassette section) and,
for the grading only, points those variables at the gateway's loopback URL with the
judge's token in place of every key (``JUDGE_ENV``); afterwards the environment is put
back as it was. The environment is the process's: gradings of one process hold a lock
while their variables are set (a process grades one trial at a time; the lock keeps it
so for any thread). A grader never sees a real key; the gateway swaps the token for it
upstream, as for agents.

A judge call the gateway could not serve (the upstream failed, the key was refused, a
replay diverged) is the gateway's fault: the trial is an error of that kind, never the
agent's 0, whatever the grader made of the refusal.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from . import runtime
from .trials import GatewayTrial
from .wire import Usage

if TYPE_CHECKING:
    from .server import Gateway

#: what a grader's model clients read, given the gateway's URL and the judge's token
JUDGE_ENV = {
    "OPENAI_API_KEY": "{token}",
    "OPENAI_API_BASE": "{url}/v1",  # ALE's evaluation.py
    "OPENAI_BASE_URL": "{url}/v1",  # the openai SDK's own
    "ANTHROPIC_API_KEY": "{token}",
    "ANTHROPIC_BASE_URL": "{url}",
    "GEMINI_API_KEY": "{token}",
    "GOOGLE_API_KEY": "{token}",  # google-genai and ALE prefer it to GEMINI_API_KEY
    "GOOGLE_GEMINI_BASE_URL": "{url}",
    "GEMINI_AUTH_MODE": "developer_api",  # ALE: never Vertex AI, which would bypass the gateway
    "GOOGLE_GENAI_USE_VERTEXAI": "false",
}

_env_lock = threading.Lock()


@dataclass
class JudgeBooks:
    """What the judge spent while one trial graded, and the gateway's log of it."""

    usage: Usage = field(default_factory=Usage)
    events: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None


@contextmanager
def judging(
    trial_id: str, task: str, timeout_s: float | None, books: JudgeBooks, gateway: Gateway | None = None
) -> Iterator[None]:
    """Grade within this: the grader's model clients reach ``gateway`` (this process's by
    default) as trial ``trial_id``'s judge; ``books`` gets its figures, even when the
    grading raises. Without the gateway's dependencies installed the grading runs as it
    would without pytest-ale."""
    if gateway is None:
        try:
            gateway = runtime.gateway()
        except ConfigError:  # no aiohttp: nothing to meter with
            yield
            return
    trial = gateway.open_trial(trial_id, task=task, timeout_s=timeout_s, role="judge")
    try:
        try:
            values = {k: v.format(url=gateway.host_url(), token=trial.token) for k, v in JUDGE_ENV.items()}
            with _env_lock, _environment(values):
                yield
        finally:
            gateway.close_trial(trial)
            _close(trial, books)
    except Exception as exc:  # the grader failed on what the gateway could not serve: its fault
        fault = trial.fault()
        if fault is None:
            raise
        raise fault from exc
    fault = trial.fault()
    if fault is not None:
        raise fault


def _close(trial: GatewayTrial, books: JudgeBooks) -> None:
    books.usage.add(trial.meter.totals())
    books.events.extend(trial.events)
    if trial.events:
        books.summary = trial.summary()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
