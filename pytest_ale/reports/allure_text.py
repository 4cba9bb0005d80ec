"""The text the Allure report shows for a trial: HTML description, status message, output listing."""

from __future__ import annotations

from html import escape
from pathlib import Path

from ..outcome import TrialResult

#: an output listing stops after this many files
MAX_LISTED_FILES = 500


def score_text(result: TrialResult) -> str:
    """The score as the report shows it: three decimals, or ``none`` when there is none."""
    return "none" if result.score is None else f"{result.score:.3f}"


def status_message(result: TrialResult) -> str:
    """One line a person reads first: score against threshold, then the grader's reason."""
    line = f"score {score_text(result)} (threshold {result.threshold:.3f}, status {result.status})"
    if result.explanation:
        line += f"; grader: {result.explanation}"
    if result.error:
        line += f"; {result.error_kind or 'unknown'} error: {result.error}"
    return line


def trial_description(result: TrialResult, labels: dict[str, str]) -> str:
    """HTML: the score and the grader's reason first, then the labels and the run's facts."""
    rows = dict(labels)
    rows["variant"] = result.variant
    rows["trial"] = str(result.trial)
    if result.agent_version:
        rows["agent version"] = result.agent_version
    rows["duration"] = f"{result.duration_s:.1f} s"
    if result.phases:
        rows["phases"] = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.phases.items())
    usage = result.usage
    if usage.input_tokens or usage.output_tokens:
        rows["tokens"] = f"{usage.input_tokens} in, {usage.output_tokens} out"
        rows["cost"] = f"${usage.cost_usd:.4f}"
    if result.artifacts:
        rows["artifacts"] = result.artifacts
    parts = [
        f"<p><b>Score: {score_text(result)}</b> (threshold {result.threshold:.3f}), "
        f"status <b>{escape(result.status)}</b></p>"
    ]
    if result.timed_out:
        parts.append("<p>The agent ran out of time and was stopped; its output was graded anyway.</p>")
    if result.explanation:
        parts.append(f"<p>Grader: {escape(result.explanation)}</p>")
    if result.error:
        parts.append(f"<p>Error ({escape(result.error_kind or 'unknown')}): {escape(result.error)}</p>")
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows.items())
    parts.append(f"<table>{table}</table>")
    return "\n".join(parts)


def broken_description(folder: Path, error: str) -> str:
    return (
        f"<p><b>Broken task</b> {escape(str(folder))}: it could not be loaded, so no trial ran.</p>"
        f"<pre>{escape(error)}</pre>"
    )


def output_listing(output: Path) -> str:
    """Every file under ``output/`` with its size, one per line (or why there is none)."""
    if not output.is_dir():
        return "(no output folder was collected)"
    files = sorted(p for p in output.rglob("*") if p.is_file() and not p.is_symlink())
    if not files:
        return "(output/ is empty)"
    lines = [f"{p.stat().st_size:>12}  {p.relative_to(output)}" for p in files[:MAX_LISTED_FILES]]
    if len(files) > MAX_LISTED_FILES:
        lines.append(f"... and {len(files) - MAX_LISTED_FILES} more files")
    return "\n".join([f"{len(files)} file(s) in output/:", *lines])
