"""NEWS2 early-warning scores from a gzip'd export of ward observations."""

from __future__ import annotations

import csv
import json
from pathlib import Path

INSTRUCTION = """\
You support the deteriorating-patient team. input/observations.jsonl.gz is a gzip-compressed
JSON-lines export of ward vital-sign observations (one JSON object a line).

Score every observation with the National Early Warning Score 2 (NEWS2, SpO2 scale 1):
  respiration rate   <=8: 3 | 9-11: 1 | 12-20: 0 | 21-24: 2 | >=25: 3
  SpO2 (%)           <=91: 3 | 92-93: 2 | 94-95: 1 | >=96: 0
  supplemental O2    yes: 2 | no (air): 0
  systolic BP        <=90: 3 | 91-100: 2 | 101-110: 1 | 111-219: 0 | >=220: 3
  pulse              <=40: 3 | 41-50: 1 | 51-90: 0 | 91-110: 1 | 111-130: 2 | >=131: 3
  consciousness      A (alert): 0 | new confusion C, V, P or U: 3
  temperature (C)    <=35.0: 3 | 35.1-36.0: 1 | 36.1-38.0: 0 | 38.1-39.0: 1 | >=39.1: 2
Clinical risk: total >=7 "high"; 5-6 "medium"; otherwise "low-medium" when any single
parameter scores 3, else "low".

Write output/news2_scores.csv with columns patient_id,recorded_at,score,clinical_risk, one row
per observation, sorted by patient_id then recorded_at. Write output/escalations.json: a JSON
list of {"patient_id","recorded_at","score","risk"} for each patient whose LATEST observation
is medium or high risk, sorted by score descending, then patient_id.
"""


def _rows(path: Path) -> dict[tuple[str, str], tuple[str, str]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return {
                ((r.get("patient_id") or "").strip(), (r.get("recorded_at") or "").strip()): (
                    (r.get("score") or "").strip(),
                    (r.get("clinical_risk") or "").strip().lower(),
                )
                for r in csv.DictReader(fh)
            }
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    expected = _rows(reference_dir / "expected_scores.csv") or {}
    got = _rows(output_dir / "news2_scores.csv")
    if got is None:
        return 0.0, "output/news2_scores.csv is missing or not a readable CSV"
    score_ok = risk_ok = 0
    wrong: list[str] = []
    for key, (exp_score, exp_risk) in expected.items():
        row = got.get(key)
        if row is None:
            wrong.append(f"{key[0]} {key[1]}: no row")
            continue
        if row[0] == exp_score:
            score_ok += 1
        else:
            wrong.append(f"{key[0]} {key[1]}: score expected {exp_score}, got {row[0] or 'blank'}")
        if row[1] == exp_risk:
            risk_ok += 1
        elif row[0] == exp_score:
            wrong.append(f"{key[0]} {key[1]}: risk expected {exp_risk}, got {row[1] or 'blank'}")
    n = len(expected)

    exp_esc = json.loads((reference_dir / "expected_escalations.json").read_text())
    try:
        got_esc = json.loads((output_dir / "escalations.json").read_text(encoding="utf-8"))
        got_ids = [str(e.get("patient_id")) for e in got_esc if isinstance(e, dict)]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, AttributeError):
        got_ids = []
    exp_ids = [e["patient_id"] for e in exp_esc]
    esc_set = len(set(exp_ids) & set(got_ids)) - len(set(got_ids) - set(exp_ids))
    esc_score = max(0.0, esc_set / len(exp_ids)) * (1.0 if got_ids == exp_ids else 0.8)
    if got_ids != exp_ids:
        wrong.append(f"escalations.json: expected patients {exp_ids} in that order, got {got_ids}")

    score = round(0.5 * score_ok / n + 0.2 * risk_ok / n + 0.3 * esc_score, 4)
    head = f"scores {score_ok}/{n} right, risks {risk_ok}/{n} right, escalations {esc_score:.2f}"
    shown = "; ".join(wrong[:8]) + (f"; ... and {len(wrong) - 8} more" if len(wrong) > 8 else "")
    return score, head + (f". Problems: {shown}" if wrong else "")
