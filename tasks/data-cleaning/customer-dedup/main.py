"""Customer master-data cleanup: normalize fields and merge duplicate customer records."""

from __future__ import annotations

import csv
import json
from pathlib import Path

INSTRUCTION = """\
You are cleaning a CRM export before a migration. input/customers.csv has messy customer
records (inconsistent case and spacing, phone and date formats) and duplicates.

1. Normalize every record: full_name with runs of whitespace collapsed, trimmed, each word
   capitalized (Python str.title()); email trimmed and lower-cased; phone as +1 followed by
   the 10-digit US number (drop a leading country code 1; empty stays empty); signup_date as
   YYYY-MM-DD (input uses YYYY-MM-DD, MM/DD/YYYY and "D Mon YYYY"); city trimmed.
2. Two records belong to the same customer when they share a non-empty normalized email or
   a non-empty normalized phone; this is transitive (A~B and B~C puts A, B, C together).
3. Per customer keep the record with the earliest signup_date (ties: lowest customer_id),
   with its own customer_id, full_name and signup_date; fill its empty email, phone or city
   from the other records of the group, taking them in signup_date order.

Write output/customers_clean.csv (columns customer_id,full_name,email,phone,signup_date,city,
sorted by customer_id) and output/dedup_report.json:
{"input_rows": n, "output_rows": n, "merged": {surviving_id: [sorted ids merged into it], ...}}
listing only customers that had duplicates.
"""

FIELDS = ("full_name", "email", "phone", "signup_date", "city")


def _read(path: Path) -> dict[str, dict[str, str]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return {
                (r.get("customer_id") or "").strip(): {
                    k.strip(): (v or "").strip() for k, v in r.items() if k
                }
                for r in csv.DictReader(fh)
            }
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    expected = _read(reference_dir / "expected_customers.csv") or {}
    got = _read(output_dir / "customers_clean.csv")
    if got is None:
        return 0.0, "output/customers_clean.csv is missing or not a readable CSV"
    problems: list[str] = []
    right = 0
    for cid, exp in expected.items():
        row = got.get(cid)
        if row is None:
            problems.append(f"{cid}: missing (it should survive)")
            continue
        for field in FIELDS:
            if row.get(field, "") == exp[field]:
                right += 1
            else:
                problems.append(f"{cid} {field}: expected {exp[field]!r}, got {row.get(field, '')!r}")
    extra = sorted(set(got) - set(expected))
    if extra:
        problems.append(f"{len(extra)} rows that should have been merged away: {extra[:6]}")
    total = len(expected) * len(FIELDS)
    rows_score = max(0.0, (right - len(extra) * len(FIELDS)) / total)

    exp_report = json.loads((reference_dir / "expected_report.json").read_text())
    try:
        report = json.loads((output_dir / "dedup_report.json").read_text(encoding="utf-8"))
        merged = {str(k): sorted(map(str, v)) for k, v in report.get("merged", {}).items()}
        counts_ok = (report.get("input_rows"), report.get("output_rows")) == (
            exp_report["input_rows"],
            exp_report["output_rows"],
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError) as exc:
        problems.append(f"dedup_report.json unreadable ({exc})")
        merged, counts_ok = {}, False
    exp_groups = exp_report["merged"]
    groups_right = sum(1 for k, v in exp_groups.items() if merged.get(k) == v)
    wrong_groups = sum(1 for k, v in merged.items() if exp_groups.get(k) != v)
    groups_score = max(
        0.0, (groups_right - max(0, wrong_groups - (len(exp_groups) - groups_right))) / len(exp_groups)
    )
    if groups_right < len(exp_groups) or wrong_groups:
        problems.append(f"merged groups: {groups_right}/{len(exp_groups)} right, {wrong_groups} wrong")
    if not counts_ok:
        problems.append(
            f"row counts: expected input_rows {exp_report['input_rows']}, "
            f"output_rows {exp_report['output_rows']}"
        )
    score = round(0.6 * rows_score + 0.3 * groups_score + 0.1 * counts_ok, 4)
    head = f"fields {right}/{total} right, groups {groups_right}/{len(exp_groups)}"
    shown = "; ".join(problems[:8]) + (f"; ... and {len(problems) - 8} more" if len(problems) > 8 else "")
    return score, head + (f". Problems: {shown}" if problems else "")
