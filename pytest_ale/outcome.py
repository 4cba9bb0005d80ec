"""A trial's outcome: the typed result every report (properties, JSON, tables) reads.

``status`` is one of ``passed`` (score reached the threshold), ``failed`` (graded below
it, or 0 for breaking a rule such as the output cap), ``timeout`` / ``oom`` (the agent was
stopped, graded anyway, below the threshold), ``budget`` (the gateway stopped the agent
for its budget: graded, never passing) and ``error`` (infrastructure, task or grader
fault: no score; counted as 0 in every mean and pass rate, and shown beside them), its
``error_kind`` one of ``ERROR_KINDS``.
``timed_out`` is kept beside the score even when a timed-out agent still passed.
``usage`` is the agent's model usage; what the task's grader spent on its judge while it
graded (``gateway/judge.py``) is ``judge_usage``, apart from it (``JUDGE_FIELDS``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .gateway.wire import Usage

STATUSES = ("passed", "failed", "timeout", "oom", "budget", "error")
#: what an ``error`` trial's ``error_kind`` may be: the ``kind`` of the ``errors.AleError``
#: class that ended it (README, "Results"; docs/architecture.md, "Who is at fault")
ERROR_KINDS = ("infrastructure", "task", "grader", "staging", "settings", "replay", "unclassified")
#: the usage fields of a results.jsonl record, as they always were; ``cache_tokens`` (read
#: + write) is kept for older readers, the request count travels as ``ale_model_requests``
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_tokens",
    "cost_usd",
)
#: the judge's usage in a results.jsonl record (and, with ``ale_``, in JUnit): field -> ``Usage``'s
JUDGE_FIELDS = {
    "judge_tokens_in": "input_tokens",
    "judge_tokens_out": "output_tokens",
    "judge_cost_usd": "cost_usd",
    "judge_requests": "requests",
}


@dataclass
class TrialResult:
    run_id: str
    test_id: str
    task: str
    domain: str
    agent: str
    provider: str
    variant: str
    trial: int
    threshold: float
    tier: str | None = None
    model: str | None = None
    agent_version: str | None = None
    status: str = "error"
    score: float | None = None
    explanation: str = ""
    error: str | None = None
    error_kind: str | None = None
    timed_out: bool = False
    oom: bool = False
    agent_exit_code: int | None = None
    attempts: int = 1
    warnings: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0
    #: the model usage of every attempt, summed (``gateway.wire.Usage``); results.jsonl
    #: carries it as flat fields (``USAGE_FIELDS``)
    usage: Usage = field(default_factory=Usage)
    #: what the grader's judge spent on the model, summed over attempts (never in ``usage``)
    judge_usage: Usage = field(default_factory=Usage)
    artifacts: str | None = None
    budget_exceeded: bool = False
    #: the credential files staged for the task (``--ale-credentials``): names only
    credentials: list[str] = field(default_factory=list)
    #: harness-specific report properties (gateway requests, rate-limit retries, ...)
    extra_properties: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_json(self) -> dict[str, Any]:
        """The record as results.jsonl and result.json hold it: ``usage`` as its flat
        fields in its place (``input_tokens`` ... ``cost_usd``, and ``cache_tokens``)."""
        data: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "usage":
                data.update({name: getattr(self.usage, name) for name in USAGE_FIELDS})
            elif key == "judge_usage":
                data.update({name: getattr(self.judge_usage, attr) for name, attr in JUDGE_FIELDS.items()})
            else:
                data[key] = value
        if data["score"] is not None and math.isnan(data["score"]):
            data["score"] = None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialResult:
        """The result ``to_json`` wrote (a report's, a results.jsonl line); unknown keys
        (from a newer version) are left out."""
        known = {f.name for f in fields(cls)} - {"usage", "judge_usage"}
        record = {key: value for key, value in data.items() if key in known}
        usage = Usage(**{f.name: data[f.name] for f in fields(Usage) if f.name in data})
        usage.requests = int((data.get("extra_properties") or {}).get("ale_model_requests") or 0)
        judge = Usage(**{attr: data[name] for name, attr in JUDGE_FIELDS.items() if name in data})
        return cls(**record, usage=usage, judge_usage=judge)

    def properties(self) -> list[tuple[str, object]]:
        """What ``record_property`` carries into JUnit XML (and xdist reports)."""
        props: list[tuple[str, object]] = [
            ("ale_score", "" if self.score is None else round(self.score, 6)),
            ("ale_status", self.status),
            ("ale_timed_out", str(self.timed_out).lower()),
            ("ale_agent", self.agent),
            ("ale_provider", self.provider),
            ("ale_task", self.task),
            ("ale_domain", self.domain),
            ("ale_variant", self.variant),
            ("ale_trial", self.trial),
            ("ale_threshold", self.threshold),
            ("ale_duration_s", round(self.duration_s, 3)),
            ("ale_input_tokens", self.usage.input_tokens),
            ("ale_output_tokens", self.usage.output_tokens),
            ("ale_cache_read_tokens", self.usage.cache_read_tokens),
            ("ale_cache_write_tokens", self.usage.cache_write_tokens),
            ("ale_cost_usd", round(self.usage.cost_usd, 6)),
            *(
                (f"ale_{name}", round(getattr(self.judge_usage, attr), 6))
                for name, attr in JUDGE_FIELDS.items()
            ),
        ]
        if self.model:
            props.append(("ale_model", self.model))
        if self.tier:
            props.append(("ale_tier", self.tier))
        if self.artifacts:
            props.append(("ale_artifacts", self.artifacts))
        if self.budget_exceeded:
            props.append(("ale_budget_exceeded", "true"))
        if self.credentials:
            props.append(("ale_credentials", ",".join(self.credentials)))
        props.extend(self.extra_properties.items())
        return props

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps(self.to_json(), indent=2) + "\n")
