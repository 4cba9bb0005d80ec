"""The bundled task suite in tasks/, run for real through the plugin on the local provider.

Every task must score 1.0 with ``oracle`` (its solution proves it solvable and its grader
right), 0.0 with ``noop``, and strictly between with a half-done output from tests/partial/.
Card facts must work as markers, and lists/ must agree with the cards.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_ale.card import load_card
from pytest_ale.native import NativeTask
from pytest_ale.providers.local import LocalProvider
from pytest_ale.sandbox import SandboxSpec
from pytest_ale.staging import tar_folders

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "tasks"
PARTIAL = ROOT / "tests" / "partial"
TASK_DIRS = sorted(p.parent for p in TASKS.glob("*/*/main.py"))
NAMES = {d.name for d in TASK_DIRS}
MAX_TASK_BYTES = 200_000


def _card(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "task_card.json").read_text())


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    """Run pytest on tasks/ in a child process; return it and the results by task name."""
    out = tmp_path / "reports"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(TASKS),
        "--rootdir",
        str(ROOT),
        "-p",
        "no:cacheprovider",
        "--ale-output",
        str(out),
        "--ale-run-id",
        "suite",
        "-q",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    results_file = out / "runs" / "suite" / "results.jsonl"
    lines = results_file.read_text().splitlines() if results_file.exists() else []
    results = {r["task"]: r for r in map(json.loads, lines)}
    return proc, results


def _collected(tmp_path: Path, *args: str) -> set[str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(TASKS),
            "--rootdir",
            str(ROOT),
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "-q",
            "--ale-output",
            str(tmp_path / "reports"),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr
    return {line.split("::")[0].rsplit("/", 2)[-2] for line in proc.stdout.splitlines() if "::" in line}


def test_suite_shape() -> None:
    """At least 14 tasks over 7 domains, a mix of tiers, the files every task needs, small data."""
    assert len(TASK_DIRS) >= 14
    cards = {d: _card(d) for d in TASK_DIRS}
    assert len({c["domain"] for c in cards.values()}) >= 7
    assert {c["tier"] for c in cards.values()} == {"near-term", "full-spectrum", "last-exam"}
    for folder, card in cards.items():
        assert {"title", "summary", "domain", "tier", "timeout", "os", "tags"} <= set(card), folder
        assert card["domain"] == folder.parent.name, folder
        assert (folder / "input").is_dir() and (folder / "reference").is_dir(), folder
        assert any((folder / "solution" / f).is_file() for f in ("solve.sh", "solve.py")), folder
        size = sum(
            f.stat().st_size for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts
        )
        assert size < MAX_TASK_BYTES, f"{folder}: {size} bytes; keep task data under {MAX_TASK_BYTES}"
        assert (PARTIAL / folder.relative_to(TASKS)).is_dir(), f"no half-done output for {folder}"
    binary = [f for f in TASKS.rglob("input/*") if f.suffix in (".gz", ".zip", ".sqlite")]
    assert binary, "at least one task must read a binary format (gzip, zip, SQLite)"


def test_oracle_scores_every_task_one(tmp_path: Path) -> None:
    proc, results = _run(tmp_path, "--ale-agent", "oracle")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert set(results) == NAMES
    for name, result in results.items():
        assert (result["status"], result["score"]) == ("passed", 1.0), f"{name}: {result['explanation']}"


def test_noop_scores_every_task_zero(tmp_path: Path) -> None:
    proc, results = _run(tmp_path, "--ale-agent", "noop")
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert set(results) == NAMES
    for name, result in results.items():
        assert (result["status"], result["score"]) == ("failed", 0.0), f"{name}: {result}"
        assert result["explanation"], f"{name}: a zero score needs an explanation"


def test_half_done_outputs_score_strictly_between(tmp_path: Path) -> None:
    mapping = {}
    for folder in TASK_DIRS:
        task = NativeTask.load(folder, load_card(folder / "task_card.json"))
        digest = hashlib.sha256(task.instruction("base").encode()).hexdigest()
        mapping[digest] = folder.relative_to(TASKS).as_posix()
    preset = tmp_path / "half-done.yaml"
    preset.write_text(
        "kind: command\n"
        f'command: "python3 {PARTIAL / "apply.py"} {{instruction_file}}"\n'
        f"env:\n  ALE_PARTIAL_MAP: '{json.dumps(mapping)}'\n"
    )
    proc, results = _run(tmp_path, "--ale-agent", str(preset), "--ale-provider-opt", f"ro_binds=[{PARTIAL}]")
    assert set(results) == NAMES, proc.stdout[-4000:] + proc.stderr[-2000:]
    for name, result in results.items():
        assert result["status"] == "failed", f"{name}: {result}"
        assert 0.0 < result["score"] < 1.0, f"{name}: score {result['score']}: {result['explanation']}"


def test_card_markers_select_tasks(tmp_path: Path) -> None:
    finance = _collected(tmp_path, "-m", "finance")
    assert finance == {d.name for d in TASK_DIRS if _card(d)["domain"] == "finance"}
    near_term = _collected(tmp_path, "-m", "near_term")
    assert near_term == {d.name for d in TASK_DIRS if _card(d)["tier"] == "near-term"}
    assert near_term and near_term != NAMES


@pytest.mark.parametrize("tier", ["near-term", "full-spectrum", "last-exam"])
def test_task_lists_match_cards(tier: str, tmp_path: Path) -> None:
    def listed(name: str) -> list[str]:
        text = (ROOT / "lists" / name).read_text()
        return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]

    assert listed("all.txt") == [d.relative_to(ROOT).as_posix() for d in TASK_DIRS]
    want = {d.relative_to(ROOT).as_posix() for d in TASK_DIRS if _card(d)["tier"] == tier}
    assert set(listed(f"{tier}.txt")) == want
    selected = _collected(tmp_path, "--ale-task-list", f"lists/{tier}.txt")
    assert selected == {Path(p).name for p in want}


def test_per_run_secret_differs_between_runs() -> None:
    """deposition-redaction's setup writes a fresh matter id and PII into each sandbox."""
    folder = TASKS / "legal" / "deposition-redaction"
    task = NativeTask.load(folder, load_card(folder / "task_card.json"))
    provider = LocalProvider({})
    seen = []
    for trial in ("a", "b"):
        sandbox = provider.acquire(SandboxSpec(run_id="secret-test", trial_id=trial))
        try:
            sandbox.put_archive(sandbox.workdir, tar_folders({"input": folder / "input"}))
            task.begin(sandbox, "base").setup()
            matter = json.loads(sandbox.read_text(sandbox.path("input", "matter.json")))
            assert matter["matter_id"] == sandbox.state["matter_id"]
            assert sandbox.state["matter_id"] in sandbox.read_text(sandbox.path("input", "deposition.txt"))
            seen.append((matter["matter_id"], tuple(sandbox.state["secrets"])))
        finally:
            provider.release(sandbox)
    assert seen[0][0] != seen[1][0] and seen[0][1] != seen[1][1]
