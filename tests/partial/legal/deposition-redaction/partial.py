"""Half-done redaction: SSNs and emails only (phones forgotten), log without counts."""

import json
import re
from pathlib import Path

text = Path("input/deposition.txt").read_text(encoding="utf-8")
text = re.sub(r"[\w.+-]+@[\w.-]+\.\w+", "[REDACTED-EMAIL]", text)
text = re.sub(r"\b\d{3}-\d{2}-\d{4}\b", "[REDACTED-SSN]", text)
Path("output").mkdir(exist_ok=True)
Path("output/deposition_redacted.txt").write_text(text, encoding="utf-8")
matter = json.loads(Path("input/matter.json").read_text())
Path("output/redaction_log.json").write_text(json.dumps({"matter_id": matter["matter_id"]}) + "\n")
