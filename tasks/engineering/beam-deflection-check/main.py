"""Beam checks: reactions, peak moment and deflection of simply supported floor beams."""

from __future__ import annotations

import csv
from pathlib import Path

INSTRUCTION = """\
You are a structural engineer checking floor framing. input/beams.json lists simply
supported beams (pinned at x=0, roller at x=span) with a full-length uniform load
(kN/m), point loads (kN at x metres from the left support), Young's modulus E (GPa) and
second moment of area I (cm^4). Self-weight is already included in the uniform load.

For each beam, using linear-elastic Euler-Bernoulli theory and superposition, compute:
the support reactions R_A (x=0) and R_B (x=span) in kN, the largest absolute bending
moment M_max in kN*m, the largest deflection delta_max in mm anywhere along the span, the
serviceability limit span/360 in mm, and status "OK" when delta_max <= limit else "FAIL".

Write output/beam_checks.csv with columns
beam_id,R_A_kN,R_B_kN,M_max_kNm,delta_max_mm,limit_mm,status
(one row per beam, numbers rounded to 2 decimals).
"""

NUMERIC = ("R_A_kN", "R_B_kN", "M_max_kNm", "delta_max_mm", "limit_mm")
RELATIVE_TOLERANCE = 0.01  # 1 %: closed-form and sampled maxima both pass


def _read(path: Path) -> dict[str, dict[str, str]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return {
                (r.get("beam_id") or "").strip(): {k.strip(): (v or "").strip() for k, v in r.items() if k}
                for r in csv.DictReader(fh)
            }
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _close(expected: str, got: str) -> bool:
    try:
        exp, value = float(expected), float(got)
    except ValueError:
        return False
    return abs(value - exp) <= max(RELATIVE_TOLERANCE * abs(exp), 0.02)


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    expected = _read(reference_dir / "expected_beam_checks.csv") or {}
    got = _read(output_dir / "beam_checks.csv")
    if got is None:
        return 0.0, "output/beam_checks.csv is missing or not a readable CSV"
    right, total, wrong = 0, 0, []
    for beam_id, exp in expected.items():
        row = got.get(beam_id)
        if row is None:
            total += len(NUMERIC) + 1
            wrong.append(f"{beam_id}: no row")
            continue
        for field in NUMERIC:
            total += 1
            if _close(exp[field], row.get(field, "")):
                right += 1
            else:
                wrong.append(
                    f"{beam_id} {field}: expected {exp[field]} (within 1%), got {row.get(field) or '(empty)'}"
                )
        total += 1
        if row.get("status", "").upper() == exp["status"]:
            right += 1
        else:
            wrong.append(f"{beam_id} status: expected {exp['status']}, got {row.get('status') or '(empty)'}")
    shown = "; ".join(wrong[:8]) + (f"; ... and {len(wrong) - 8} more" if len(wrong) > 8 else "")
    return right / total, f"{right}/{total} values right" + (f". Problems: {shown}" if wrong else "")
