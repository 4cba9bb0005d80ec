"""Fixtures for the plugin's own tests: build task folders and agent presets in pytester."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The Docker SDK (requests, http.cookiejar) is imported once, before any test: pytester
# drops the modules first imported inside a test, and a second import of them breaks
# requests' cookie-jar type checks in every Docker client made afterwards.
with contextlib.suppress(ImportError):
    import docker  # noqa: F401

GOOD_MAIN = """
from pathlib import Path

INSTRUCTION = "Copy input/data.txt to output/data.txt, upper-cased."


def evaluate(output_dir: Path, reference_dir: Path, sandbox) -> tuple[float, str]:
    out = output_dir / "data.txt"
    if not out.is_file():
        return 0.0, "output/data.txt is missing"
    want = (reference_dir / "data.txt").read_text()
    if out.read_text() == want:
        return 1.0, "matches"
    return 0.0, f"expected {want!r}, got {out.read_text()!r}"
"""

GOOD_SOLUTION = "tr a-z A-Z < input/data.txt > output/data.txt\n"

TaskMaker = Callable[..., Path]


@pytest.fixture
def make_task(pytester: pytest.Pytester) -> TaskMaker:
    """Write a task folder under ``tasks/<domain>/<name>`` in the pytester directory."""

    def make(
        name: str = "upper",
        *,
        domain: str = "demo",
        main: str | None = GOOD_MAIN,
        card: dict[str, Any] | str | bytes | None = None,
        solution: str | None = GOOD_SOLUTION,
        files: dict[str, str] | None = None,
    ) -> Path:
        folder = pytester.path / "tasks" / domain / name
        folder.mkdir(parents=True, exist_ok=True)
        if main is not None:
            (folder / "main.py").write_text(textwrap.dedent(main))
        if card is None:
            card = {"domain": domain, "tier": "near-term", "timeout": 30}
        if isinstance(card, dict):
            (folder / "task_card.json").write_text(json.dumps(card))
        elif isinstance(card, bytes):
            (folder / "task_card.json").write_bytes(card)
        else:
            (folder / "task_card.json").write_text(card)
        (folder / "input").mkdir(exist_ok=True)
        (folder / "input" / "data.txt").write_text("hello world\n")
        (folder / "reference").mkdir(exist_ok=True)
        (folder / "reference" / "data.txt").write_text("HELLO WORLD\n")
        if solution is not None:
            (folder / "solution").mkdir(exist_ok=True)
            (folder / "solution" / "solve.sh").write_text(solution)
        for rel, text in (files or {}).items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return folder

    return make


@pytest.fixture
def command_agent(pytester: pytest.Pytester) -> Callable[[str, str], str]:
    """Write ``agents/<name>.yaml`` for a ``command`` agent; returns the preset name."""

    def make(name: str, command: str) -> str:
        (pytester.path / "agents").mkdir(exist_ok=True)
        (pytester.path / "agents" / f"{name}.yaml").write_text(
            f"kind: command\ncommand: {json.dumps(command)}\n"
        )
        return name

    return make


def like_a_terminal() -> None:
    """``preexec_fn`` for a run the test will Ctrl-C: SIGINT as in a terminal, even when
    this test session was started in the background (where the shell ignores SIGINT, and
    a Python started with it ignored never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def results(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    """Every ``results.jsonl`` line written under the pytester directory's reports/."""
    rows = []
    for path in sorted((pytester.path / "reports" / "runs").glob("*/results.jsonl")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return rows


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """With ``ALE_FORBID_SKIPS=1`` (CI), a test skipped for a missing engine, CLI or tool
    fails instead: in CI every real component must be there and be exercised."""
    report = yield
    if os.environ.get("ALE_FORBID_SKIPS") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (ALE_FORBID_SKIPS=1): {reason}"
    return report
