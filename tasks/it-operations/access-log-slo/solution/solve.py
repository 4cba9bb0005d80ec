"""Oracle: parse rotated nginx logs (plain and gzip), per-endpoint p95 latency and error rate."""

import gzip
import json
import math
import re
from collections import Counter
from pathlib import Path

LINE = re.compile(
    r'^(\S+) \S+ \S+ \[[^\]]+\] "([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) (?:\d+|-) "[^"]*" "[^"]*" rt=([\d.]+)$'
)
files = sorted(Path("input").glob("access.log*"))
latencies: dict[str, list[float]] = {}
errors: Counter = Counter()
clients: Counter = Counter()
total = malformed = 0
for path in files:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                continue
            total += 1
            match = LINE.match(line)
            if not match:
                malformed += 1
                continue
            ip, method, target, status, rt = match.groups()
            path_only = target.split("?", 1)[0]
            path_only = "/".join("{id}" if seg.isdigit() else seg for seg in path_only.split("/"))
            endpoint = f"{method} {path_only}"
            latencies.setdefault(endpoint, []).append(float(rt) * 1000)
            errors[endpoint] += status.startswith("5")
            clients[ip] += 1
endpoints = {}
breaches = []
for endpoint in sorted(latencies):
    values = sorted(latencies[endpoint])
    p95 = values[math.ceil(0.95 * len(values)) - 1]
    rate = errors[endpoint] / len(values)
    endpoints[endpoint] = {"requests": len(values), "error_rate": round(rate, 4), "p95_ms": round(p95, 1)}
    if p95 > 300 or rate > 0.01:
        breaches.append(endpoint)
ip, count = clients.most_common(1)[0]
report = {
    "lines_total": total,
    "malformed_lines": malformed,
    "endpoints": endpoints,
    "breaches": breaches,
    "top_client": {"ip": ip, "requests": count},
}
Path("output").mkdir(exist_ok=True)
Path("output/slo_report.json").write_text(json.dumps(report, indent=2) + "\n")
