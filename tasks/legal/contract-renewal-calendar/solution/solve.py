"""Oracle: extract key terms from each contract with patterns, then build a renewal calendar."""

import calendar
import csv
import datetime as dt
import json
import re
from pathlib import Path

NOT_PARTIES = {"agreement", "effective date", "lease"}


def add_months(day: dt.date, months: int) -> dt.date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


DATE = re.compile(
    r"(?P<iso>\d{4}-\d{2}-\d{2})|the (?P<d>\d+)(?:st|nd|rd|th) day of (?P<m>[A-Z][a-z]+),? (?P<y>\d{4})"
    r"|(?P<us>[A-Z][a-z]+ \d{1,2}, \d{4})"
)


def effective_date(flat: str) -> dt.date:
    """The first date with the word 'effective' shortly before (or just after) it."""
    for match in DATE.finditer(flat):
        window = flat[max(0, match.start() - 120) : match.end() + 40].lower()
        if "effective" not in window:
            continue
        if match["iso"]:
            return dt.date.fromisoformat(match["iso"])
        if match["d"]:
            return dt.datetime.strptime(f"{match['d']} {match['m']} {match['y']}", "%d %B %Y").date()
        return dt.datetime.strptime(match["us"], "%B %d, %Y").date()
    raise ValueError("no effective date")


def extract(text: str) -> dict:
    flat = " ".join(text.split())
    parties = []
    for name, role in re.findall(r"([A-Z][\w.,&' -]+?)(?:, an? [^(]*?)?\s*\(\"([\w ]+)\"\)", flat):
        name = re.split(r"\b(?:between|Parties:|and|\d{4},)\s+", name)[-1].strip(" ,")
        if role.lower() not in NOT_PARTIES and name not in parties:
            parties.append(name)
    term = re.search(r"(?:term|in effect)[^.]{0,60}?\(?(\d+)\)? (months|years)", flat, re.IGNORECASE)
    months = int(term.group(1)) * (12 if term.group(2) == "years" else 1)
    auto = (
        bool(re.search(r"renew[s]? automatically|automatically renew", flat)) and "does not renew" not in flat
    )
    notice = None
    if auto:
        renewal = re.search(r"[^.]*automatically[^.]*\.|[^.]*renew[^.]*\.", flat).group(0)
        days = re.search(r"\((\d+)\) days", renewal)
        notice = int(days.group(1)) if days else None
    cap = None
    liability = re.search(r"[^.]*liability[^.]*(?:exceed|limited to)[^.]*\.", flat, re.IGNORECASE)
    if liability:
        amount = re.search(r"\$([\d,]+)", liability.group(0))
        cap = int(amount.group(1).replace(",", "")) if amount else None
    law = re.search(r"laws? of the State of ([A-Z][a-z]+(?: [A-Z][a-z]+)?)|([A-Z][a-z]+) law governs", flat)
    return {
        "parties": parties[:2],
        "effective_date": effective_date(flat).isoformat(),
        "initial_term_months": months,
        "auto_renewal": auto,
        "notice_days": notice,
        "liability_cap_usd": cap,
        "governing_law": law.group(1) or law.group(2),
    }


contracts = {
    p.name: extract(p.read_text(encoding="utf-8")) for p in sorted(Path("input/contracts").glob("*.txt"))
}
out = Path("output")
out.mkdir(exist_ok=True)
(out / "contracts.json").write_text(json.dumps(contracts, indent=2) + "\n")
rows = []
for name, c in contracts.items():
    expires = add_months(dt.date.fromisoformat(c["effective_date"]), c["initial_term_months"])
    deadline = (
        expires - dt.timedelta(days=c["notice_days"]) if c["auto_renewal"] and c["notice_days"] else None
    )
    rows.append([name, expires.isoformat(), deadline.isoformat() if deadline else ""])
rows.sort(key=lambda r: r[1])
with open(out / "renewal_calendar.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(["contract", "expiration_date", "notice_deadline"])
    writer.writerows(rows)
