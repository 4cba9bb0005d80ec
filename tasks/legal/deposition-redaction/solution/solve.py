"""Oracle: regex redaction of SSNs, US phone numbers and emails, with a redaction log."""

import json
import re
from pathlib import Path

PATTERNS = [
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[REDACTED-EMAIL]"),
    ("ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), "[REDACTED-SSN]"),
    ("phone", re.compile(r"(?:\(\d{3}\)\s?|\b\d{3}[-.])\d{3}[-.]\d{4}\b"), "[REDACTED-PHONE]"),
]
text = Path("input/deposition.txt").read_text(encoding="utf-8")
counts = {}
for kind, pattern, marker in PATTERNS:
    text, counts[kind] = pattern.subn(marker, text)
matter = json.loads(Path("input/matter.json").read_text())
out = Path("output")
out.mkdir(exist_ok=True)
(out / "deposition_redacted.txt").write_text(text, encoding="utf-8")
log = {"matter_id": matter["matter_id"], "counts": {k: counts[k] for k in ("ssn", "phone", "email")}}
(out / "redaction_log.json").write_text(json.dumps(log, indent=2) + "\n")
