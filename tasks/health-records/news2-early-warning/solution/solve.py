"""Oracle: score every observation with NEWS2 (SpO2 scale 1) and list escalations."""

import csv
import gzip
import json
from pathlib import Path


def band(value, bands):
    for upper, points in bands:
        if value <= upper:
            return points
    raise ValueError(value)


def news2(o):
    parts = [
        band(o["resp_rate"], [(8, 3), (11, 1), (20, 0), (24, 2), (10**9, 3)]),
        band(o["spo2"], [(91, 3), (93, 2), (95, 1), (10**9, 0)]),
        2 if o["supplemental_o2"] else 0,
        band(o["systolic_bp"], [(90, 3), (100, 2), (110, 1), (219, 0), (10**9, 3)]),
        band(o["heart_rate"], [(40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (10**9, 3)]),
        0 if o["consciousness"] == "A" else 3,
        band(round(o["temperature_c"] * 10), [(350, 3), (360, 1), (380, 0), (390, 1), (10**9, 2)]),
    ]
    total = sum(parts)
    if total >= 7:
        risk = "high"
    elif total >= 5:
        risk = "medium"
    elif 3 in parts:
        risk = "low-medium"
    else:
        risk = "low"
    return total, risk


with gzip.open("input/observations.jsonl.gz", "rt") as fh:
    obs = [json.loads(line) for line in fh if line.strip()]
obs.sort(key=lambda o: (o["patient_id"], o["recorded_at"]))
out = Path("output")
out.mkdir(exist_ok=True)
latest = {}
with open(out / "news2_scores.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(["patient_id", "recorded_at", "score", "clinical_risk"])
    for o in obs:
        score, risk = news2(o)
        writer.writerow([o["patient_id"], o["recorded_at"], score, risk])
        latest[o["patient_id"]] = {
            "patient_id": o["patient_id"],
            "recorded_at": o["recorded_at"],
            "score": score,
            "risk": risk,
        }
escalate = [v for v in latest.values() if v["risk"] in ("medium", "high")]
escalate.sort(key=lambda v: (-v["score"], v["patient_id"]))
(out / "escalations.json").write_text(json.dumps(escalate, indent=2) + "\n")
