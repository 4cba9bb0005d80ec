"""Truck load planning: assign pallets to trailers under weight, volume, slot and hazmat rules."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

INSTRUCTION = """\
You are a load planner at a cross-dock. input/pallets.csv lists today's outbound pallets
(destination, weight, volume, hazmat class); input/fleet.json gives the trailer limits and
loading rules.

Assign every pallet to exactly one trailer so that each trailer: serves one destination,
stays within max_payload_kg, max_volume_m3 and max_pallet_positions, and never carries
hazmat class 3 together with class 5.1. Use as few trailers as possible (the dispatcher pays
per trailer).

Write output/load_plan.json:
{"trucks": [{"trailer": "T01", "destination": "DEN", "pallets": ["PL-001", ...],
             "weight_kg": total, "volume_m3": total}, ...]}
"""

TASK = Path(__file__).parent
INCOMPATIBLE = {frozenset({"3", "5.1"})}


def _load_inputs() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    with (TASK / "input" / "pallets.csv").open(newline="") as fh:
        pallets = {p["pallet_id"]: p for p in csv.DictReader(fh)}
    return pallets, json.loads((TASK / "input" / "fleet.json").read_text())


def _truck_problems(
    truck: dict[str, Any], pallets: dict[str, dict[str, Any]], fleet: dict[str, Any]
) -> list[str]:
    ids = [i for i in truck.get("pallets", []) if i in pallets]
    items = [pallets[i] for i in ids]
    problems = []
    if len({p["destination"] for p in items}) > 1 or any(
        p["destination"] != truck.get("destination") for p in items
    ):
        problems.append("mixes destinations or mislabels its destination")
    weight = sum(float(p["weight_kg"]) for p in items)
    volume = sum(float(p["volume_m3"]) for p in items)
    if weight > fleet["max_payload_kg"]:
        problems.append(f"{weight:.0f} kg over the {fleet['max_payload_kg']} kg payload")
    if volume > fleet["max_volume_m3"] + 1e-6:
        problems.append(f"{volume:.2f} m3 over the {fleet['max_volume_m3']} m3 volume")
    if len(ids) > fleet["max_pallet_positions"]:
        problems.append(f"{len(ids)} pallets over {fleet['max_pallet_positions']} positions")
    classes = {p["hazmat_class"] for p in items}
    if any(pair <= classes for pair in INCOMPATIBLE):
        problems.append("carries hazmat class 3 with 5.1")
    try:
        sums_ok = (
            abs(float(truck.get("weight_kg")) - weight) < 0.5
            and abs(float(truck.get("volume_m3")) - volume) < 0.02
        )
    except (TypeError, ValueError):
        sums_ok = False
    if not sums_ok:
        problems.append(f"reported totals wrong (actual {weight:.0f} kg, {volume:.2f} m3)")
    return problems


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    optimum = json.loads((reference_dir / "optimum.json").read_text())["optimal_trucks"]
    pallets, fleet = _load_inputs()
    try:
        plan = json.loads((output_dir / "load_plan.json").read_text(encoding="utf-8"))
        trucks = plan["trucks"]
        if not isinstance(trucks, list) or not all(isinstance(t, dict) for t in trucks):
            raise TypeError("trucks must be a list of objects")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        return 0.0, f"output/load_plan.json is missing or malformed ({type(exc).__name__}: {exc})"
    notes: list[str] = []
    seen: dict[str, int] = {}
    for truck in trucks:
        for pid in truck.get("pallets", []) if isinstance(truck.get("pallets"), list) else []:
            seen[str(pid)] = seen.get(str(pid), 0) + 1
    once = sum(1 for pid in pallets if seen.get(pid) == 1)
    unknown = sorted(set(seen) - set(pallets))
    coverage = max(0.0, (once - len(unknown)) / len(pallets))
    if once < len(pallets) or unknown:
        missing = [p for p in pallets if seen.get(p, 0) != 1]
        notes.append(
            f"{once}/{len(pallets)} pallets loaded exactly once "
            f"(problems: {missing[:6]}, unknown ids {unknown[:3]})"
        )
    bad_trucks = 0
    for truck in trucks:
        problems = _truck_problems(truck, pallets, fleet)
        if problems:
            bad_trucks += 1
            notes.append(f"trailer {truck.get('trailer', '?')}: " + ", ".join(problems))
    validity = 1 - bad_trucks / len(trucks) if trucks else 0.0
    used = sum(1 for t in trucks if t.get("pallets"))
    fully_valid = coverage == 1.0 and bad_trucks == 0
    efficiency = min(1.0, optimum / used) if fully_valid and used else 0.0
    if fully_valid and used > optimum:
        notes.append(f"{used} trailers used; {optimum} are enough")
    score = round(0.4 * coverage + 0.3 * validity + 0.3 * efficiency, 4)
    head = (
        f"coverage {coverage:.2f}, valid trailers {validity:.2f}, efficiency {efficiency:.2f} "
        f"({used} trailers, optimum {optimum})"
    )
    return score, head + (". " + "; ".join(notes[:8]) if notes else "")
