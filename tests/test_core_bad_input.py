"""Bad input of every kind: one clear message naming the task and the fix; the rest runs."""

from __future__ import annotations

import importlib
import json

import pytest

from pytest_ale.errors import AleError
from pytest_ale.outcome import ERROR_KINDS

from .conftest import results


def grader_returning(expr: str) -> str:
    return f"""
        INSTRUCTION = "anything"
        def evaluate(output_dir, reference_dir, sandbox):
            return {expr}
    """


BROKEN_TASKS = {
    "syntax-error": (
        {"main": "INSTRUCTION = 'x'\ndef evaluate(:\n    pass\n"},
        ["*broken task: *tasks/demo/broken/main.py:2: syntax error: *fix the Python syntax*"],
    ),
    "import-error": (
        {"main": "import no_such_module_xyz\n"},
        ["*broken task*main.py: importing it needs the Python module 'no_such_module_xyz'*pytest-ale deps*"],
    ),
    "no-evaluate": (
        {"main": "INSTRUCTION = 'do it'\n"},
        ["*main.py: defines no evaluate(output_dir, reference_dir, sandbox); add one*"],
    ),
    "empty-instruction": (
        {"main": grader_returning("1.0").replace('"anything"', '"   "')},
        ["*main.py: the instruction is empty or missing; set INSTRUCTION = *"],
    ),
    "card-invalid-json": (
        {"card": '{"domain": "demo",, }'},
        ["*broken/task_card.json: invalid JSON at line 1 column 19*fix the JSON syntax*"],
    ),
    "card-unreadable": (
        {"card": b'{"domain": "\xff\xfe"}'},
        ["*broken/task_card.json: not UTF-8 text*save it as UTF-8*"],
    ),
    "card-wrong-types": (
        {"card": {"domain": "demo", "timeout": "soon", "tier": "someday", "vm": {"vcpus": 0}}},
        [
            "*task_card.json: invalid task card: tier: tier must be one of near-term, full-spectrum, "
            "last-exam; timeout: Input should be a valid number, unable to parse string as a number "
            "(give seconds the agent may run: a number above 0, e.g. 1800); vm.vcpus: Input should "
            "be greater than 0 (give a number of CPUs above 0, e.g. 4)*"
        ],
    ),
    "card-not-object": (
        {"card": "[1, 2]"},
        ["*task_card.json: the card must be a JSON object*not list*"],
    ),
    "grader-raises": (
        {"main": grader_returning("1 / 0")},
        [
            "*grader error*",
            "*evaluate() raised ZeroDivisionError: division by zero*",
            "*return 0.0 with an explanation*",
        ],
    ),
    "grader-nan": (
        {"main": grader_returning("float('nan')")},
        ["*evaluate() returned NaN; return a number in [[]0, 1[]]*"],
    ),
    "grader-none": (
        {"main": grader_returning("None")},
        ["*evaluate() returned None (NoneType); return a number in [[]0, 1[]]*"],
    ),
    "grader-negative": (
        {"main": grader_returning("-1")},
        ["*evaluate() returned -1.0, outside [[]0, 1[]]; scale it into [[]0, 1[]]*"],
    ),
    "grader-two": (
        {"main": grader_returning("2")},
        ["*evaluate() returned 2.0, outside [[]0, 1[]]*"],
    ),
    "grader-string": (
        {"main": grader_returning("'great'")},
        ["*evaluate() returned 'great' (str); return a number in [[]0, 1[]]*"],
    ),
    "setup-raises": (
        {
            "main": "INSTRUCTION='x'\ndef setup(sandbox):\n    raise RuntimeError('no fixture')\n"
            "def evaluate(o, r, s):\n    return 1.0\n"
        },
        [
            "*main.py: setup() raised RuntimeError: no fixture*",
            "*main.py*line 3, in setup*",
            "*fix the task's setup*",
        ],
    ),
    "no-solution": (
        {"solution": None},
        ["*broken: no solution/solve.sh or solution/solve.py, so the oracle cannot run this task*"],
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_TASKS))
def test_broken_task_is_one_clear_error_and_the_rest_runs(
    pytester: pytest.Pytester, make_task, case: str
) -> None:
    spec, messages = BROKEN_TASKS[case]
    make_task("good")
    make_task("broken", **spec)
    make_task("also-good", domain="zz")
    run = pytester.runpytest("tasks", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=2, errors=1)
    for message in messages:
        run.stdout.fnmatch_lines([message])
    run.stdout.no_fnmatch_line("*Traceback (most recent call last)*")
    run.stdout.no_fnmatch_line("*_pytest*")
    # a task that did not load has a line of its own; a grader's fault is the agent's trial's
    if "broken [broken task]" in run.stdout.str():
        run.stdout.re_match_lines(
            [r"^\(broken task\)\s+demo\s+1\s.*\s1\s+0\s+0\.00$", r"^oracle\s+ALL\s+2\s"]
        )
    else:
        run.stdout.re_match_lines([r"^oracle\s+ALL\s+3\s.*\s1\s+0\s+0\.00$"])


