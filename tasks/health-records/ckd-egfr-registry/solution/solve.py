"""Oracle: CKD-EPI 2021 eGFR per creatinine result, staged and trended per patient."""

import csv
import datetime as dt
import json
import sqlite3
from pathlib import Path

db = sqlite3.connect("input/labs.sqlite")
patients = {
    pid: (sex, dt.date.fromisoformat(bd))
    for pid, sex, bd in db.execute("SELECT id, sex, birth_date FROM patients")
}
rows = db.execute(
    "SELECT patient_id, value, unit, collected_at FROM lab_results "
    "WHERE loinc = '2160-0' AND status = 'final' AND value IS NOT NULL ORDER BY patient_id, collected_at"
).fetchall()


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def egfr(scr: float, sex: str, age: int) -> float:
    kappa, alpha = (0.7, -0.241) if sex == "F" else (0.9, -0.302)
    ratio = scr / kappa
    value = 142 * min(ratio, 1) ** alpha * max(ratio, 1) ** -1.200 * 0.9938**age
    return value * (1.012 if sex == "F" else 1.0)


def stage(value: float) -> str:
    for floor, name in ((90, "G1"), (60, "G2"), (45, "G3a"), (30, "G3b"), (15, "G4")):
        if value >= floor:
            return name
    return "G5"


series: dict[str, list[tuple[dt.date, float]]] = {}
for pid, value, unit, collected in rows:
    scr = value / 88.4 if unit.lower().startswith(("umol", "µmol")) else value
    day = dt.date.fromisoformat(collected[:10])
    sex, birth = patients[pid]
    series.setdefault(pid, []).append((day, egfr(scr, sex, age_on(birth, day))))

out = Path("output")
out.mkdir(exist_ok=True)
counts = {s: 0 for s in ("G1", "G2", "G3a", "G3b", "G4", "G5")}
with open(out / "ckd_report.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(
        [
            "patient_id",
            "egfr_results",
            "latest_date",
            "latest_egfr",
            "g_stage",
            "ckd_confirmed",
            "annual_decline",
            "rapid_decline",
        ]
    )
    for pid in sorted(series):
        points = series[pid]
        low = [d for d, v in points if v < 60]
        confirmed = bool(low) and (max(low) - min(low)).days >= 90
        decline = ""
        if len(points) >= 2:
            years = (points[-1][0] - points[0][0]).days / 365.25
            decline = round((points[0][1] - points[-1][1]) / years, 1)
        latest_day, latest = points[-1]
        counts[stage(latest)] += 1
        writer.writerow(
            [
                pid,
                len(points),
                latest_day.isoformat(),
                round(latest, 1),
                stage(latest),
                "yes" if confirmed else "no",
                decline,
                "yes" if decline != "" and decline > 5 else "no",
            ]
        )
(out / "stage_counts.json").write_text(json.dumps(counts, indent=2) + "\n")
