"""Oracle: normalize customer fields, union duplicates by email or phone, merge survivors."""

import csv
import datetime as dt
import json
import re
from pathlib import Path


def norm_date(text: str) -> str:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%d %b %Y"):
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            pass
    raise ValueError(text)


def norm_phone(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return "+1" + digits if len(digits) == 10 else ""


with open("input/customers.csv", newline="", encoding="utf-8") as fh:
    raw = list(csv.DictReader(fh))
rows = [
    {
        "customer_id": r["customer_id"].strip(),
        "full_name": " ".join(r["full_name"].split()).title(),
        "email": r["email"].strip().lower(),
        "phone": norm_phone(r["phone"]),
        "signup_date": norm_date(r["signup_date"]),
        "city": r["city"].strip(),
    }
    for r in raw
]
parent = list(range(len(rows)))


def find(i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


for key in ("email", "phone"):
    first: dict[str, int] = {}
    for i, r in enumerate(rows):
        if r[key]:
            if r[key] in first:
                parent[find(i)] = find(first[r[key]])
            else:
                first[r[key]] = i
groups: dict[int, list[dict]] = {}
for i, r in enumerate(rows):
    groups.setdefault(find(i), []).append(r)
clean, merged = [], {}
for members in groups.values():
    members.sort(key=lambda r: (r["signup_date"], r["customer_id"]))
    survivor = dict(members[0])
    for field in ("email", "phone", "city"):
        if not survivor[field]:
            survivor[field] = next((m[field] for m in members[1:] if m[field]), "")
    clean.append(survivor)
    if len(members) > 1:
        merged[survivor["customer_id"]] = sorted(m["customer_id"] for m in members[1:])
clean.sort(key=lambda r: r["customer_id"])
out = Path("output")
out.mkdir(exist_ok=True)
with open(out / "customers_clean.csv", "w", newline="", encoding="utf-8") as fh:
    writer = csv.DictWriter(fh, fieldnames=list(clean[0]))
    writer.writeheader()
    writer.writerows(clean)
report = {"input_rows": len(rows), "output_rows": len(clean), "merged": dict(sorted(merged.items()))}
(out / "dedup_report.json").write_text(json.dumps(report, indent=2) + "\n")
