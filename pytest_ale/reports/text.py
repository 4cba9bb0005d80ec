"""Human-readable text about a trial: the failure message a person reads first."""

from __future__ import annotations

from pathlib import Path

from ..outcome import TrialResult

LOG_TAIL_LINES = 15


def failure_message(result: TrialResult) -> str:
    """Why a trial did not pass: score and grader's explanation, or the error and its fix."""
    head = f"{result.task} [{result.agent} {result.variant} t{result.trial}]"
    lines: list[str] = []
    if result.status == "error":
        lines.append(f"{head}: {result.error_kind or 'unknown'} error")
        lines.append(result.error or "(no message)")
    else:
        score = f"{result.score:.3f}" if result.score is not None else "none"
        lines.append(f"{head}: score {score} < threshold {result.threshold:.3f} (status {result.status})")
        if result.timed_out:
            lines.append("the agent ran out of time and was killed; its output was graded anyway")
        if result.explanation:
            lines.append(f"grader: {result.explanation}")
    if result.agent_exit_code not in (0, None):
        lines.append(f"agent exited with code {result.agent_exit_code}")
    lines.extend(f"warning: {w}" for w in result.warnings)
    tail = _log_tail(result)
    if tail:
        lines.append("agent log (last lines):")
        lines.extend("  " + line for line in tail)
    if result.artifacts:
        lines.append(f"artifacts: {result.artifacts}")
    return "\n".join(lines)


def _log_tail(result: TrialResult) -> list[str]:
    if not result.artifacts:
        return []
    log = Path(result.artifacts) / "agent.log"
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.rstrip().splitlines()[-LOG_TAIL_LINES:]
