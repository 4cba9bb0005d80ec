"""Task credentials on purpose (``--ale-credentials DIR``): a task's declared files are
staged into ``input/credentials/`` only when the run names the folder, listed by name in
the record, never a model API key; without them the task is skipped with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .ale_tasks import write_ale_task
from .conftest import TaskMaker, results

LICENSED_MAIN = """
from pathlib import Path

INSTRUCTION = "Report what licence you were given."


def evaluate(output_dir: Path, reference_dir: Path, sandbox):
    got = (output_dir / "lic.txt").read_text() if (output_dir / "lic.txt").is_file() else ""
    return (1.0, "the licence arrived") if got == "LICENSE-42\\n" else (0.0, "no licence")
"""
SOLUTION = (
    "cat input/credentials/license.lic > output/lic.txt\nls -A input/credentials > output/listing.txt\n"
)
DECLARED = [{"type": "matlab_license", "file": "license.lic", "purpose": "the solver's licence"}]
KEY = "sk-test-credentials-0123456789"


def licensed(make_task: TaskMaker, files: list[dict[str, str]] = DECLARED) -> Path:
    card = {"domain": "demo", "tier": "near-term", "timeout": 30, "requiredCredentials": files}
    return make_task("licensed", main=LICENSED_MAIN, card=card, solution=SOLUTION)


def operator_folder(pytester: pytest.Pytester, files: dict[str, str]) -> Path:
    folder = pytester.path / "secret"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("tasks", "-p", "no:cacheprovider", "-rs", *args)


def test_without_the_folder_the_task_is_skipped_with_the_reason(
    pytester: pytest.Pytester, make_task: TaskMaker
) -> None:
    licensed(make_task)
    make_task("plain")
    result = run(pytester)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED*the task declares credentials (license.lic); pass --ale-credentials DIR holding*"]
    )
    # a folder without the declared file: skipped too, naming it
    folder = operator_folder(pytester, {"other.lic": "x\n"})
    result = run(pytester, "--ale-credentials", str(folder), "-k", "licensed")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [f"SKIPPED*credential file(s) not in --ale-credentials {folder}: license.lic*"]
    )
    result = run(pytester, "--ale-credentials", "no-such-folder")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ale-credentials */no-such-folder: no such folder*"])


def test_declared_files_are_staged_and_listed_by_name(
    pytester: pytest.Pytester, make_task: TaskMaker
) -> None:
    licensed(make_task)
    folder = operator_folder(
        pytester, {"license.lic": "LICENSE-42\n", "undeclared.lic": "NOT-FOR-THIS-TASK\n"}
    )
    result = run(pytester, "--ale-credentials", "secret")  # relative to where pytest runs
    result.assert_outcomes(passed=1)
    (row,) = results(pytester)
    assert row["credentials"] == ["license.lic"]
    artifacts = Path(row["artifacts"])
    # only the declared file entered the sandbox; the record holds its name, not its content
    assert (artifacts / "output" / "listing.txt").read_text() == "license.lic\n"
    assert "LICENSE-42" not in (artifacts / "result.json").read_text()
    assert json.loads((artifacts / "result.json").read_text())["credentials"] == ["license.lic"]
    assert (folder / "license.lic").read_text() == "LICENSE-42\n"  # the operator's file untouched


def test_a_file_holding_a_model_key_is_refused(
    pytester: pytest.Pytester, make_task: TaskMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    licensed(make_task)
    operator_folder(pytester, {"license.lic": f"LICENSE-42\nkey={KEY}\n"})
    result = run(pytester, "--ale-credentials", "secret")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*license.lic: refused, it holds a model API key the gateway uses*"])
    (row,) = results(pytester)
    assert (row["status"], row["error_kind"], row["credentials"]) == ("error", "settings", [])
    assert KEY not in result.stdout.str()


def test_a_file_named_as_a_model_key_is_refused(pytester: pytest.Pytester, make_task: TaskMaker) -> None:
    licensed(make_task, [{"type": "api_key", "file": "ANTHROPIC_API_KEY.txt"}])
    operator_folder(pytester, {"ANTHROPIC_API_KEY.txt": "whatever\n"})
    result = run(pytester, "--ale-credentials", "secret")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*refused, 'ANTHROPIC_API_KEY.txt' is named as a model API key*"])


def test_an_ale_task_finds_them_where_ale_puts_them(pytester: pytest.Pytester) -> None:
    """ALE's own setup code reads the operator's folder from AGENTHLE_CREDENTIALS_DIR: it
    sees the declared files only; the sandbox has them under input/credentials/."""
    start = (
        "folder = os.environ['AGENTHLE_CREDENTIALS_DIR']\n"
        "assert sorted(os.listdir(folder)) == ['license.lic'], os.listdir(folder)\n"
        "assert await session.file_exists('input/credentials/license.lic')"
    )
    write_ale_task(
        pytester.path / "tasks" / "demo" / "ale_licensed", {"requiredCredentials": DECLARED}, start=start
    )
    operator_folder(pytester, {"license.lic": "LICENSE-42\n", "undeclared.lic": "x\n"})
    result = run(pytester, "--ale-credentials", "secret", "--ale-agent=noop")
    result.assert_outcomes(passed=1)
    (row,) = results(pytester)
    assert row["credentials"] == ["license.lic"]
