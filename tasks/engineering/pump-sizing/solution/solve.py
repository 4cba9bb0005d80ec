"""Oracle: Darcy-Weisbach with Swamee-Jain friction, then pick the cheapest adequate pump."""

import csv
import json
import math
from pathlib import Path

MOTORS_KW = [0.75, 1.1, 1.5, 2.2, 3, 4, 5.5, 7.5, 11, 15, 18.5, 22, 30, 37, 45, 55, 75]

system = json.loads(Path("input/pipeline.json").read_text())
rho = system["fluid"]["density_kg_m3"]
mu = system["fluid"]["dynamic_viscosity_Pa_s"]
g = system["g_m_s2"]
q = system["design_flow_m3_h"] / 3600
segments, losses, static = [], 0.0, 0.0
for seg in system["segments"]:
    d = seg["inner_diameter_mm"] / 1000
    v = q / (math.pi * d * d / 4)
    re = rho * v * d / mu
    if re < 2300:
        f = 64 / re
    else:
        f = 0.25 / math.log10(seg["roughness_mm"] / 1000 / (3.7 * d) + 5.74 / re**0.9) ** 2
    head = (f * seg["length_m"] / d + seg["minor_loss_K"]) * v * v / (2 * g)
    losses += head
    static += seg["elevation_change_m"]
    segments.append(
        {
            "id": seg["id"],
            "velocity_m_s": round(v, 3),
            "reynolds": round(re),
            "friction_factor": round(f, 5),
            "head_loss_m": round(head, 3),
        }
    )
pressure_head = system["residual_pressure_at_outlet_kPa"] * 1000 / (rho * g)
tdh = static + losses + pressure_head
with open("input/pump_catalog.csv", newline="") as fh:
    pumps = list(csv.DictReader(fh))
adequate = [
    p
    for p in pumps
    if float(p["rated_flow_m3_h"]) >= system["design_flow_m3_h"] and float(p["rated_head_m"]) >= 1.1 * tdh
]
pump = min(adequate, key=lambda p: float(p["price_usd"]))
power = rho * g * q * tdh / (float(pump["efficiency_pct"]) / 100) / 1000
motor = next(m for m in MOTORS_KW if m >= 1.25 * power)
out = Path("output")
out.mkdir(exist_ok=True)
result = {
    "segments": segments,
    "static_head_m": round(static, 3),
    "friction_and_minor_losses_m": round(losses, 3),
    "residual_pressure_head_m": round(pressure_head, 3),
    "total_dynamic_head_m": round(tdh, 3),
    "selected_pump": pump["model"],
    "shaft_power_kW": round(power, 3),
    "motor_kW": motor,
}
(out / "pump_selection.json").write_text(json.dumps(result, indent=2) + "\n")
