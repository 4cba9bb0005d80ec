"""Release gating: compare this run with a baseline and fail on a significant drop.

A baseline is an earlier ``results.jsonl`` or ``summary.json`` (which keeps each task's
scores). Per task and overall, a one-sided stratified permutation test asks whether this
run's scores are lower than the baseline's; per-task p-values are Holm-corrected, so a
large suite does not raise false alarms. The gate fails when the overall drop or any
task's drop is significant at ``alpha``; improvements are listed the same way.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..stats import drop_p_value, holm, mean
from .summary import Row, counted_score

TaskScores = dict[str, list[float]]  # "domain/task/variant" -> scores


@dataclass
class TaskComparison:
    task: str
    baseline_mean: float
    new_mean: float
    baseline_n: int
    new_n: int
    p_drop: float
    p_rise: float


@dataclass
class GateReport:
    agent: str
    baseline_agent: str
    alpha: float
    overall_p_drop: float
    baseline_mean: float
    new_mean: float
    tasks: list[TaskComparison] = field(default_factory=list)
    regressions: list[TaskComparison] = field(default_factory=list)
    improvements: list[TaskComparison] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.regressions) or self.overall_p_drop <= self.alpha

    def lines(self) -> list[str]:
        verdict = "FAILED" if self.failed else "passed"
        out = [
            f"{self.agent} vs baseline {self.baseline_agent}: gate {verdict} (alpha {self.alpha}); "
            f"mean {self.new_mean:.3f} vs {self.baseline_mean:.3f}, "
            f"one-sided p(drop) = {self.overall_p_drop:.4f} over {len(self.tasks)} task(s)"
        ]
        for title, items in (("regression", self.regressions), ("improvement", self.improvements)):
            for c in items:
                p = c.p_drop if title == "regression" else c.p_rise
                out.append(
                    f"  {title}: {c.task}: {c.baseline_mean:.3f} (n={c.baseline_n}) -> "
                    f"{c.new_mean:.3f} (n={c.new_n}), p = {p:.4f}"
                )
        return out


def load_baseline(path: Path) -> dict[str, TaskScores]:
    """Per agent, per task variant, the baseline's graded scores."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--ale-baseline: cannot read {path}: {exc}") from exc
    scores: dict[str, TaskScores] = defaultdict(lambda: defaultdict(list))
    try:
        if path.suffix == ".jsonl":
            for line in text.splitlines():
                if line.strip():
                    row = json.loads(line)
                    key = f"{row['domain']}/{row['task']}/{row.get('variant', 'base')}"
                    error = row.get("status") == "error" or row.get("score") is None
                    scores[row["agent"]][key].append(0.0 if error else float(row["score"]))
        else:
            for entry in json.loads(text).get("tasks", []):
                for variant, values in entry.get("scores", {}).items():
                    scores[entry["agent"]][f"{entry['task']}/{variant}"].extend(values)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"--ale-baseline: {path} is not a pytest-ale results.jsonl or summary.json ({exc})"
        ) from exc
    if not scores:
        raise ConfigError(f"--ale-baseline: {path} holds no trials")
    return {agent: dict(tasks) for agent, tasks in scores.items()}


def current_scores(rows: list[Row]) -> dict[str, TaskScores]:
    scores: dict[str, TaskScores] = defaultdict(lambda: defaultdict(list))
    for row in rows:  # an error trial counts as 0: a fault never lifts a candidate
        scores[row.agent][f"{row.domain}/{row.task}/{row.variant}"].append(counted_score(row))
    return {agent: dict(tasks) for agent, tasks in scores.items()}


def pair_agents(new: list[str], old: list[str]) -> list[tuple[str, str]]:
    """Same-named agents; or, when each side has exactly one, those two."""
    shared = [a for a in new if a in old]
    if shared:
        return [(a, a) for a in shared]
    if len(new) == 1 and len(old) == 1:
        return [(new[0], old[0])]
    raise ConfigError(
        f"--ale-baseline: cannot pair agents: this run has {sorted(new)}, the baseline "
        f"{sorted(old)}; run the same agent names, or one agent against a one-agent baseline"
    )


def gate(rows: list[Row], baseline: dict[str, TaskScores], alpha: float) -> list[GateReport]:
    new = current_scores(rows)
    reports = []
    for agent, old_agent in pair_agents(sorted(new), sorted(baseline)):
        mine, theirs = new[agent], baseline[old_agent]
        common = sorted(set(mine) & set(theirs))
        comparisons = [
            TaskComparison(
                task=task,
                baseline_mean=mean(theirs[task]),
                new_mean=mean(mine[task]),
                baseline_n=len(theirs[task]),
                new_n=len(mine[task]),
                p_drop=drop_p_value([(theirs[task], mine[task])]),
                p_rise=drop_p_value([(mine[task], theirs[task])]),
            )
            for task in common
        ]
        dropped = holm({c.task: c.p_drop for c in comparisons}, alpha)
        rose = holm({c.task: c.p_rise for c in comparisons}, alpha)
        reports.append(
            GateReport(
                agent=agent,
                baseline_agent=old_agent,
                alpha=alpha,
                overall_p_drop=drop_p_value([(theirs[t], mine[t]) for t in common]),
                baseline_mean=mean([v for t in common for v in theirs[t]]),
                new_mean=mean([v for t in common for v in mine[t]]),
                tasks=comparisons,
                regressions=[c for c in comparisons if c.task in dropped],
                improvements=[c for c in comparisons if c.task in rose],
            )
        )
    return reports
