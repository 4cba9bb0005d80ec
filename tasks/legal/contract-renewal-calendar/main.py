"""Contract abstraction: key terms from five commercial contracts and a renewal calendar."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

INSTRUCTION = """\
You are a contracts manager building the renewal calendar. input/contracts/ holds five
signed commercial contracts as plain text.

Abstract each contract into output/contracts.json, keyed by file name:
{"<file name>": {
   "parties": [the two contracting parties' legal names, as written, in order of appearance],
   "effective_date": "YYYY-MM-DD",
   "initial_term_months": integer,
   "auto_renewal": true/false (does it renew automatically without a new signature?),
   "notice_days": days of notice needed to stop an automatic renewal (null if no auto-renewal),
   "liability_cap_usd": the fixed dollar cap on liability, or null when there is no fixed
                        dollar amount,
   "governing_law": the US state whose law governs, e.g. "New York"}, ...}

Then write output/renewal_calendar.csv with columns contract,expiration_date,notice_deadline,
one row per contract sorted by expiration_date: expiration_date is the effective date plus
the initial term in calendar months (same day of the month); notice_deadline is
expiration_date minus notice_days, left empty for contracts that do not renew automatically.
"""

FIELDS = (
    "parties",
    "effective_date",
    "initial_term_months",
    "auto_renewal",
    "notice_days",
    "liability_cap_usd",
    "governing_law",
)


def _name(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(text).lower()).strip()


def _same(field: str, expected: Any, got: Any) -> bool:
    if field == "parties":
        return isinstance(got, list) and sorted(map(_name, got)) == sorted(map(_name, expected))
    if field == "governing_law":
        return _name(got).removeprefix("state of ") == _name(expected)
    if field in ("initial_term_months", "notice_days", "liability_cap_usd"):
        if expected is None:
            return got is None
        try:
            return float(got) == float(expected)
        except (TypeError, ValueError):
            return False
    return got == expected


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    expected = json.loads((reference_dir / "expected_contracts.json").read_text())
    try:
        got = json.loads((output_dir / "contracts.json").read_text(encoding="utf-8"))
        if not isinstance(got, dict):
            raise TypeError("not a JSON object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        return 0.0, f"output/contracts.json is missing or invalid ({exc})"
    problems: list[str] = []
    right = total = 0
    for name, exp in expected.items():
        row = got.get(name) if isinstance(got.get(name), dict) else {}
        for field in FIELDS:
            total += 1
            if _same(field, exp[field], row.get(field)):
                right += 1
            else:
                problems.append(f"{name} {field}: expected {exp[field]!r}, got {row.get(field)!r}")
    with (reference_dir / "expected_calendar.csv").open(newline="") as fh:
        exp_cal = {r["contract"]: r for r in csv.DictReader(fh)}
    try:
        with (output_dir / "renewal_calendar.csv").open(newline="", encoding="utf-8") as fh:
            cal = {(r.get("contract") or "").strip(): r for r in csv.DictReader(fh)}
    except (OSError, UnicodeDecodeError, csv.Error):
        problems.append("output/renewal_calendar.csv missing or unreadable")
        cal = {}
    for name, exp in exp_cal.items():
        for field in ("expiration_date", "notice_deadline"):
            total += 1
            value = (cal.get(name, {}).get(field) or "").strip()
            if value == exp[field]:
                right += 1
            else:
                problems.append(
                    f"calendar {name} {field}: expected {exp[field] or '(empty)'}, got {value or '(empty)'}"
                )
    shown = "; ".join(problems[:8]) + (f"; ... and {len(problems) - 8} more" if len(problems) > 8 else "")
    return round(right / total, 4), f"{right}/{total} terms right" + (
        f". Problems: {shown}" if problems else ""
    )
