"""Oracle: read the zipped controller logs, drop overlap and bad rows, aggregate hourly, find gaps."""

import csv
import datetime as dt
import io
import itertools
import json
import zipfile
from pathlib import Path

stats = {"files": 0, "rows_read": 0, "overlap_rows_dropped": 0, "rows_rejected": 0, "rows_accepted": 0}
logged: dict[str, set] = {}
accepted: dict[str, list] = {}


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


with zipfile.ZipFile("input/sensor_logs.zip") as archive:
    for name in sorted(archive.namelist()):
        if not name.endswith(".csv"):
            continue
        station, file_day = name.split("/")[0], name.split("/")[-1][:-4]
        stats["files"] += 1
        reader = csv.DictReader(io.TextIOWrapper(archive.open(name), encoding="utf-8"))
        for row in reader:
            stats["rows_read"] += 1
            stamp = dt.datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M")
            if stamp.date().isoformat() != file_day:
                stats["overlap_rows_dropped"] += 1
                continue
            logged.setdefault(station, set()).add(stamp)
            temp, rh = number(row["temp_c"]), number(row["rel_humidity_pct"])
            if temp is None or rh is None or not -40 <= temp <= 60 or not 0 <= rh <= 100:
                stats["rows_rejected"] += 1
                continue
            stats["rows_accepted"] += 1
            accepted.setdefault(station, []).append((stamp, temp, rh))

out = Path("output")
out.mkdir(exist_ok=True)
with open(out / "hourly.csv", "w", newline="") as fh:
    writer = csv.writer(fh)
    writer.writerow(["station", "hour", "readings", "mean_temp_c", "mean_rel_humidity_pct"])
    for station in sorted(accepted):
        hours: dict[dt.datetime, list] = {}
        for stamp, temp, rh in accepted[station]:
            hours.setdefault(stamp.replace(minute=0), []).append((temp, rh))
        for hour in sorted(hours):
            values = hours[hour]
            writer.writerow(
                [
                    station,
                    hour.strftime("%Y-%m-%d %H:00"),
                    len(values),
                    f"{sum(v[0] for v in values) / len(values):.2f}",
                    f"{sum(v[1] for v in values) / len(values):.2f}",
                ]
            )
gaps = []
for station in sorted(logged):
    stamps = sorted(logged[station])
    for before, after in itertools.pairwise(stamps):
        minutes = (after - before).total_seconds() / 60
        if minutes > 10:
            gaps.append(
                {
                    "station": station,
                    "from": before.strftime("%Y-%m-%d %H:%M"),
                    "to": after.strftime("%Y-%m-%d %H:%M"),
                    "missing_readings": int(minutes // 10) - 1,
                }
            )
(out / "qc_report.json").write_text(json.dumps({**stats, "gaps": gaps}, indent=2) + "\n")
