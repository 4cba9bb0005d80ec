"""The end-of-run statistics: per agent, per domain and per task, as a table and JSON.

Rows are built from each finished trial's ``TrialResult`` (``pytest_ale_trial_finished``,
which the xdist controller gets too), so the summary is the same with ``-n 0`` and ``-n 16``.
Errors (infrastructure, task or grader faults) are counted apart and excluded from the
score statistics and pass@k; timeouts are graded trials and count.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..stats import mean, mean_interval, pass_at_k


@dataclass(frozen=True)
class Row:
    """One finished trial as the controller sees it."""

    agent: str
    domain: str
    task: str
    variant: str
    trial: int
    status: str
    score: float | None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    #: what the task's grader spent on its LLM judge (never in the agent's figures)
    judge_requests: int = 0
    judge_cost_usd: float = 0.0

    @property
    def unit(self) -> tuple[str, str, str, str]:
        """The trials of one agent on one task variant: what pass@k is computed over."""
        return (self.agent, self.domain, self.task, self.variant)


@dataclass
class Group:
    rows: list[Row] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The group's figures. An error trial counts as 0 in ``mean_score``, ``ci95``,
        ``pass_rate`` and pass@k (no fault can improve an agent's figures); ``errors``
        says how many, and ``mean_graded`` is the mean over graded trials alone."""
        graded = [r for r in self.rows if r.status != "error" and r.score is not None]
        scores = [counted_score(r) for r in self.rows]
        passed = sum(r.status == "passed" for r in self.rows)
        low, high = mean_interval(scores)
        return {
            "trials": len(self.rows),
            "graded": len(graded),
            "passed": passed,
            "errors": sum(r.status == "error" for r in self.rows),
            "timeouts": sum(r.status == "timeout" for r in self.rows),
            "over_budget": sum(r.status == "budget" for r in self.rows),
            "mean_score": _num(mean(scores)),
            "mean_graded": _num(mean([r.score for r in graded if r.score is not None])),
            "ci95": [_num(low), _num(high)],
            "pass_rate": _num(passed / len(self.rows) if self.rows else math.nan),
            "pass_at_k": self.pass_at(),
            "input_tokens": sum(r.input_tokens for r in self.rows),
            "output_tokens": sum(r.output_tokens for r in self.rows),
            "cost_usd": round(sum(r.cost_usd for r in self.rows), 6),
            "judge_requests": sum(r.judge_requests for r in self.rows),
            "judge_cost_usd": round(sum(r.judge_cost_usd for r in self.rows), 6),
        }

    def pass_at(self) -> dict[str, float]:
        """pass@k for k = 1..n: the unbiased estimator per task variant, averaged."""
        units: dict[tuple[str, str, str, str], list[Row]] = defaultdict(list)
        for row in self.rows:
            units[row.unit].append(row)  # an error trial is one that did not pass
        if not units:
            return {}
        most = max(len(rows) for rows in units.values())
        result = {}
        for k in range(1, most + 1):
            values = [
                pass_at_k(len(rows), sum(r.status == "passed" for r in rows), k)
                for rows in units.values()
                if len(rows) >= k
            ]
            result[str(k)] = round(mean(values), 6)
        return result


def counted_score(row: Row) -> float:
    """The score a trial adds to every figure: its grade, or 0 for an error (or none)."""
    return 0.0 if row.status == "error" or row.score is None else float(row.score)


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def row_from_result(data: dict[str, Any]) -> Row:
    """A row from a ``TrialResult.to_json()``: a finished trial's, a ``results.jsonl``
    line's (resume, baselines)."""
    return Row(
        agent=str(data["agent"]),
        domain=str(data["domain"]),
        task=str(data["task"]),
        variant=str(data.get("variant", "base")),
        trial=int(data.get("trial", 0)),
        status=str(data["status"]),
        score=data.get("score"),
        input_tokens=int(data.get("input_tokens") or 0),
        output_tokens=int(data.get("output_tokens") or 0),
        cost_usd=float(data.get("cost_usd") or 0.0),
        judge_requests=int(data.get("judge_requests") or 0),
        judge_cost_usd=float(data.get("judge_cost_usd") or 0.0),
    )


def grouped(rows: list[Row], by: str) -> dict[tuple[str, str], Group]:
    """Rows per (agent, domain) with an ``ALL`` line per agent, or per (agent, task)."""
    groups: dict[tuple[str, str], Group] = defaultdict(Group)
    for row in rows:
        if by == "task":
            groups[(row.agent, f"{row.domain}/{row.task}")].rows.append(row)
        else:
            groups[(row.agent, row.domain)].rows.append(row)
            groups[(row.agent, "ALL")].rows.append(row)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] == "ALL", kv[0][1])))


def table(rows: list[Row]) -> list[str]:
    """The terminal table: per agent and domain, trials, mean, interval, pass rate, pass@k."""
    groups = grouped(rows, "domain")
    most_k = max((len(g.pass_at()) for g in groups.values()), default=0)
    header = ["agent", "domain", "trials", "mean", "95% CI", "pass rate"]
    if most_k > 1:
        header.append(f"pass@{most_k}")
    header += ["errors", "timeouts", "cost $"]
    judged = any(r.judge_requests for r in rows)
    if judged:
        header.append("judge $")
    body = []
    for (agent, domain), group in groups.items():
        d = group.as_dict()
        line = [
            agent,
            domain,
            str(d["trials"]),
            _fmt(d["mean_score"], "{:.3f}"),
            "-" if d["ci95"][0] is None else f"{d['ci95'][0]:.2f}-{d['ci95'][1]:.2f}",
            _fmt(d["pass_rate"], "{:.0%}"),
        ]
        if most_k > 1:
            line.append(_fmt(d["pass_at_k"].get(str(most_k)), "{:.0%}"))
        line += [str(d["errors"]), str(d["timeouts"]), f"{d['cost_usd']:.2f}"]
        if judged:
            line.append(f"{d['judge_cost_usd']:.2f}")
        body.append(line)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), *(fmt.format(*r) for r in body)]
    errors = sum(r.status == "error" for r in rows)
    if errors:
        lines.append(
            f"{errors} error trial(s) count as 0 in mean and pass rate (a fault never improves "
            "a figure); summary.json's mean_graded leaves them out"
        )
    return lines


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def summary_data(rows: list[Row], run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "groups": [
            {"agent": agent, "domain": domain, **group.as_dict()}
            for (agent, domain), group in grouped(rows, "domain").items()
        ],
        "tasks": [
            {"agent": agent, "task": task, **group.as_dict(), "scores": _scores(group)}
            for (agent, task), group in grouped(rows, "task").items()
        ],
    }


def _scores(group: Group) -> dict[str, list[float]]:
    """Each variant's graded scores: what a later run's release gate compares against."""
    scores: dict[str, list[float]] = defaultdict(list)
    for row in group.rows:
        scores[row.variant].append(counted_score(row))
    return dict(scores)


def write_summary(data: dict[str, Any], path: Path) -> None:
    """Write ``summary.json`` (``summary_data``) whole or not at all (an interrupt never
    leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
