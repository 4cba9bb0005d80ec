"""Scoring helpers of word_census (a bare-named module, like many ALE tasks have)."""

import re
from collections import Counter

TASK = "word_census"


def census(text: str) -> dict:
    words = re.findall(r"[a-z']+", text.lower())
    top = Counter(words).most_common(1)[0][0] if words else ""
    return {"words": len(words), "lines": len(text.splitlines()), "top": top}


def score_census(submission: dict, expected: dict) -> float:
    keys = ("words", "lines", "top")
    return sum(submission.get(k) == expected[k] for k in keys) / len(keys)
