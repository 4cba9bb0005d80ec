"""Loan amortization: payments, payoff month and interest for a small-business loan book."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

INSTRUCTION = """\
You are a loan servicing analyst. input/loans.csv lists fixed-rate business loans
(principal, annual rate in percent, term in months, and a voluntary extra principal
payment the borrower makes every month).

For every loan:
1. Monthly rate r = annual_rate_pct / 1200. Scheduled payment
   P = principal * r / (1 - (1 + r) ** -term_months), rounded to the cent (half up).
2. Amortize month by month from month 1: interest = balance * r rounded to the cent
   (half up); the amount paid is P + extra_payment, except that when balance + interest
   is not more than that, the amount paid is exactly balance + interest (the final
   payment). principal = paid - interest; balance -= principal. Stop when the balance is 0.
3. Write output/schedules/<loan_id>.csv with columns month,payment,interest,principal,balance
   (one row per month, amounts with 2 decimals).

Then write output/summary.csv with columns
loan_id,monthly_payment,months_to_payoff,total_interest,total_paid
(one row per loan, in input order; monthly_payment is P, totals are sums over the schedule).
"""

TOTAL_TOLERANCE = 1.00  # dollars, forgives float accumulation over a long schedule


def _money(text: Any) -> float | None:
    try:
        return float(str(text).replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


def _read_csv(path: Path) -> list[dict[str, str]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [
                {(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh)
            ]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _report(checks: list[tuple[str, bool]]) -> tuple[float, str]:
    failed = [name for name, ok in checks if not ok]
    passed = len(checks) - len(failed)
    if not failed:
        return 1.0, f"all {len(checks)} checks passed"
    shown = "; ".join(failed[:8]) + (f"; ... and {len(failed) - 8} more" if len(failed) > 8 else "")
    return passed / len(checks), f"{passed}/{len(checks)} checks passed. Failed: {shown}"


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    expected = _read_csv(reference_dir / "expected_summary.csv") or []
    schedules = json.loads((reference_dir / "expected_schedules.json").read_text())
    got_rows = _read_csv(output_dir / "summary.csv")
    if got_rows is None:
        return 0.0, "output/summary.csv is missing or not a readable CSV"
    got = {row.get("loan_id", ""): row for row in got_rows}
    checks: list[tuple[str, bool]] = []
    for exp in expected:
        loan = exp["loan_id"]
        row = got.get(loan)
        if row is None:
            checks.append((f"{loan}: no row in summary.csv", False))
            checks.extend((f"{loan}: {field} missing", False) for field in ("months", "interest", "paid"))
            continue
        pay = _money(row.get("monthly_payment"))
        checks.append(
            (
                f"{loan} monthly_payment: expected {exp['monthly_payment']}, "
                f"got {row.get('monthly_payment')}",
                pay is not None and abs(pay - float(exp["monthly_payment"])) <= 0.011,
            )
        )
        checks.append(
            (
                f"{loan} months_to_payoff: expected {exp['months_to_payoff']}, "
                f"got {row.get('months_to_payoff')}",
                row.get("months_to_payoff", "").split(".")[0] == exp["months_to_payoff"],
            )
        )
        for field in ("total_interest", "total_paid"):
            value = _money(row.get(field))
            checks.append(
                (
                    f"{loan} {field}: expected {exp[field]}, got {row.get(field)}",
                    value is not None and abs(value - float(exp[field])) <= TOTAL_TOLERANCE,
                )
            )
    for loan, exp_sched in schedules.items():
        rows = _read_csv(output_dir / "schedules" / f"{loan}.csv")
        if not rows:
            checks.append((f"schedules/{loan}.csv missing or empty", False))
            continue
        first, last = rows[0], rows[-1]
        first_interest, final_balance = _money(first.get("interest")), _money(last.get("balance"))
        ok = (
            len(rows) == exp_sched["rows"]
            and first_interest is not None
            and abs(first_interest - float(exp_sched["first"]["interest"])) < 0.005
            and final_balance is not None
            and abs(final_balance) < 0.005
        )
        checks.append(
            (
                f"schedules/{loan}.csv: expected {exp_sched['rows']} rows, first interest "
                f"{exp_sched['first']['interest']}, final balance 0.00; got {len(rows)} rows, first "
                f"interest {first.get('interest')}, final balance {last.get('balance')}",
                ok,
            )
        )
    return _report(checks)
