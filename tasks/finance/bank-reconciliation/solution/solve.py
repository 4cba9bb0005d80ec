"""Oracle: match ledger entries to bank lines, then reconcile both balances."""

import csv
import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

ledger = json.loads(Path("input/ledger.json").read_text())
with open("input/bank_statement.csv", newline="") as fh:
    bank = sorted(csv.DictReader(fh), key=lambda b: b["bank_ref"])
header = Path("input/statement_header.txt").read_text()
bank_opening = Decimal(re.search(r"Opening balance:\s*([\d,.-]+)", header).group(1).replace(",", ""))
book_opening = Decimal(str(ledger["opening_book_balance"]))
entries = {e["id"]: e for e in ledger["entries"]}

matches: dict[str, str] = {}
for line in bank:
    amount = Decimal(line["amount"])
    day = dt.date.fromisoformat(line["date"])
    candidates = []
    for entry in entries.values():
        if entry["id"] in matches or Decimal(str(entry["amount"])) != amount:
            continue
        gap = (day - dt.date.fromisoformat(entry["date"])).days
        if 0 <= gap <= 3:
            candidates.append((gap, entry["id"]))
    if candidates:
        matches[min(candidates)[1]] = line["bank_ref"]

matched_refs = set(matches.values())
outstanding = sorted(i for i in entries if i not in matches)
bank_only = [b for b in bank if b["bank_ref"] not in matched_refs]
bank_closing = bank_opening + sum(Decimal(b["amount"]) for b in bank)
book_closing = book_opening + sum(Decimal(str(e["amount"])) for e in entries.values())
adjusted_bank = bank_closing + sum(Decimal(str(entries[i]["amount"])) for i in outstanding)
adjusted_book = book_closing + sum(Decimal(b["amount"]) for b in bank_only)

out = Path("output")
out.mkdir(exist_ok=True)
report = {
    "matches": dict(sorted(matches.items())),
    "outstanding_ledger": outstanding,
    "bank_only": [b["bank_ref"] for b in bank_only],
    "bank_closing_balance": float(bank_closing),
    "book_closing_balance": float(book_closing),
    "adjusted_bank_balance": float(adjusted_bank),
    "adjusted_book_balance": float(adjusted_book),
    "difference": float(adjusted_bank - adjusted_book),
}
(out / "reconciliation.json").write_text(json.dumps(report, indent=2) + "\n")
with open(out / "adjusting_entries.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(["date", "bank_ref", "description", "amount"])
    for b in bank_only:
        writer.writerow([b["date"], b["bank_ref"], b["description"], b["amount"]])
