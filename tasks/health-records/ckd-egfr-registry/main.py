"""CKD registry: CKD-EPI 2021 eGFR from a practice's SQLite lab database, staged and trended."""

from __future__ import annotations

import csv
import json
from pathlib import Path

INSTRUCTION = """\
You maintain a primary-care chronic kidney disease (CKD) registry. input/labs.sqlite is a
SQLite database with tables patients(id, sex, birth_date, ...) and lab_results(patient_id,
loinc, value, unit, collected_at, status, ...).

Use only serum creatinine results (loinc '2160-0') with status 'final' and a non-null value.
Values come in mg/dL or umol/L (divide umol/L by 88.4 to get mg/dL). For each result compute
eGFR with the race-free CKD-EPI 2021 equation:
  eGFR = 142 * min(Scr/k, 1)^a * max(Scr/k, 1)^-1.200 * 0.9938^age * (1.012 if female)
  k = 0.7 (female) / 0.9 (male); a = -0.241 (female) / -0.302 (male)
where age is the patient's age in completed years on the collection date.
Stage an eGFR: G1 >= 90, G2 60-<90, G3a 45-<60, G3b 30-<45, G4 15-<30, G5 < 15.

Write output/ckd_report.csv with columns
patient_id,egfr_results,latest_date,latest_egfr,g_stage,ckd_confirmed,annual_decline,rapid_decline
one row per patient with at least one usable result, sorted by patient_id:
- egfr_results: number of usable results; latest_date: YYYY-MM-DD of the latest one;
  latest_egfr: its eGFR rounded to 1 decimal; g_stage: its stage.
- ckd_confirmed: "yes" when the patient has eGFR < 60 on two results at least 90 days apart.
- annual_decline: (first eGFR - latest eGFR) / (days between them / 365.25), 1 decimal;
  empty when the patient has only one result. rapid_decline: "yes" when annual_decline > 5.
Also write output/stage_counts.json: {"G1": n, "G2": n, "G3a": n, "G3b": n, "G4": n, "G5": n}
counting patients by the stage of their latest eGFR.
"""

FIELDS = (
    "egfr_results",
    "latest_date",
    "latest_egfr",
    "g_stage",
    "ckd_confirmed",
    "annual_decline",
    "rapid_decline",
)
NUMERIC_TOLERANCE = {"latest_egfr": 0.5, "annual_decline": 0.5}


def _read(path: Path) -> dict[str, dict[str, str]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return {
                (r.get("patient_id") or "").strip(): {k.strip(): (v or "").strip() for k, v in r.items() if k}
                for r in csv.DictReader(fh)
            }
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _same(field: str, expected: str, got: str) -> bool:
    if field in NUMERIC_TOLERANCE:
        if expected == "":
            return got == ""
        try:
            return abs(float(got) - float(expected)) <= NUMERIC_TOLERANCE[field]
        except ValueError:
            return False
    return got.lower() == expected.lower()


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    expected = _read(reference_dir / "expected_report.csv") or {}
    got = _read(output_dir / "ckd_report.csv")
    if got is None:
        return 0.0, "output/ckd_report.csv is missing or not a readable CSV"
    right, total, wrong = 0, 0, []
    for pid, exp in expected.items():
        row = got.get(pid, {})
        for field in FIELDS:
            total += 1
            value = row.get(field, "")
            if _same(field, exp[field], value):
                right += 1
            else:
                wrong.append(f"{pid} {field}: expected {exp[field] or '(empty)'}, got {value or '(empty)'}")
    extra = sorted(set(got) - set(expected))
    if extra:
        wrong.append(f"patients that should not be listed: {extra[:5]}")
    report_score = max(0.0, (right - len(extra) * len(FIELDS)) / total)
    exp_counts = json.loads((reference_dir / "expected_stage_counts.json").read_text())
    try:
        got_counts = json.loads((output_dir / "stage_counts.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        got_counts = None
    counts_ok = isinstance(got_counts, dict) and all(got_counts.get(k) == v for k, v in exp_counts.items())
    if not counts_ok:
        wrong.append(f"stage_counts.json: expected {exp_counts}, got {got_counts}")
    score = round(0.9 * report_score + 0.1 * counts_ok, 4)
    head = f"report fields {right}/{total} right; stage counts {'right' if counts_ok else 'wrong'}"
    shown = "; ".join(wrong[:8]) + (f"; ... and {len(wrong) - 8} more" if len(wrong) > 8 else "")
    return score, head + (f". Problems: {shown}" if wrong else "")
