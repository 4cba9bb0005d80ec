"""Pump sizing: pipeline head losses (Darcy-Weisbach) and selection of a pump and motor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

INSTRUCTION = """\
You are a mechanical engineer sizing a transfer pump. input/pipeline.json describes the
fluid, the design flow and the pipe segments in series; input/pump_catalog.csv lists
candidate pumps (rated flow, head at that flow, efficiency, price).

For each segment: velocity v = Q / (pi D^2 / 4); Reynolds number Re = rho v D / mu;
Darcy friction factor f = 64/Re when Re < 2300, else the Swamee-Jain formula
f = 0.25 / [log10(eps / (3.7 D) + 5.74 / Re^0.9)]^2 (eps = roughness);
head loss h = (f L / D + K) v^2 / (2 g), K being the segment's summed minor-loss coefficient.
Total dynamic head TDH = sum of elevation changes + sum of head losses + the residual
outlet pressure as head (p / (rho g)).

Select the cheapest pump whose rated flow >= design flow and rated head >= 1.10 * TDH.
Shaft power at the duty point P = rho g Q TDH / efficiency (kW). Motor: the smallest
IEC size >= 1.25 * P from 0.75, 1.1, 1.5, 2.2, 3, 4, 5.5, 7.5, 11, 15, 18.5, 22, 30, 37, 45 kW.

Write output/pump_selection.json:
{"segments": [{"id", "velocity_m_s", "reynolds", "friction_factor", "head_loss_m"}, ...],
 "static_head_m", "friction_and_minor_losses_m", "residual_pressure_head_m",
 "total_dynamic_head_m", "selected_pump" (model), "shaft_power_kW", "motor_kW"}
"""

SEGMENT_FIELDS = {"velocity_m_s": 0.01, "reynolds": 0.01, "friction_factor": 0.02, "head_loss_m": 0.02}


def _close(expected: float, got: Any, rel: float) -> bool:
    try:
        value = float(got)
    except (TypeError, ValueError):
        return False
    return abs(value - expected) <= rel * abs(expected) + 1e-9


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    exp = json.loads((reference_dir / "expected_selection.json").read_text())
    try:
        got = json.loads((output_dir / "pump_selection.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return 0.0, f"output/pump_selection.json is missing or not valid JSON ({exc})"
    if not isinstance(got, dict):
        return 0.0, "output/pump_selection.json must be a JSON object"
    problems: list[str] = []
    segs = got.get("segments")
    by_id = {str(s.get("id")): s for s in segs if isinstance(s, dict)} if isinstance(segs, list) else {}
    seg_right = seg_total = 0
    for seg in exp["segments"]:
        row = by_id.get(seg["id"], {})
        for field, rel in SEGMENT_FIELDS.items():
            seg_total += 1
            if _close(seg[field], row.get(field), rel):
                seg_right += 1
            else:
                problems.append(f"{seg['id']} {field}: expected {seg[field]}, got {row.get(field)!r}")
    tdh_ok = _close(exp["total_dynamic_head_m"], got.get("total_dynamic_head_m"), 0.01)
    pump_ok = got.get("selected_pump") == exp["selected_pump"]
    power_ok = _close(exp["shaft_power_kW"], got.get("shaft_power_kW"), 0.02)
    motor_ok = _close(float(exp["motor_kW"]), got.get("motor_kW"), 0.0)
    for ok, key in (
        (tdh_ok, "total_dynamic_head_m"),
        (pump_ok, "selected_pump"),
        (power_ok, "shaft_power_kW"),
        (motor_ok, "motor_kW"),
    ):
        if not ok:
            problems.append(f"{key}: expected {exp[key]}, got {got.get(key)!r}")
    score = round(
        0.4 * seg_right / seg_total + 0.2 * tdh_ok + 0.2 * pump_ok + 0.1 * power_ok + 0.1 * motor_ok, 4
    )
    head = (
        f"segment values {seg_right}/{seg_total}; TDH {'ok' if tdh_ok else 'wrong'}; pump "
        f"{'ok' if pump_ok else 'wrong'}; power {'ok' if power_ok else 'wrong'}; "
        f"motor {'ok' if motor_ok else 'wrong'}"
    )
    shown = "; ".join(problems[:8]) + (f"; ... and {len(problems) - 8} more" if len(problems) > 8 else "")
    return score, head + (f". Problems: {shown}" if problems else "")
