"""Record and replay of model traffic: one cassette (JSON file) per trial.

``--ale-record DIR`` saves every model exchange of a trial; ``--ale-replay DIR`` answers
from the saved ones, so a harness release is tested deterministically and for free.
Requests are matched on what was *asked*: the wire format, the model and the
conversation (system prompts, context blocks and volatile bits such as dates, ids and
timings left out). A request no recorded exchange matches is a divergence; it is
refused and reported with a diff against the closest recorded request.

A trial's agent and its judge (the grader's model calls, ``judge.py``) share the trial's
cassette, each in its own section (``SECTIONS``): a replayed judge is answered only from
the judge's exchanges, the agent only from its own.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .wire import WireFormat

CONTEXT_BLOCK = re.compile(r"^\s*<([A-Za-z_][\w-]*)[^>]*>.*</\1>\s*$", re.DOTALL)
VOLATILE = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"), "<date>"),
    (re.compile(r"\b\d+(\.\d+)?\s*(ms|s|sec|secs|seconds|milliseconds)\b"), "<duration>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b"), "<id>"),
    (re.compile(r"(?i)\b(chunk|session|process) id:?\s*\S+"), r"\1 id <id>"),
]


def normalize_text(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text.strip()


def asked(fmt: type[WireFormat], model: str, body: dict[str, Any]) -> dict[str, Any]:
    """What a request asks, stable across runs: the replay match key (and diff text)."""
    conversation = [
        {**item, "text": normalize_text(item["text"])}
        for item in fmt.conversation(body)
        if not (item["kind"] == "text" and CONTEXT_BLOCK.match(item["text"] or ""))
    ]
    return {
        "format": fmt.name,
        "model": model,
        "tools": bool(fmt.tools(body)),
        "conversation": conversation,
    }


#: the cassette's section of each role's exchanges (the agent's as it always was)
SECTIONS = {"agent": "exchanges", "judge": "judge_exchanges"}


def cassette_name(trial_id: str) -> str:
    safe = re.sub(r"[^0-9A-Za-z_.-]+", "_", trial_id).strip("_")[-120:]
    return f"{safe}-{hashlib.sha256(trial_id.encode()).hexdigest()[:10]}.json"


@dataclass
class Exchange:
    asked: dict[str, Any]
    status: int
    content_type: str
    body: str

    def to_json(self) -> dict[str, Any]:
        return {
            "asked": self.asked,
            "response": {"status": self.status, "content_type": self.content_type, "body": self.body},
        }


@dataclass
class Recorder:
    path: Path
    trial_id: str
    role: str = "agent"
    exchanges: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def save(self) -> None:
        """Write the cassette: the agent's afresh (it runs first); a judge's beside the
        agent's saved this trial, and only when it asked something."""
        data: dict[str, Any] = {"trial": self.trial_id, "exchanges": []}
        if self.role != "agent":
            if not self.exchanges:
                return
            try:
                kept = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                kept = None
            if isinstance(kept, dict) and kept.get("trial") == self.trial_id:
                data["exchanges"] = kept.get("exchanges", [])
        data[SECTIONS[self.role]] = [e.to_json() for e in self.exchanges]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


class Player:
    """Answers a trial's requests from its cassette."""

    def __init__(self, path: Path, exchanges: list[Exchange]) -> None:
        self.path = path
        self.exchanges = exchanges
        self.used = [False] * len(exchanges)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, role: str = "agent") -> Player:
        """The player of ``role``'s section of the cassette at ``path``. A judge may find
        none (a trial whose grader asked no model): then each request it makes diverges."""
        if not path.is_file():
            if role == "judge":
                return cls(path, [])
            raise ConfigError(
                f"--ale-replay: no cassette {path} for this trial; record it first with --ale-record"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            exchanges = [
                Exchange(
                    e["asked"], e["response"]["status"], e["response"]["content_type"], e["response"]["body"]
                )
                for e in (data.get(SECTIONS[role], []) if role == "judge" else data["exchanges"])
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cassette {path} is not valid ({exc}); record it again") from exc
        return cls(path, exchanges)

    def answer(self, question: dict[str, Any]) -> Exchange | str:
        """The recorded exchange for ``question``, or a diff explaining the divergence."""
        with self._lock:
            for index, exchange in enumerate(self.exchanges):
                if not self.used[index] and exchange.asked == question:
                    self.used[index] = True
                    return exchange
            for exchange in reversed(self.exchanges):  # a client retrying an answered request
                if exchange.asked == question:
                    return exchange
            nearest = self._nearest(question)
        want = _lines(nearest.asked) if nearest else []
        diff = difflib.unified_diff(want, _lines(question), "recorded", "asked now", lineterm="", n=3)
        return f"replay diverged from cassette {self.path}:\n" + "\n".join(diff)

    def _nearest(self, question: dict[str, Any]) -> Exchange | None:
        pending = [e for e, used in zip(self.exchanges, self.used, strict=True) if not used] or self.exchanges
        if not pending:
            return None
        same_kind = [e for e in pending if e.asked.get("format") == question.get("format")] or pending
        return max(
            same_kind, key=lambda e: difflib.SequenceMatcher(None, _lines(e.asked), _lines(question)).ratio()
        )


def _lines(asked_: dict[str, Any]) -> list[str]:
    return json.dumps(asked_, indent=1, sort_keys=True).splitlines()
