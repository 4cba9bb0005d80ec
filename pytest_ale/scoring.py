"""Scores: validating what a grader returns (statistics over trials live in ``stats.py``).

``to_grade`` accepts what graders return in practice — a number, ``(score, explanation)``,
a list whose first element is the score (ALE), or a dict with ``score`` — and refuses
anything else (None, NaN, a string, a value outside [0, 1]) with a message naming the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
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
