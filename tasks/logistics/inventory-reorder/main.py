"""MRO inventory replenishment: safety stock, reorder points and a purchase order from sales."""

from __future__ import annotations

import csv
import json
from pathlib import Path

INSTRUCTION = """\
You are the inventory planner for a maintenance stores room. input/inventory.csv has each
SKU's stock on hand, open purchase orders (on_order), supplier lead time, unit cost, minimum
order quantity (moq) and case pack; input/sales_90d.csv has daily issues for the 90 days
2024-04-01 to 2024-06-29 (days without a row sold 0).

Per SKU, over all 90 days (zero days included):
- avg_daily_demand = mean of the 90 daily totals; sd = their population standard deviation.
- safety_stock = ceil(1.65 * sd * sqrt(lead_time_days)).
- reorder_point = ceil(avg_daily_demand * lead_time_days) + safety_stock.
- inventory_position = on_hand + on_order.
- If inventory_position <= reorder_point, order_qty = max(moq, reorder_point +
  ceil(avg_daily_demand * 30) - inventory_position), rounded UP to a multiple of case_pack;
  otherwise order_qty = 0. order_value = order_qty * unit_cost.

Write output/reorders.csv with columns
sku,avg_daily_demand,safety_stock,reorder_point,inventory_position,order_qty,order_value
(one row per SKU in input order; avg_daily_demand 3 decimals, order_value 2 decimals) and
output/po_summary.json: {"order_lines": number of SKUs with order_qty > 0, "total_value": sum}.
"""

FIELDS = {
    "avg_daily_demand": 0.0011,
    "safety_stock": 0,
    "reorder_point": 0,
    "inventory_position": 0,
    "order_qty": 0,
    "order_value": 0.011,
}


def _read(path: Path) -> dict[str, dict[str, str]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return {(r.get("sku") or "").strip(): r for r in csv.DictReader(fh)}
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    expected = _read(reference_dir / "expected_reorders.csv") or {}
    got = _read(output_dir / "reorders.csv")
    if got is None:
        return 0.0, "output/reorders.csv is missing or not a readable CSV"
    problems: list[str] = []
    right = total = 0
    for sku, exp in expected.items():
        row = got.get(sku, {})
        for field, tol in FIELDS.items():
            total += 1
            try:
                ok = abs(float(row.get(field) or "nan") - float(exp[field])) <= tol
            except ValueError:
                ok = False
            right += ok
            if not ok:
                problems.append(f"{sku} {field}: expected {exp[field]}, got {row.get(field) or '(none)'}")
    exp_po = json.loads((reference_dir / "expected_po_summary.json").read_text())
    try:
        po = json.loads((output_dir / "po_summary.json").read_text(encoding="utf-8"))
        po_ok = (
            po.get("order_lines") == exp_po["order_lines"]
            and abs(float(po["total_value"]) - exp_po["total_value"]) < 0.011
        )
    except (
        OSError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        AttributeError,
        KeyError,
        TypeError,
        ValueError,
    ):
        po, po_ok = None, False
    if not po_ok:
        problems.append(f"po_summary.json: expected {exp_po}, got {po}")
    score = round(0.85 * right / total + 0.15 * po_ok, 4)
    shown = "; ".join(problems[:8]) + (f"; ... and {len(problems) - 8} more" if len(problems) > 8 else "")
    return score, f"{right}/{total} values right, PO summary {'ok' if po_ok else 'wrong'}" + (
        f". Problems: {shown}" if problems else ""
    )
