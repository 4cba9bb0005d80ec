"""Oracle: replicate QC, then the 2^-ddCt (Livak) relative quantification against GAPDH / Control."""

import csv
import json
import statistics
from pathlib import Path

REFERENCE_GENE, CALIBRATOR = "GAPDH", "Control"
with open("input/plate_export.csv", newline="") as fh:
    rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
groups: dict[tuple[str, str], list[tuple[str, float]]] = {}
excluded = []
for row in rows:
    if row["Sample Name"] == "NTC":
        continue
    try:
        ct = float(row["CT"])
    except ValueError:
        excluded.append({"well": row["Well"], "reason": "undetermined"})
        continue
    groups.setdefault((row["Sample Name"], row["Target Name"]), []).append((row["Well"], ct))
means = {}
for key, reps in groups.items():
    median = statistics.median(ct for _, ct in reps)
    kept = []
    for well, ct in reps:
        if abs(ct - median) > 0.5:
            excluded.append({"well": well, "reason": "outlier"})
        else:
            kept.append(ct)
    means[key] = statistics.mean(kept)
out = Path("output")
out.mkdir(exist_ok=True)
samples = sorted({s for s, _ in means})
targets = sorted({t for _, t in means if t != REFERENCE_GENE})
with open(out / "fold_change.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(["sample", "target", "mean_ct", "delta_ct", "delta_delta_ct", "fold_change"])
    for sample in samples:
        for target in targets:
            dct = means[(sample, target)] - means[(sample, REFERENCE_GENE)]
            ddct = dct - (means[(CALIBRATOR, target)] - means[(CALIBRATOR, REFERENCE_GENE)])
            writer.writerow(
                [
                    sample,
                    target,
                    f"{means[(sample, target)]:.3f}",
                    f"{dct:.3f}",
                    f"{ddct:.3f}",
                    f"{2**-ddct:.3f}",
                ]
            )
excluded.sort(key=lambda e: e["well"])
(out / "qc.json").write_text(json.dumps({"excluded_wells": excluded}, indent=2) + "\n")
