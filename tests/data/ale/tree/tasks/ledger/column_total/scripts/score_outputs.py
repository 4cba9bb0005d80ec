"""Host-side helpers of column_total (same module name as word_census's, other contents)."""

TASK = "column_total"


def combine(sandbox_report: dict) -> float:
    checks = sandbox_report.get("checks", {})
    return sum(bool(v) for v in checks.values()) / max(len(checks), 1)
