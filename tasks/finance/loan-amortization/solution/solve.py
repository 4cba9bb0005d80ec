"""Oracle: amortize every loan in input/loans.csv with exact decimal arithmetic."""

import csv
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def amortize(principal: Decimal, rate_pct: Decimal, term: int, extra: Decimal):
    r = rate_pct / Decimal(1200)
    payment = cents(principal * r / (1 - (1 + r) ** -term))
    balance, month, rows = principal, 0, []
    while balance > 0:
        month += 1
        interest = cents(balance * r)
        due = payment + extra
        if balance + interest <= due:
            due = balance + interest
        principal_part = due - interest
        balance -= principal_part
        rows.append((month, due, interest, principal_part, balance))
    return payment, rows


def main() -> None:
    out = Path("output")
    (out / "schedules").mkdir(parents=True, exist_ok=True)
    summary = []
    with open("input/loans.csv", newline="") as fh:
        for loan in csv.DictReader(fh):
            payment, rows = amortize(
                Decimal(loan["principal"]),
                Decimal(loan["annual_rate_pct"]),
                int(loan["term_months"]),
                Decimal(loan["extra_payment"]),
            )
            with open(out / "schedules" / f"{loan['loan_id']}.csv", "w", newline="") as fh_out:
                writer = csv.writer(fh_out)
                writer.writerow(["month", "payment", "interest", "principal", "balance"])
                writer.writerows(rows)
            summary.append(
                {
                    "loan_id": loan["loan_id"],
                    "monthly_payment": str(payment),
                    "months_to_payoff": len(rows),
                    "total_interest": str(sum((r[2] for r in rows), Decimal(0))),
                    "total_paid": str(sum((r[1] for r in rows), Decimal(0))),
                }
            )
    with open(out / "summary.csv", "w", newline="") as fh_out:
        writer = csv.DictWriter(fh_out, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)


main()
