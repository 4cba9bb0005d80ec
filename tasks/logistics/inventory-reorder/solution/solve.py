"""Oracle: demand statistics from 90 days of sales, safety stock, reorder points and a PO."""

import csv
import datetime as dt
import json
import math
import statistics
from pathlib import Path

START, DAYS = dt.date(2024, 4, 1), 90
with open("input/inventory.csv", newline="") as fh:
    items = list(csv.DictReader(fh))
daily = {item["sku"]: [0] * DAYS for item in items}
with open("input/sales_90d.csv", newline="") as fh:
    for row in csv.DictReader(fh):
        index = (dt.date.fromisoformat(row["date"]) - START).days
        if 0 <= index < DAYS and row["sku"] in daily:
            daily[row["sku"]][index] += int(row["qty"])
rows, total = [], 0.0
for item in items:
    series = daily[item["sku"]]
    mean, sd = statistics.fmean(series), statistics.pstdev(series)
    lead = int(item["lead_time_days"])
    safety = math.ceil(1.65 * sd * math.sqrt(lead))
    rop = math.ceil(mean * lead) + safety
    position = int(item["on_hand"]) + int(item["on_order"])
    qty = 0
    if position <= rop:
        need = max(int(item["moq"]), rop + math.ceil(mean * 30) - position)
        pack = int(item["case_pack"])
        qty = math.ceil(need / pack) * pack
    value = qty * float(item["unit_cost"])
    total += value
    rows.append([item["sku"], f"{mean:.3f}", safety, rop, position, qty, f"{value:.2f}"])
out = Path("output")
out.mkdir(exist_ok=True)
with open(out / "reorders.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(
        [
            "sku",
            "avg_daily_demand",
            "safety_stock",
            "reorder_point",
            "inventory_position",
            "order_qty",
            "order_value",
        ]
    )
    writer.writerows(rows)
summary = {"order_lines": sum(1 for r in rows if r[5]), "total_value": round(total, 2)}
(out / "po_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
