"""Oracle: reactions, bending moment and deflection by superposition, sampled along each beam."""

import csv
import json
from pathlib import Path

data = json.loads(Path("input/beams.json").read_text())
STEPS = 4000
out = Path("output")
out.mkdir(exist_ok=True)


def analyse(beam: dict) -> list:
    length = beam["span_m"]
    w = beam["uniform_kN_per_m"]  # kN/m
    ei = beam["E_GPa"] * 1e6 * beam["I_cm4"] * 1e-8  # kN*m^2
    loads = [(p["P_kN"], p["x_m"]) for p in beam["point_loads"]]
    r_b = (w * length**2 / 2 + sum(p * a for p, a in loads)) / length
    r_a = w * length + sum(p for p, _ in loads) - r_b

    def moment(x):
        return r_a * x - w * x * x / 2 - sum(p * (x - a) for p, a in loads if x > a)

    def deflection(x):  # downward positive, metres
        y = w * x * (length**3 - 2 * length * x * x + x**3) / (24 * ei)
        for p, a in loads:
            b = length - a
            if x <= a:
                y += p * b * x * (length**2 - b * b - x * x) / (6 * ei * length)
            else:
                y += p * a * (length - x) * (2 * length * x - a * a - x * x) / (6 * ei * length)
        return y

    xs = [length * i / STEPS for i in range(STEPS + 1)] + [a for _, a in loads]
    m_max = max(abs(moment(x)) for x in xs)
    d_max = max(deflection(x) for x in xs) * 1000
    limit = length * 1000 / 360
    return [
        beam["id"],
        round(r_a, 2),
        round(r_b, 2),
        round(m_max, 2),
        round(d_max, 2),
        round(limit, 2),
        "OK" if d_max <= limit else "FAIL",
    ]


rows = [analyse(beam) for beam in data["beams"]]
with open(out / "beam_checks.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(["beam_id", "R_A_kN", "R_B_kN", "M_max_kNm", "delta_max_mm", "limit_mm", "status"])
    writer.writerows(rows)
