"""ALE tasks as ALE runs them, from a folder outside ALE's tree.

ALE's ``tasks/pyproject.toml`` makes ``tasks/`` pytest's rootdir. Each test here copies
the ALE-shaped tree of ``tests/data/ale`` into ``ale/`` under pytester's folder (the
invocation directory) with such a ``pyproject.toml``, its data beside it in ``ale-data/``,
and runs pytest from outside the tree with relative paths, as a new user types them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .ale_tasks import write_ale_task
from .conftest import results

DATA = Path(__file__).parent / "data" / "ale"
#: ALE's own ``tasks/pyproject.toml``: no pytest table, yet pytest makes its folder the rootdir
ALE_PYPROJECT = '[project]\nname = "ale-task-eval-deps"\nversion = "0.1.0"\n'
LOCAL = ("--ale-provider-opt", "isolation=none", "-p", "no:cacheprovider", "-rs")


@pytest.fixture
def ale(pytester: pytest.Pytester) -> Path:
    """``ale/`` (ALE's shape: ``tasks/`` with its pyproject.toml, ``selected_tasks/``) and
    ``ale-data/`` under the invocation directory; returns ``ale/``."""
    root = pytester.path / "ale"
    shutil.copytree(DATA / "tree", root)
    shutil.copytree(DATA / "data", pytester.path / "ale-data")
    (root / "tasks" / "pyproject.toml").write_text(ALE_PYPROJECT)
    lists = root / "selected_tasks"
    lists.mkdir()
    (lists / "linux_only.txt").write_text("# All Linux tasks\nledger/column_total\ntextops/word_census\n")
    return root


def collected(result: pytest.RunResult) -> list[str]:
    return sorted(line for line in result.outlines if "::" in line)


def test_tree_outside_collects_and_ale_lists_select(pytester: pytest.Pytester, ale: Path) -> None:
    for target in ("ale/tasks", "ale"):  # the README's two forms
        result = pytester.runpytest(
            target, "--ale-task-list", "ale/selected_tasks/linux_only.txt", "--collect-only", "-q"
        )
        assert result.ret == pytest.ExitCode.OK, result.stderr.str()
        prefix = "" if target == "ale/tasks" else "ale/tasks/"  # the rootdir: tasks/, else here
        assert collected(result) == [
            f"{prefix}ledger/column_total/main.py::column_total[oracle-q1-t1]",
            f"{prefix}ledger/column_total/main.py::column_total[oracle-q2-t1]",
            f"{prefix}textops/word_census/main.py::word_census[oracle-base-t1]",
        ]
    header = pytester.runpytest("ale/tasks", "--collect-only", "-q", "-v")
    header.stdout.fnmatch_lines([f"rootdir: {ale / 'tasks'}*"])  # ALE's tree really is the rootdir
    # ALE's checkout also has a pyproject.toml with a pytest table at its top: the rootdir then
    (ale / "pyproject.toml").write_text(ALE_PYPROJECT + '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    top = pytester.runpytest(
        "ale/tasks", "--ale-task-list", "ale/selected_tasks/linux_only.txt", "--collect-only", "-q"
    )
    assert collected(top) == [
        "tasks/ledger/column_total/main.py::column_total[oracle-q1-t1]",
        "tasks/ledger/column_total/main.py::column_total[oracle-q2-t1]",
        "tasks/textops/word_census/main.py::word_census[oracle-base-t1]",
    ]


def test_a_list_line_matching_nothing_names_the_file_line_and_places(
    pytester: pytest.Pytester, ale: Path
) -> None:
    wrong = ale / "selected_tasks" / "wrong.txt"
    wrong.write_text("ledger/column_total\n\ntextops/no_such_task\n")
    result = pytester.runpytest("ale/tasks", "--ale-task-list", "ale/selected_tasks/wrong.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"*task list {wrong}, line 3: 'textops/no_such_task' is not a task folder*"
            f"looked in {ale / 'tasks'}*{ale / 'selected_tasks'}*fix or remove that line*"
        ]
    )
    unreadable = pytester.runpytest("ale/tasks", "--ale-task-list", "nowhere.txt")
    unreadable.stderr.fnmatch_lines([f"*cannot read task list {pytester.path / 'nowhere.txt'}*"])


def test_relative_data_works_and_reports_land_where_pytest_ran(pytester: pytest.Pytester, ale: Path) -> None:
    result = pytester.runpytest(
        "ale/tasks",
        "--ale-data",
        "ale-data",
        "--ale-task-list",
        "ale/selected_tasks/linux_only.txt",
        "--ale-run-id",
        "outside",
        *LOCAL,
    )
    result.assert_outcomes(passed=3)
    rows = results(pytester)  # read from reports/ of the invocation directory
    assert sorted((r["task"], r["variant"], r["score"]) for r in rows) == [
        ("column_total", "q1", 1.0),
        ("column_total", "q2", 1.0),
        ("word_census", "base", 1.0),
    ]
    assert not (ale / "tasks" / "reports").exists()
    assert (pytester.path / "reports" / "summary.json").is_file()
    artifacts = pytester.path / "reports" / "runs" / "outside" / "textops" / "word_census"
    assert (artifacts / "oracle-base-t1" / "result.json").is_file()


def test_ini_paths_stay_relative_to_the_ini_files_folder(pytester: pytest.Pytester, ale: Path) -> None:
    (ale / "tasks" / "pyproject.toml").write_text(
        ALE_PYPROJECT + '[tool.pytest.ini_options]\nale_output = "out"\nale_data = "../../ale-data"\n'
    )
    result = pytester.runpytest("ale/tasks", "-k", "word_census", *LOCAL)
    result.assert_outcomes(passed=1)
    assert (ale / "tasks" / "out" / "summary.json").is_file()
    assert not (pytester.path / "reports").exists()


def test_a_preset_given_by_path_is_labelled_by_its_stem(pytester: pytest.Pytester, ale: Path) -> None:
    presets = pytester.path / "my presets"
    presets.mkdir()
    (presets / "careful-oracle.yaml").write_text("kind: oracle\n")
    (presets / "plain-local.yaml").write_text("kind: local\nisolation: none\n")
    args = (
        "ale/tasks",
        "--ale-data",
        "ale-data",
        "--ale-agent",
        "my presets/careful-oracle.yaml",
        "--ale-provider",
        "my presets/plain-local.yaml",
    )
    listed = pytester.runpytest(*args, "-k", "word_census", "--collect-only", "-q")
    assert collected(listed) == ["textops/word_census/main.py::word_census[careful-oracle-base-t1]"]
    result = pytester.runpytest(*args, "-k", "word_census", "--ale-run-id", "stem", *LOCAL)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*careful-oracle*"])
    result.stdout.no_fnmatch_line("*my presets*")
    (row,) = results(pytester)
    assert (row["agent"], row["provider"]) == ("careful-oracle", "plain-local")
    assert Path(row["artifacts"]).name == "careful-oracle-base-t1"
    summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
    assert "my presets" not in json.dumps(summary)


def test_oracle_skips_an_ale_task_without_a_solution(pytester: pytest.Pytester, ale: Path) -> None:
    write_ale_task(ale / "tasks" / "demo" / "unsolved")
    args = ("ale/tasks/demo", *LOCAL)
    result = pytester.runpytest(*args, "--ale-agent", "oracle", "--ale-agent", "noop")
    result.assert_outcomes(passed=1, skipped=1)  # the noop agent runs it; evaluate() gives 1.0
    result.stdout.fnmatch_lines(
        ["SKIPPED*unsolved/main.py: no solution/solve.sh or solution/solve.py in *unsolved: the oracle*"]
    )


def test_a_windows_task_that_would_not_import_here_skips(pytester: pytest.Pytester, ale: Path) -> None:
    write_ale_task(
        ale / "tasks" / "desktop" / "win_only",
        card={"vm": {"snapshot": "cpu-windows-11"}},
        top="import winreg  # only on Windows",
    )
    result = pytester.runpytest("ale/tasks/desktop", *LOCAL)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*win_only/main.py: provider 'local' cannot run windows tasks*"])
    listed = pytester.runpytest("ale/tasks/desktop", "--collect-only", "-q", "-m", "windows")
    assert collected(listed) == ["desktop/win_only/main.py::win_only[oracle-base-t1]"]


@pytest.mark.parametrize(
    ("start", "hint"),
    [
        ("raise FileNotFoundError('input/brief.txt is missing')", "*the task's data is missing*"),
        ("await session.run_command('no-such-tool-1234 --version')", "*a tool the task needs is missing*"),
        ("raise ValueError('bad metadata')", "*fix the task's @cb.setup_task function*"),
    ],
    ids=["data", "tool", "code"],
)
def test_setup_hint_names_the_real_cause(pytester: pytest.Pytester, ale: Path, start: str, hint: str) -> None:
    write_ale_task(ale / "tasks" / "demo" / "needs", start=start)
    result = pytester.runpytest("ale/tasks/demo", "--ale-agent", "noop", *LOCAL)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([hint])
    if "setup_task" not in hint:
        result.stdout.no_fnmatch_line("*@cb.setup_task*")


def test_gateway_and_conformance_paths_follow_the_same_rule(pytester: pytest.Pytester, ale: Path) -> None:
    from pytest_ale.testing.target import from_option

    cli = pytester.runpytest("ale/tasks", "--ale-scripted-model", "script.yaml", "--collect-only")
    cli.stderr.fnmatch_lines([f"*--ale-scripted-model {pytester.path / 'script.yaml'} does not exist*"])
    (ale / "tasks" / "pyproject.toml").write_text(
        ALE_PYPROJECT + '[tool.pytest.ini_options]\nale_scripted_model = "script.yaml"\n'
    )
    ini = pytester.runpytest("ale/tasks", "--collect-only")
    ini.stderr.fnmatch_lines([f"*--ale-scripted-model {ale / 'tasks' / 'script.yaml'} does not exist*"])
    (pytester.path / "mine").mkdir()
    (pytester.path / "mine" / "plain.yaml").write_text("kind: local\nisolation: none\n")
    target = from_option("mine/plain.yaml", ale / "tasks", pytester.path)
    assert target.name == "plain"


def test_setup_hint_names_the_data_folder_it_staged(pytester: pytest.Pytester, ale: Path) -> None:
    start = "raise RuntimeError('missing staged paths: input/a.csv')"  # as ALE's tasks word it
    write_ale_task(ale / "tasks" / "demo" / "needs", start=start)
    result = pytester.runpytest("ale/tasks/demo", "--ale-agent", "noop", "--ale-data", "ale-data", *LOCAL)
    result.assert_outcomes(errors=1)
    data = pytester.path / "ale-data" / "demo" / "needs"
    result.stdout.fnmatch_lines([f"*the task's data is missing or incomplete: it was staged from {data}*"])
