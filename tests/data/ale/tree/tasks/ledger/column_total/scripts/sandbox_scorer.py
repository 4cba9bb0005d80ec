"""Copied into the sandbox by the grader and run there with a bare `python`."""

import json
import sys

output_file, reference_file = sys.argv[1], sys.argv[2]
try:
    got = json.load(open(output_file))
except (OSError, ValueError):
    got = {}
want = json.load(open(reference_file))
checks = {
    "total": abs(float(got.get("total", "nan")) - want["total"]) < 1e-6,
    "rows": got.get("rows") == want["rows"],
}
print(json.dumps({"checks": checks, "python": sys.version_info[0]}))
