"""Scores: validating what a grader returns, and the statistics over many trials.

``to_grade`` accepts what graders return in practice — a number, ``(score, explanation)``,
a list whose first element is the score (ALE), or a dict with ``score`` — and refuses
anything else (None, NaN, a string, a value outside [0, 1]) with a message naming the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from statistics import NormalDist
from typing import Any

from .errors import GraderError

EPSILON = 1e-9


@dataclass(frozen=True)
class Grade:
    """A validated score in [0, 1] and the grader's explanation of it."""

    score: float
    explanation: str = ""


def to_grade(value: Any, where: str = "evaluate()") -> Grade:
    """Validate a grader's return value; raise ``GraderError`` naming the fix."""
    explanation = ""
    raw = value
    if isinstance(value, Mapping):
        if "score" not in value:
            raise GraderError(f"{where} returned a dict without a 'score' key: {value!r}")
        explanation = str(value.get("explanation") or value.get("reason") or "")
        raw = value["score"]
    elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        raw, explanation = value
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if not value:
            raise GraderError(f"{where} returned an empty list; return [score]")
        raw = value[0]
    if isinstance(raw, bool) or not isinstance(raw, Real):
        raise GraderError(
            f"{where} returned {raw!r} ({type(raw).__name__}); "
            "return a number in [0, 1], optionally with an explanation: (score, 'why')"
        )
    score = float(raw)
    if math.isnan(score):
        raise GraderError(f"{where} returned NaN; return a number in [0, 1]")
    if score < -EPSILON or score > 1 + EPSILON:
        raise GraderError(f"{where} returned {score}, outside [0, 1]; scale it into [0, 1]")
    return Grade(min(max(score, 0.0), 1.0), explanation)


def passes(score: float, threshold: float) -> bool:
    return score >= threshold - EPSILON


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Normal-approximation interval of the mean (t would be wider for tiny n; see docs)."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    m = mean(values)
    if n == 1:
        return (m, m)
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    half = z * math.sqrt(var / n)
    return (max(0.0, m - half), min(1.0, m + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k over ``n`` trials with ``c`` passes (Chen et al., 2021)."""
    if k <= 0 or n <= 0 or k > n:
        raise ValueError(f"pass@k needs 0 < k <= n (k={k}, n={n})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))
