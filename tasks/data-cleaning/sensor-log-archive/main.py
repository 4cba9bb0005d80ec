"""Greenhouse sensor logs: QC a zip archive of controller exports and aggregate hourly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

INSTRUCTION = """\
You look after environmental monitoring for two greenhouses. input/sensor_logs.zip is the
controller's export: one CSV per station and day (<station>/<YYYY-MM-DD>.csv, columns
timestamp,temp_c,rel_humidity_pct, 10-minute interval), rows not always in time order.

QC rules, in this order:
1. Each file also repeats the first 30 minutes of the next day; drop every row whose
   timestamp's date differs from the date in its file name (count: overlap_rows_dropped).
2. Reject a remaining row when temp_c or rel_humidity_pct is not a number, temp_c is outside
   -40..60, or rel_humidity_pct outside 0..100 (count: rows_rejected). The rest are accepted.
3. A gap is two consecutive logged timestamps of a station (rows kept after step 1, rejected
   or not) more than 10 minutes apart; missing_readings = minutes between them / 10 - 1.

Write output/hourly.csv with columns station,hour,readings,mean_temp_c,mean_rel_humidity_pct:
one row per station and clock hour with accepted readings ("YYYY-MM-DD HH:00"), means of the
accepted readings to 2 decimals, sorted by station then hour. Write output/qc_report.json:
{"files", "rows_read" (data rows in all CSVs), "overlap_rows_dropped", "rows_rejected",
 "rows_accepted", "gaps": [{"station", "from", "to", "missing_readings"}, ...]}
with from/to as "YYYY-MM-DD HH:MM".
"""

COUNTS = ("files", "rows_read", "overlap_rows_dropped", "rows_rejected", "rows_accepted")


def _hourly(path: Path) -> dict[tuple[str, str], tuple[str, float, float]] | None:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            table = {}
            for r in csv.DictReader(fh):
                key = ((r.get("station") or "").strip(), (r.get("hour") or "").strip())
                try:
                    table[key] = (
                        (r.get("readings") or "").strip(),
                        float(r.get("mean_temp_c") or "nan"),
                        float(r.get("mean_rel_humidity_pct") or "nan"),
                    )
                except ValueError:
                    table[key] = ("", float("nan"), float("nan"))
            return table
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    if not (output_dir / "hourly.csv").exists() and not (output_dir / "qc_report.json").exists():
        return 0.0, "neither output/hourly.csv nor output/qc_report.json exists"
    expected = _hourly(reference_dir / "expected_hourly.csv") or {}
    got = _hourly(output_dir / "hourly.csv")
    problems: list[str] = []
    if got is None:
        problems.append("output/hourly.csv is missing or unreadable")
        got = {}
    right = 0
    for key, (count, temp, rh) in expected.items():
        row = got.get(key)
        if row and row[0] == count and abs(row[1] - temp) <= 0.011 and abs(row[2] - rh) <= 0.011:
            right += 1
        elif len(problems) < 12:
            problems.append(
                f"hourly {key[0]} {key[1]}: expected {count} readings, {temp:.2f} C, "
                f"{rh:.2f} %; got {row or 'no row'}"
            )
    extra = len(set(got) - set(expected))
    hourly_score = max(0.0, (right - extra) / len(expected))

    exp_qc = json.loads((reference_dir / "expected_qc_report.json").read_text())
    try:
        qc = json.loads((output_dir / "qc_report.json").read_text(encoding="utf-8"))
        if not isinstance(qc, dict):
            raise TypeError("not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        problems.append(f"output/qc_report.json unreadable ({exc})")
        qc = {}
    counts_right = sum(qc.get(k) == exp_qc[k] for k in COUNTS)
    for k in COUNTS:
        if qc.get(k) != exp_qc[k]:
            problems.append(f"qc {k}: expected {exp_qc[k]}, got {qc.get(k)!r}")

    def gap_key(g: object) -> tuple[str, ...]:
        if not isinstance(g, dict):
            return ("?",)
        return tuple(str(g.get(k)) for k in ("station", "from", "to", "missing_readings"))

    exp_gaps = {gap_key(g) for g in exp_qc["gaps"]}
    got_gaps = {gap_key(g) for g in qc.get("gaps", []) or []} if isinstance(qc.get("gaps"), list) else set()
    gaps_score = max(0.0, (len(exp_gaps & got_gaps) - len(got_gaps - exp_gaps)) / len(exp_gaps))
    if gaps_score < 1:
        problems.append(f"gaps: expected {sorted(exp_gaps)}, got {sorted(got_gaps)}")
    score = round(0.5 * hourly_score + 0.3 * counts_right / len(COUNTS) + 0.2 * gaps_score, 4)
    head = (
        f"hourly rows {right}/{len(expected)} right ({extra} extra); "
        f"qc counts {counts_right}/{len(COUNTS)}; gaps {gaps_score:.2f}"
    )
    shown = "; ".join(problems[:8]) + (f"; ... and {len(problems) - 8} more" if len(problems) > 8 else "")
    return score, head + (f". Problems: {shown}" if problems else "")
