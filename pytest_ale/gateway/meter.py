"""Metering: token counts and USD cost per trial, from a YAML price table, and budgets.

Prices are USD per million tokens (``prices.yaml`` beside this module, extended by
``--ale-prices FILE``); a model matches the longest key that equals it or globs it.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError
from .wire import Usage

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(self, usage: Usage) -> float:
        read = self.input if self.cache_read is None else self.cache_read
        write = self.input if self.cache_write is None else self.cache_write
        return (
            usage.uncached_input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * read
            + usage.cache_write_tokens * write
        ) / 1_000_000


class PriceTable:
    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices

    @classmethod
    def load(cls, *extra: Path) -> PriceTable:
        prices: dict[str, Price] = {}
        for path in (DEFAULT_PRICES, *extra):
            prices.update(_read(Path(path)))
        return cls(prices)

    def lookup(self, model: str) -> Price | None:
        model = model.rsplit("/", 1)[-1]
        if model in self.prices:
            return self.prices[model]
        hits = [key for key in self.prices if fnmatch.fnmatchcase(model, key)]
        return self.prices[max(hits, key=len)] if hits else None


def _read(path: Path) -> dict[str, Price]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"price table {path}: cannot read it ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"price table {path}: invalid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"price table {path}: must map model names to {{input: X, output: Y}}")
    try:
        return {str(k): Price.model_validate(v) for k, v in data.items()}
    except ValidationError as exc:
        raise ConfigError(
            f"price table {path}: {exc}\neach entry is 'MODEL: {{input: USD/Mtok, output: USD/Mtok, "
            "cache_read: ..., cache_write: ...}}'"
        ) from None


@dataclass
class Budget:
    usd: float | None = None
    tokens: int | None = None


@dataclass
class Meter:
    """Running totals of one trial (tokens, cost and requests, one ``Usage``); thread-safe
    (the gateway loop adds, pytest reads ``totals()``)."""

    budget: Budget = field(default_factory=Budget)
    usage: Usage = field(default_factory=Usage)
    unpriced: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, model: str, usage: Usage, prices: PriceTable) -> float:
        """Count one response's ``usage`` (priced for ``model``); returns its cost."""
        price = prices.lookup(model)
        cost = price.cost(usage) if price else 0.0
        with self._lock:
            self.usage.add(replace(usage, cost_usd=cost, requests=1))
            if price is None:
                self.unpriced.add(model)
        return cost

    def totals(self) -> Usage:
        """A copy of the totals so far."""
        with self._lock:
            return replace(self.usage)

    def over_budget(self) -> str | None:
        """Why the trial is over its budget, or ``None``."""
        usage = self.totals()
        if self.budget.usd is not None and usage.cost_usd > self.budget.usd:
            return f"cost ${usage.cost_usd:.6f} exceeded the budget of ${self.budget.usd:g}"
        if self.budget.tokens is not None and usage.total > self.budget.tokens:
            return f"{usage.total} tokens exceeded the budget of {self.budget.tokens}"
        return None