def test_card_without_main_py_is_reported(pytester: pytest.Pytester, make_task) -> None:
    make_task("good")
    make_task("lonely", main=None)
    run = pytester.runpytest("tasks")
    run.assert_outcomes(passed=1, errors=1)
    run.stdout.fnmatch_lines(["*lonely: has task_card.json but no main.py; add main.py*"])


def test_crashing_agent_is_graded_not_an_error(pytester: pytest.Pytester, make_task, command_agent) -> None:
    make_task("good")
    command_agent("crashy", "echo 'Traceback: boom' >&2; exit 3")
    run = pytester.runpytest("tasks", "--ale-agent=crashy")
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(
        [
            "*score 0.000 < threshold 1.000 (status failed)*",
            "*agent exited with code 3*",
            "*Traceback: boom*",
        ]
    )
    assert results(pytester)[0]["agent_exit_code"] == 3


def test_output_symlink_to_a_host_file_is_refused(
    pytester: pytest.Pytester, make_task, command_agent
) -> None:
    secret = pytester.path / "host-secret.txt"
    secret.write_text("HOST SECRET\n")
    main = """
        INSTRUCTION = "write output/data.txt"
        def evaluate(output_dir, reference_dir, sandbox):
            leak = output_dir / "leak.txt"
            if leak.exists() or leak.is_symlink():
                return 0.0, "leak.txt reached the grader"
            return (1.0, "ok") if (output_dir / "data.txt").is_file() else (0.0, "no data.txt")
    """
    make_task("linky", main=main)
    make_task("good", domain="other")
    command_agent(
        "linker", f"ln -s {secret} output/leak.txt; ln -s /etc/passwd output/pw; echo fine > output/data.txt"
    )
    run = pytester.runpytest("tasks", "--ale-agent=linker", "-k", "linky", "-W", "default")
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(
        [
            f"*linky: output/leak.txt: a link to '{secret}', outside the folder; not collected "
            "(write real files into output/, not links to elsewhere)*",
            "*linky: output/pw: a link to '/etc/passwd'*",
        ]
    )
    row = results(pytester)[0]
    assert any("leak.txt" in w for w in row["warnings"])
    collected = pytester.path / "reports" / "runs"
    assert not [p for p in collected.rglob("*") if p.is_symlink()]


def test_results_are_recorded_for_every_trial_even_errors(pytester: pytest.Pytester, make_task) -> None:
    make_task("good")
    make_task("bad-grader", main=grader_returning("None"))
    pytester.runpytest("tasks", "--ale-trials=2")
    rows = results(pytester)
    assert sorted((r["task"], r["status"]) for r in rows) == [
        ("bad-grader", "error"),
        ("bad-grader", "error"),
        ("good", "passed"),
        ("good", "passed"),
    ]
    assert all(json.dumps(r) for r in rows)


ERROR_MODULES = (
    "pytest_ale.agents.cli",
    "pytest_ale.liveness",
    "pytest_ale.providers.vm_base",
    "pytest_ale.providers.docker.client",
)


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_every_error_kind_is_one_of_the_list() -> None:
    """Each error class names its kind, every kind is in ``outcome.ERROR_KINDS``, and the
    list holds no kind that no error has (the old catch-all "config" is gone)."""
    for module in ERROR_MODULES:  # the modules that define errors of their own
        importlib.import_module(module)
    kinds = {cls: cls.kind for cls in [AleError, *_subclasses(AleError)]}
    assert set(kinds.values()) <= set(ERROR_KINDS), kinds
    assert set(ERROR_KINDS) == set(kinds.values()), set(ERROR_KINDS) - set(kinds.values())
    assert len(set(ERROR_KINDS)) == len(ERROR_KINDS) and "config" not in ERROR_KINDS
    by_name = {cls.__name__: kind for cls, kind in kinds.items()}
    assert by_name["ConfigError"] == "settings" and by_name["ReplayDivergence"] == "replay"
    assert by_name["OutputOverCap"] == "staging" and by_name["ContainerDiedError"] == "infrastructure"
