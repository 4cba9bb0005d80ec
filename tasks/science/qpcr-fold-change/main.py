"""qPCR relative quantification: replicate QC and 2^-ddCt fold changes from a plate export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

INSTRUCTION = """\
You are a lab scientist analysing a SYBR Green qPCR run (fibroblasts treated with TGF-beta).
input/plate_export.csv is the instrument export (comment lines start with "#"; columns
Well, Sample Name, Target Name, CT; "Undetermined" means no amplification).

1. Ignore the NTC (no-template control) wells. Exclude wells whose CT is Undetermined.
2. For each sample x target, exclude a replicate whose CT differs by more than 0.5 from the
   median CT of that sample x target's numeric replicates; average the remaining CTs.
3. Relative quantification (Livak): reference gene GAPDH, calibrator sample "Control".
   delta_ct = mean CT(target) - mean CT(GAPDH) of the same sample;
   delta_delta_ct = delta_ct - delta_ct of Control for that target; fold_change = 2^-delta_delta_ct.

Write output/fold_change.csv with columns sample,target,mean_ct,delta_ct,delta_delta_ct,fold_change
(every sample incl. Control, every target except GAPDH; 3 decimals; sorted by sample then
target) and output/qc.json: {"excluded_wells": [{"well": "A1", "reason": "undetermined" or
"outlier"}, ...]} sorted by well.
"""

TOLERANCE = {"mean_ct": 0.006, "delta_ct": 0.006, "delta_delta_ct": 0.006, "fold_change": 0.01}


def _table(path: Path) -> dict[tuple[str, str], dict[str, str]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return {
                ((r.get("sample") or "").strip(), (r.get("target") or "").strip()): r
                for r in csv.DictReader(fh)
            }
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    expected = _table(reference_dir / "expected_fold_change.csv") or {}
    got = _table(output_dir / "fold_change.csv")
    if got is None:
        return 0.0, "output/fold_change.csv is missing or not a readable CSV"
    problems: list[str] = []
    right = total = 0
    for key, exp in expected.items():
        row = got.get(key, {})
        for field, tol in TOLERANCE.items():
            total += 1
            try:
                ok = abs(float(row.get(field) or "nan") - float(exp[field])) <= tol
            except ValueError:
                ok = False
            right += ok
            if not ok:
                problems.append(
                    f"{key[0]}/{key[1]} {field}: expected {exp[field]}, got {row.get(field) or '(none)'}"
                )
    exp_qc = {
        (e["well"], e["reason"])
        for e in json.loads((reference_dir / "expected_qc.json").read_text())["excluded_wells"]
    }
    try:
        qc = json.loads((output_dir / "qc.json").read_text(encoding="utf-8"))
        got_qc = {(str(e.get("well")), str(e.get("reason")).lower()) for e in qc["excluded_wells"]}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        got_qc = set()
    qc_score = max(0.0, (len(exp_qc & got_qc) - len(got_qc - exp_qc)) / len(exp_qc))
    if qc_score < 1:
        problems.append(f"qc.json excluded wells: expected {sorted(exp_qc)}, got {sorted(got_qc)}")
    score = round(0.8 * right / total + 0.2 * qc_score, 4)
    shown = "; ".join(problems[:8]) + (f"; ... and {len(problems) - 8} more" if len(problems) > 8 else "")
    return score, f"{right}/{total} values right, QC {qc_score:.2f}" + (
        f". Problems: {shown}" if problems else ""
    )
