"""Oracle: per destination, the fewest trailers by depth-first search from the lower bound up."""

import csv
import json
import math
from pathlib import Path

fleet = json.loads(Path("input/fleet.json").read_text())
CAP_KG, CAP_M3, SLOTS = fleet["max_payload_kg"], fleet["max_volume_m3"], fleet["max_pallet_positions"]
INCOMPATIBLE = {("3", "5.1"), ("5.1", "3")}
with open("input/pallets.csv", newline="") as fh:
    pallets = [
        {**p, "weight_kg": float(p["weight_kg"]), "volume_m3": float(p["volume_m3"])}
        for p in csv.DictReader(fh)
    ]


def fits(load: list[dict], pallet: dict) -> bool:
    return (
        len(load) < SLOTS
        and sum(p["weight_kg"] for p in load) + pallet["weight_kg"] <= CAP_KG
        and sum(p["volume_m3"] for p in load) + pallet["volume_m3"] <= CAP_M3 + 1e-9
        and not any((p["hazmat_class"], pallet["hazmat_class"]) in INCOMPATIBLE for p in load)
    )


def pack(items: list[dict], trucks: int) -> list[list[dict]] | None:
    loads: list[list[dict]] = [[] for _ in range(trucks)]

    def place(i: int) -> bool:
        if i == len(items):
            return True
        tried_empty = False
        for load in loads:
            if not load:
                if tried_empty:
                    continue  # empty trucks are interchangeable
                tried_empty = True
            if fits(load, items[i]):
                load.append(items[i])
                if place(i + 1):
                    return True
                load.pop()
        return False

    return loads if place(0) else None


plan = []
for dest in sorted({p["destination"] for p in pallets}):
    items = sorted((p for p in pallets if p["destination"] == dest), key=lambda p: -p["weight_kg"])
    bound = max(
        math.ceil(sum(p["weight_kg"] for p in items) / CAP_KG),
        math.ceil(sum(p["volume_m3"] for p in items) / CAP_M3),
        math.ceil(len(items) / SLOTS),
    )
    trucks = bound
    while (loads := pack(items, trucks)) is None:
        trucks += 1
    plan.extend((dest, load) for load in loads if load)

out = Path("output")
out.mkdir(exist_ok=True)
result = {
    "trucks": [
        {
            "trailer": f"T{n:02d}",
            "destination": dest,
            "pallets": sorted(p["pallet_id"] for p in load),
            "weight_kg": sum(p["weight_kg"] for p in load),
            "volume_m3": round(sum(p["volume_m3"] for p in load), 2),
        }
        for n, (dest, load) in enumerate(plan, start=1)
    ]
}
(out / "load_plan.json").write_text(json.dumps(result, indent=2) + "\n")
