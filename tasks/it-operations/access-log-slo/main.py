"""SLO review: per-endpoint p95 latency and error rate from rotated nginx access logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

INSTRUCTION = """\
You are the on-call SRE writing the SLO review for yesterday's 12:00-15:00 window.
input/ holds the rotated nginx access logs: access.log.2.gz and access.log.1.gz
(gzip-compressed) and access.log (plain). Each line is the combined log format followed by
rt=<request time in seconds>.

1. Count every non-empty line (lines_total); lines that do not parse as
   IP - - [time] "METHOD PATH HTTP/x" STATUS BYTES "referer" "agent" rt=SECONDS are malformed
   (count them, then ignore them).
2. Endpoint = METHOD + " " + the path without its query string, with every path segment made
   only of digits replaced by {id} (e.g. "GET /api/v2/orders/{id}").
3. Per endpoint: requests; error_rate = share of 5xx responses (4 decimals); p95_ms = the
   nearest-rank 95th percentile of request time in milliseconds (the ceil(0.95 * n)-th
   smallest value), 1 decimal.
4. SLO: p95_ms <= 300 and error_rate <= 0.01. List endpoints breaking either one.

Write output/slo_report.json:
{"lines_total": n, "malformed_lines": n,
 "endpoints": {"GET /path": {"requests": n, "error_rate": x, "p95_ms": x}, ...},
 "breaches": [endpoint names, sorted], "top_client": {"ip": "...", "requests": n}}
(top_client: the client IP with the most parsed requests).
"""


def _near(expected: float, got: Any, tolerance: float) -> bool:
    try:
        return abs(float(got) - expected) <= tolerance
    except (TypeError, ValueError):
        return False


def evaluate(output_dir: Path, reference_dir: Path, sandbox: object) -> tuple[float, str]:
    exp = json.loads((reference_dir / "expected_slo_report.json").read_text())
    try:
        got = json.loads((output_dir / "slo_report.json").read_text(encoding="utf-8"))
        if not isinstance(got, dict):
            raise TypeError("not a JSON object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        return 0.0, f"output/slo_report.json is missing or invalid ({exc})"
    problems: list[str] = []
    endpoints = got.get("endpoints") if isinstance(got.get("endpoints"), dict) else {}
    right = total = 0
    for name, want in exp["endpoints"].items():
        have = endpoints.get(name) if isinstance(endpoints.get(name), dict) else {}
        for field, tol in (("requests", 0), ("error_rate", 0.00011), ("p95_ms", 0.51)):
            total += 1
            if _near(want[field], have.get(field), tol):
                right += 1
            else:
                problems.append(f"{name} {field}: expected {want[field]}, got {have.get(field)!r}")
    extra = sorted(set(endpoints) - set(exp["endpoints"]))
    if extra:
        problems.append(f"unexpected endpoints (query strings or ids not normalized?): {extra[:4]}")
    endpoint_score = max(0.0, (right - len(extra)) / total)
    breaches = got.get("breaches")
    breaches_ok = isinstance(breaches, list) and sorted(map(str, breaches)) == exp["breaches"]
    if not breaches_ok:
        problems.append(f"breaches: expected {exp['breaches']}, got {breaches!r}")
    top = got.get("top_client") if isinstance(got.get("top_client"), dict) else {}
    facts = [
        ("lines_total", got.get("lines_total") == exp["lines_total"]),
        ("malformed_lines", got.get("malformed_lines") == exp["malformed_lines"]),
        (
            "top_client",
            top.get("ip") == exp["top_client"]["ip"] and top.get("requests") == exp["top_client"]["requests"],
        ),
    ]
    for key, ok in facts:
        if not ok:
            problems.append(f"{key}: expected {exp[key]!r}, got {got.get(key)!r}")
    fact_score = sum(ok for _, ok in facts) / len(facts)
    score = round(0.6 * endpoint_score + 0.2 * breaches_ok + 0.2 * fact_score, 4)
    head = (
        f"endpoint figures {right}/{total}, breaches {'ok' if breaches_ok else 'wrong'}, "
        f"log facts {fact_score:.2f}"
    )
    shown = "; ".join(problems[:8]) + (f"; ... and {len(problems) - 8} more" if len(problems) > 8 else "")
    return score, head + (f". Problems: {shown}" if problems else "")
