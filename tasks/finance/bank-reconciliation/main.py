"""Bank reconciliation: match a month's ledger to the bank statement and reconcile balances."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

INSTRUCTION = """\
You are closing the books for March 2024. input/ledger.json holds the company's cash
ledger (opening book balance and entries; negative amounts are payments),
input/bank_statement.csv the bank's lines, input/statement_header.txt the bank's opening
balance.

Matching rule: take bank lines in bank_ref order. A bank line matches a not-yet-matched
ledger entry with exactly the same amount whose ledger date is 0 to 3 days before (or on)
the bank date. With several candidates, take the smallest day gap, then the lowest ledger id.

Write output/reconciliation.json with keys:
  "matches": {ledger_id: bank_ref, ...},
  "outstanding_ledger": [ledger ids with no bank line, sorted],
  "bank_only": [bank_refs with no ledger entry, in bank_ref order],
  "bank_closing_balance": bank opening + all bank lines,
  "book_closing_balance": book opening + all ledger entries,
  "adjusted_bank_balance": bank closing + amounts of the outstanding ledger entries,
  "adjusted_book_balance": book closing + amounts of the bank-only lines,
  "difference": adjusted_bank_balance - adjusted_book_balance
(balances as numbers, to the cent). Also write output/adjusting_entries.csv with columns
date,bank_ref,description,amount: one journal line per bank-only item, for the books.
"""

BALANCES = (
    "bank_closing_balance",
    "book_closing_balance",
    "adjusted_bank_balance",
    "adjusted_book_balance",
    "difference",
)


def _number(value: Any) -> float | None:
    try:
        return float(str(value).replace(",", ""))
    except (TypeError, ValueError):
        return None


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    expected = json.loads((reference_dir / "expected_reconciliation.json").read_text())
    try:
        got = json.loads((output_dir / "reconciliation.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return 0.0, f"output/reconciliation.json is missing or not valid JSON ({exc})"
    if not isinstance(got, dict):
        return 0.0, "output/reconciliation.json must be a JSON object"
    parts: dict[str, float] = {}
    notes: list[str] = []

    # matches: recall of expected pairs, minus wrong pairs claimed
    exp_pairs = set(expected["matches"].items())
    raw = got.get("matches")
    got_pairs = {(str(k), str(v)) for k, v in raw.items()} if isinstance(raw, dict) else set()
    right = len(exp_pairs & got_pairs)
    wrong = len(got_pairs - exp_pairs)
    parts["matches"] = max(0.0, (right - wrong) / len(exp_pairs))
    if right < len(exp_pairs) or wrong:
        missing = sorted(exp_pairs - got_pairs)[:5]
        notes.append(f"matches: {right}/{len(exp_pairs)} right, {wrong} wrong; e.g. missing {missing}")

    for key in ("outstanding_ledger", "bank_only"):
        exp_set, value = set(expected[key]), got.get(key)
        got_set = {str(v) for v in value} if isinstance(value, list) else set()
        parts[key] = 1.0 if got_set == exp_set else 0.0
        if got_set != exp_set:
            notes.append(
                f"{key}: missing {sorted(exp_set - got_set)}, unexpected {sorted(got_set - exp_set)}"
            )

    good = 0
    for key in BALANCES:
        value = _number(got.get(key))
        if value is not None and abs(value - expected[key]) <= 0.005:
            good += 1
        else:
            notes.append(f"{key}: expected {expected[key]:.2f}, got {got.get(key)!r}")
    parts["balances"] = good / len(BALANCES)

    try:
        with (output_dir / "adjusting_entries.csv").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        entries = {(r.get("bank_ref") or "").strip(): _number(r.get("amount")) for r in rows}
    except (OSError, UnicodeDecodeError, csv.Error):
        entries = {}
    with (reference_dir / "expected_adjusting_entries.csv").open(newline="") as fh:
        exp_entries = {r["bank_ref"]: float(r["amount"]) for r in csv.DictReader(fh)}
    ok_entries = sum(
        1
        for ref, amt in exp_entries.items()
        if entries.get(ref) is not None and abs(entries[ref] - amt) < 0.005
    )
    extra = len(set(entries) - set(exp_entries))
    parts["adjusting_entries"] = max(0.0, (ok_entries - extra) / len(exp_entries))
    if ok_entries < len(exp_entries) or extra:
        notes.append(f"adjusting_entries.csv: {ok_entries}/{len(exp_entries)} right, {extra} unexpected")

    weights = {
        "matches": 0.35,
        "outstanding_ledger": 0.15,
        "bank_only": 0.15,
        "balances": 0.25,
        "adjusting_entries": 0.10,
    }
    score = round(sum(weights[k] * parts[k] for k in weights), 4)
    summary = ", ".join(f"{k} {parts[k]:.2f}" for k in weights)
    return score, summary + ("" if not notes else ". " + "; ".join(notes))
