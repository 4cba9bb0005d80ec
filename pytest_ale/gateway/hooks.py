"""pytest hooks of the model gateway: its options, and its life within the pytest process.

Registered as its own ``pytest11`` entry point (``ale_gateway``). Every option also has
an ini key (``ale_record``, ...), the command line winning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..errors import ConfigError
from ..options import option_path
from . import runtime
from .config import DEFAULT_UPSTREAMS, GatewayConfig, RetryPolicy
from .meter import Budget

OPTIONS: list[tuple[str, str]] = [
    ("record", "save each trial's model traffic as a cassette in DIR"),
    ("replay", "answer model requests from the cassettes in DIR (no upstream, no keys)"),
    ("scripted-model", "answer model requests from a scripted-model YAML FILE (no upstream)"),
    ("budget-usd", "per-trial model spend limit in USD: the trial is stopped and marked past it"),
    ("budget-tokens", "per-trial model token limit: the trial is stopped and marked past it"),
    ("env-file", "dotenv FILE with the real API keys (else the environment)"),
    ("prices", "extra model price table YAML FILE (USD per million tokens)"),
    ("upstream-retries", "retries of an upstream 429/5xx or refused connection (default 5)"),
    ("upstream-max-wait", "longest wait between retries in seconds (default 60)"),
    (
        "upstream-give-up",
        "share of the agent's timeout one failing upstream request may take (retries, waits, "
        "silence) before the trial is stopped as an infrastructure error (default 0.25)",
    ),
    (
        "upstream-timeout",
        "longest silence from an upstream in seconds (default 300; never past the give-up share)",
    ),
    *[(f"upstream-{p}", f"{p} API base URL (default {url})") for p, url in DEFAULT_UPSTREAMS.items()],
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ale-gateway", "pytest-ale: model gateway")
    for name, help_text in OPTIONS:
        dest = "ale_" + name.replace("-", "_")
        group.addoption(f"--ale-{name}", dest=dest, default=None, help=help_text)
        parser.addini(dest, help=help_text, default=None)


def _get(config: pytest.Config, name: str) -> Any:
    dest = "ale_" + name.replace("-", "_")
    value = config.getoption(dest)
    return value if value not in (None, "") else config.getini(dest) or None


def gateway_config(config: pytest.Config) -> GatewayConfig:
    def path(name: str) -> Path | None:
        value = _get(config, name)
        return option_path(config, "ale_" + name.replace("-", "_"), value) if value else None

    def number(name: str, kind: type) -> Any:
        value = _get(config, name)
        if value is None:
            return None
        try:
            parsed = kind(value)
        except ValueError:
            raise ConfigError(f"--ale-{name} must be a {kind.__name__}, not {value!r}") from None
        if parsed < 0:
            raise ConfigError(f"--ale-{name} must not be negative")
        return parsed

    scripted = path("scripted-model")
    if scripted is not None and not scripted.is_file():
        raise ConfigError(f"--ale-scripted-model {scripted} does not exist; give a scripted-model YAML file")
    replay = path("replay")
    if scripted is not None and replay is not None:
        raise ConfigError("--ale-scripted-model and --ale-replay cannot be used together; pick one")
    if replay is not None and not replay.is_dir():
        raise ConfigError(f"--ale-replay {replay} is not a folder of cassettes; record one with --ale-record")
    prices = path("prices")
    retry = RetryPolicy()
    if (retries := number("upstream-retries", int)) is not None:
        retry.retries = retries
    if (wait := number("upstream-max-wait", float)) is not None:
        retry.max_wait_s = wait
    if (give_up := number("upstream-give-up", float)) is not None:
        if not 0 < give_up < 1:
            raise ConfigError(
                f"--ale-upstream-give-up must be a share of the agent's timeout, 0 < F < 1, not {give_up}"
            )
        retry.give_up = give_up
    if (silence := number("upstream-timeout", float)) is not None:
        if silence <= 0:
            raise ConfigError("--ale-upstream-timeout must be a positive number of seconds")
        retry.read_timeout_s = silence
    return GatewayConfig(
        scripted=scripted,
        record=path("record"),
        replay=replay,
        budget=Budget(usd=number("budget-usd", float), tokens=number("budget-tokens", int)),
        upstreams={p: str(_get(config, f"upstream-{p}") or url) for p, url in DEFAULT_UPSTREAMS.items()},
        prices=[prices] if prices else [],
        env_file=path("env-file"),
        retry=retry,
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        runtime.configure(gateway_config(config))
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-ale: {exc}") from None


def pytest_unconfigure(config: pytest.Config) -> None:
    runtime.shutdown()
