"""Deposition redaction: a per-run transcript with fresh PII and a fresh matter id.

``setup`` generates the transcript's personal data (SSNs, phones, emails) and the matter
reference anew for every trial, writes them into the workspace and keeps them in
``sandbox.state``; the grader checks the agent's output against that run's secrets, so a
memorized answer cannot pass.
"""

from __future__ import annotations

import json
import random
import secrets
from pathlib import Path
from typing import Any

INSTRUCTION = """\
You are a litigation paralegal preparing a deposition transcript for public filing.
Read input/redaction_policy.md, input/deposition.txt and input/matter.json.

1. Write output/deposition_redacted.txt: the transcript with every Social Security number,
   telephone number and email address replaced by [REDACTED-SSN], [REDACTED-PHONE] and
   [REDACTED-EMAIL]; everything else (case and Bates numbers, dates, amounts, line breaks)
   unchanged.
2. Write output/redaction_log.json:
   {"matter_id": <the matter_id from input/matter.json>,
    "counts": {"ssn": n, "phone": n, "email": n}}   (how many of each you redacted)
"""

TEMPLATE = Path(__file__).parent / "templates" / "deposition.txt"
MARKERS = {"SSN": "[REDACTED-SSN]", "PHONE": "[REDACTED-PHONE]", "EMAIL": "[REDACTED-EMAIL]"}
SLOTS = {"SSN": 3, "PHONE": 4, "EMAIL": 3}


def _ssn(rng: random.Random) -> str:
    return f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"


def _phone(rng: random.Random, style: int) -> str:
    area, exchange, line = rng.randint(201, 989), rng.randint(200, 989), rng.randint(1000, 9999)
    return (f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"{area}.{exchange}.{line}")[
        style % 3
    ]


def _email(rng: random.Random) -> str:
    user = rng.choice(["m.okafor", "mokafor", "dreyes", "records", "peggy.o", "ap-team"])
    domain = rng.choice(["harlowmed.com", "brightwater-clinics.org", "gmail.com", "fastmail.fm"])
    return f"{user}{rng.randint(1, 999)}@{domain}"


def setup(sandbox: Any) -> None:
    rng = random.Random(secrets.randbits(64))
    matter_id = f"MAT-{secrets.token_hex(4).upper()}"
    values = {
        "SSN": [_ssn(rng) for _ in range(SLOTS["SSN"])],
        "PHONE": [_phone(rng, i) for i in range(SLOTS["PHONE"])],
        "EMAIL": [_email(rng) for _ in range(SLOTS["EMAIL"])],
    }
    template = TEMPLATE.read_text(encoding="utf-8")
    original, redacted = template.replace("{MATTER}", matter_id), template.replace("{MATTER}", matter_id)
    for kind, items in values.items():
        for number, value in enumerate(items, start=1):
            original = original.replace(f"{{{kind}{number}}}", value)
            redacted = redacted.replace(f"{{{kind}{number}}}", MARKERS[kind])
    sandbox.write_text(sandbox.path("input", "deposition.txt"), original)
    sandbox.write_text(
        sandbox.path("input", "matter.json"),
        json.dumps({"matter_id": matter_id, "case": "3:23-cv-04417-JST", "witness": "M. E. Okafor"}) + "\n",
    )
    sandbox.state.update(
        matter_id=matter_id,
        secrets=[v for items in values.values() for v in items],
        counts={kind.lower(): len(items) for kind, items in values.items()},
        expected_redacted=redacted,
    )


def evaluate(output_dir: Path, reference_dir: Path, sandbox: Any) -> tuple[float, str]:
    state = getattr(sandbox, "state", {}) or {}
    if "matter_id" not in state:
        return 0.0, "no per-run secrets in sandbox.state: setup() did not run for this trial"
    try:
        text = (output_dir / "deposition_redacted.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return 0.0, f"output/deposition_redacted.txt is missing or unreadable ({exc})"
    problems: list[str] = []
    leaked = [value for value in state["secrets"] if value in text]
    if leaked:
        problems.append(f"{len(leaked)} of {len(state['secrets'])} PII values still in the transcript")
    no_leak = 1 - len(leaked) / len(state["secrets"])

    want = [line.rstrip() for line in state["expected_redacted"].splitlines()]
    have = [line.rstrip() for line in text.splitlines()]
    same = sum(1 for a, b in zip(want, have, strict=False) if a == b)
    fidelity = max(0.0, (same - abs(len(want) - len(have))) / len(want))
    if fidelity < 1:
        first = next(
            (i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b), min(len(want), len(have))
        )
        got_line = have[first] if first < len(have) else "(end of file)"
        want_line = want[first] if first < len(want) else "(end of file)"
        problems.append(
            f"transcript differs from the expected redaction at line {first + 1}: "
            f"expected {want_line!r}, got {got_line!r}"
        )

    try:
        log = json.loads((output_dir / "redaction_log.json").read_text(encoding="utf-8"))
        if not isinstance(log, dict):
            raise TypeError("not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        problems.append(f"output/redaction_log.json missing or unreadable ({exc})")
        log = {}
    matter_ok = log.get("matter_id") == state["matter_id"]
    if not matter_ok:
        problems.append(
            f"redaction_log matter_id: expected this run's {state['matter_id']}, got {log.get('matter_id')!r}"
        )
    counts = log.get("counts") if isinstance(log.get("counts"), dict) else {}
    counts_ok = all(counts.get(k) == v for k, v in state["counts"].items())
    if not counts_ok:
        problems.append(f"redaction_log counts: expected {state['counts']}, got {counts}")
    score = round(0.35 * no_leak + 0.35 * fidelity + 0.15 * matter_ok + 0.15 * counts_ok, 4)
    head = (
        f"no-leak {no_leak:.2f}, fidelity {fidelity:.2f}, matter id {'ok' if matter_ok else 'wrong'}, "
        f"counts {'ok' if counts_ok else 'wrong'}"
    )
    return score, head + (". Problems: " + "; ".join(problems) if problems else "")
