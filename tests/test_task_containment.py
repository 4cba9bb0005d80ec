"""Task and grader faults are contained: a task's import, setup or grader that exits,
forks, leaves programs running or hangs is that task's clear error, never the run's end.

Every run happens in a subprocess (an uncontained ``os._exit`` would end this test
session too), with a good task on each side of the broken one; programs the tasks start
sleep a unique time, so ``/proc`` shows whether one was left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .ale_tasks import write_ale_task
from .conftest import like_a_terminal

_unique = itertools.count(1)


def sleep_arg() -> str:
    """A unique ``sleep`` argument (300 s and a bit), to find its process in ``/proc``."""
    return f"300.{os.getpid()}{next(_unique):03d}"


def alive_with(arg: str) -> list[int]:
    """PIDs of live (not zombie) processes whose command line holds ``arg``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            state = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if arg.encode() in cmdline and state != b"Z":
            found.append(int(entry.name))
    return found


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider", "-W", "default", timeout=180)


def assert_contained(result: pytest.RunResult, lines: list[str], *, graded: bool = False) -> None:
    """The run completed: two good tasks passed, the broken one is one error (or, for a
    grader's fault, an error or a failure: a grader defect may count as 0), exit code 1."""
    outcomes = result.parseoutcomes()
    bad = outcomes.get("errors", 0) + (outcomes.get("failed", 0) if graded else 0)
    assert (outcomes.get("passed"), bad) == (2, 1), result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(lines)
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


# -- native tasks ---------------------------------------------------------------------------
def native_main(*, top: str = "", setup: str = "", evaluate: str = "") -> str:
    """A native main.py: ``top`` runs at import, ``setup``/``evaluate`` first in those."""
    body = textwrap.indent(textwrap.dedent(evaluate), "    ")
    text = f"import os, sys, subprocess, time\n{textwrap.dedent(top)}\nINSTRUCTION = 'copy'\n"
    if setup:
        text += f"def setup(sandbox):\n{textwrap.indent(textwrap.dedent(setup), '    ')}\n"
    return text + f"def evaluate(output_dir, reference_dir, sandbox):\n{body}\n    return 1.0\n"


IMPORT = "*broken task: *tasks/demo/broken/main.py: importing it "
NATIVE_IMPORT_FAULTS = {
    "os._exit(0)": ("os._exit(0)", [f"{IMPORT}called os._exit(0), which would end the whole test run*"]),
    "os._exit(3)": ("os._exit(3)", [f"{IMPORT}called os._exit(3), which would end the whole test run*"]),
    "swallowed os._exit": (
        "try:\n    os._exit(1)\nexcept BaseException:\n    pass",
        [f"{IMPORT}called os._exit(1)*raise an ordinary exception*"],
    ),
    "sys.exit()": ("sys.exit()", [f"{IMPORT}called sys.exit(None) (SystemExit), which would stop*"]),
    "sys.exit(2)": ("sys.exit(2)", [f"{IMPORT}called sys.exit(2) (SystemExit)*"]),
    "KeyboardInterrupt": (
        "raise KeyboardInterrupt",
        [f"{IMPORT}raised KeyboardInterrupt (no Ctrl-C was pressed)*"],
    ),
    "BaseException": ("raise BaseException('odd')", [f"{IMPORT}raised BaseException (a BaseException)*"]),
    "os.abort()": ("os.abort()", [f"{IMPORT}called os.abort(), which would end the whole test run*"]),
    "os.fork": (
        "if os.fork() == 0:\n    os.execvp('sleep', ['sleep', '{sleep}'])",
        [f"{IMPORT}called os.fork(), refused: *start programs with subprocess.run(*"],
    ),
}


@pytest.mark.parametrize("case", sorted(NATIVE_IMPORT_FAULTS))
def test_native_import_fault_is_the_tasks_error(pytester: pytest.Pytester, make_task, case: str) -> None:
    top, lines = NATIVE_IMPORT_FAULTS[case]
    arg = sleep_arg()
    make_task("good")
    make_task("broken", main=native_main(top=top.format(sleep=arg)))
    make_task("also-good", domain="zz")
    assert_contained(run(pytester, "tasks"), lines)
    assert alive_with(arg) == []


def test_programs_left_running_at_import_are_killed_with_a_warning(
    pytester: pytest.Pytester, make_task
) -> None:
    """A program left running (even one that left the process tree: setsid + background)
    is killed when the import returns; the task itself is fine."""
    plain, daemon = sleep_arg(), sleep_arg()
    top = f"subprocess.Popen(['sleep', '{plain}'])\nsubprocess.run(['sh', '-c', 'setsid sleep {daemon} &'])"
    make_task("good")
    make_task("spawner", main=native_main(top=top))
    result = run(pytester, "tasks")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*TaskCodeWarning: *spawner/main.py: importing it left 2 process(es) running; they were killed*"]
    )
    assert alive_with(plain) == alive_with(daemon) == []


def test_native_import_that_hangs_is_stopped_at_its_limit(pytester: pytest.Pytester, make_task) -> None:
    card = {"domain": "demo", "timeout": 30, "import_timeout": 2}
    make_task("good")
    make_task("broken", main=native_main(top="while True:\n    time.sleep(0.01)"), card=card)
    make_task("also-good", domain="zz")
    started = time.monotonic()
    result = run(pytester, "tasks")
    assert_contained(
        result,
        [
            f"{IMPORT}exceeded its 2 s limit and was stopped",
            "*broken/main.py*line 3, in <module>*",
            "*make it faster, or raise 'import_timeout' (seconds) in task_card.json*",
        ],
    )
    assert time.monotonic() - started < 60


NATIVE_GRADER_FAULTS = {
    "os._exit": ("os._exit(0)", "*evaluate() called os._exit(0), which would end the whole test run*"),
    "sys.exit": ("sys.exit(1)", "*evaluate() called sys.exit(1) (SystemExit), which would stop the whole*"),
    "fork": ("os.fork()", "*evaluate() called os.fork(), refused*"),
    "loop": ("while True:\n    pass", "*evaluate() exceeded its 2 s limit and was stopped*"),
    "sleep": ("time.sleep(300)", "*evaluate() exceeded its 2 s limit and was abandoned*"),
    "waits on a program": (
        "subprocess.run(['sleep', '{sleep}'])",
        "*evaluate() exceeded its 2 s limit and was stopped*",
    ),
}


@pytest.mark.parametrize("case", sorted(NATIVE_GRADER_FAULTS))
def test_native_grader_fault_is_a_grader_error(pytester: pytest.Pytester, make_task, case: str) -> None:
    code, line = NATIVE_GRADER_FAULTS[case]
    arg = sleep_arg()
    card = {"domain": "demo", "timeout": 30, "grader_timeout": 2}
    make_task("good")
    make_task("broken", main=native_main(evaluate=code.format(sleep=arg)), card=card)
    make_task("also-good", domain="zz")
    started = time.monotonic()
    result = run(pytester, "tasks")
    assert_contained(result, ["*grader error*", f"*broken/main.py: {line.lstrip('*')}"], graded=True)
    assert time.monotonic() - started < 60
    assert alive_with(arg) == []
    rows = [json.loads(line) for p in pytester.path.glob("reports/runs/*/results.jsonl") for line in p.open()]
    assert {r["task"]: r["error_kind"] for r in rows}["broken"] == "grader"


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        ("os._exit(0)", "called os._exit(0)"),
        ("sys.exit(3)", "called sys.exit(3)"),
        ("raise KeyboardInterrupt", "raised KeyboardInterrupt"),
    ],
)
def test_native_setup_fault_is_a_task_error(
    pytester: pytest.Pytester, make_task, code: str, cause: str
) -> None:
    make_task("good")
    make_task("broken", main=native_main(setup=code))
    make_task("also-good", domain="zz")
    assert_contained(run(pytester, "tasks"), ["*task error*", f"*broken/main.py: setup() {cause}*"])


def test_absurd_card_timeout_is_a_card_error(pytester: pytest.Pytester, make_task) -> None:
    make_task("good")
    make_task("broken", card={"domain": "demo", "timeout": 1e12})
    make_task("also-good", domain="zz")
    assert_contained(
        run(pytester, "tasks"),
        [
            "*broken task: *broken/task_card.json: invalid task card: timeout: Input should be less "
            "than or equal to 604800 (give seconds the agent may run*"
        ],
    )


@pytest.mark.parametrize(
    ("card", "line"),
    [
        ({"timeout": float("nan")}, "timeout: Input should be a finite number"),
        ({"cpus": -2}, "cpus: Input should be greater than 0"),
        ({"memory_gb": 1e9}, "memory_gb: Input should be less than or equal to 16384"),
        ({"vm": {"disk_gb": float("inf")}}, "vm.disk_gb: Input should be a finite number"),
        ({"grader_timeout": True}, "grader_timeout: Input should be a number, not true or false"),
        ({"threshold": float("nan")}, "threshold: Input should be a finite number"),
    ],
)
def test_out_of_range_card_values_are_card_errors(
    pytester: pytest.Pytester, make_task, card: dict, line: str
) -> None:
    make_task("broken", card={"domain": "demo", **card})
    result = pytester.runpytest("tasks", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*broken/task_card.json: invalid task card: {line} (give *"])


def test_xdist_workers_still_exit_normally(pytester: pytest.Pytester, make_task) -> None:
    """The replaced os._exit is only the task's: xdist's workers end as they should."""
    pytest.importorskip("xdist")
    make_task("good")
    make_task("broken", main=native_main(top="os._exit(0)"))
    make_task("also-good", domain="zz")
    assert_contained(run(pytester, "tasks", "-n", "2"), [f"{IMPORT}called os._exit(0)*"])


def test_os_exit_outside_task_code_is_the_real_one() -> None:
    code = "import os, pytest_ale.taskguard as g; g._install(); os._exit(7)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 7


# -- a real Ctrl-C still stops the run -------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "sig"),
    [("import", signal.SIGINT), ("evaluate", signal.SIGINT), ("import", signal.SIGTERM)],
)
def test_real_ctrl_c_in_task_code_stops_the_run(
    pytester: pytest.Pytester, make_task, where: str, sig: signal.Signals
) -> None:
    """Ctrl-C (and SIGTERM, which the plugin turns into one) is never the task's fault."""
    flag = pytester.path / "hanging"
    hang = f"open({str(flag)!r}, 'w').close()\nwhile True:\n    time.sleep(0.05)"
    main = native_main(top=hang) if where == "import" else native_main(evaluate=hang)
    make_task("hangs", main=main, card={"domain": "demo", "timeout": 30})
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "tasks", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=like_a_terminal,
    )
    deadline = time.monotonic() + 60
    while not flag.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert flag.exists(), "the task code never started"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    assert b"KeyboardInterrupt" in out
    assert b"no Ctrl-C was pressed" not in out


# -- ALE-format tasks -----------------------------------------------------------------------
def ale_task(root: Path, name: str, card: dict | None = None, **code: str) -> None:
    write_ale_task(root / "ale" / "tasks" / "faulty" / name, card, **code)


ALE_IMPORT = "*broken task: *faulty/broken/main.py: "
ALE_FAULTS: dict[str, tuple[dict[str, str], str]] = {
    "import os._exit(0)": ({"top": "os._exit(0)"}, f"{ALE_IMPORT}importing it called os._exit(0)*"),
    "import sys.exit(2)": ({"top": "sys.exit(2)"}, f"{ALE_IMPORT}importing it called sys.exit(2)*"),
    "import KeyboardInterrupt": (
        {"top": "raise KeyboardInterrupt"},
        f"{ALE_IMPORT}importing it raised KeyboardInterrupt (no Ctrl-C*",
    ),
    "import fork": (
        {"top": "if os.fork() == 0:\n    os.execvp('sleep', ['sleep', '{sleep}'])"},
        f"{ALE_IMPORT}importing it called os.fork(), refused*",
    ),
    "import hangs": (
        {"top": "time.sleep(300)"},
        f"{ALE_IMPORT}importing it exceeded its 2 s limit and was stopped*",
    ),
    "load() os._exit(3)": ({"load": "os._exit(3)"}, f"{ALE_IMPORT}load() called os._exit(3)*"),
    "start() sys.exit()": ({"start": "sys.exit()"}, "*faulty/broken/main.py: start() called sys.exit(None)*"),
    "evaluate() os._exit(0)": ({"evaluate": "os._exit(0)"}, "*/main.py: evaluate() called os._exit(0)*"),
    "evaluate() hangs": (
        {"evaluate": "while True:\n    pass"},
        "*broken/main.py: evaluate() exceeded its 2 s limit and was stopped*",
    ),
    "evaluate() waits on a program": (
        {"evaluate": "subprocess.run(['sleep', '{sleep}'])"},
        "*broken/main.py: evaluate() exceeded its 2 s limit and was stopped*",
    ),
    "card timeout 1e12": (
        {"card": '{"vm": {"snapshot": "cpu-free-ubuntu", "timeout": 1e12}}'},
        f"{ALE_IMPORT.replace('main.py', 'task_card.json')}invalid task card: vm.timeout: Input should be "
        "less than or equal to 604800*",
    ),
}


@pytest.mark.parametrize("case", sorted(ALE_FAULTS))
def test_ale_task_fault_is_contained(pytester: pytest.Pytester, case: str) -> None:
    code, line = ALE_FAULTS[case]
    arg = sleep_arg()
    card = {"import_timeout": 2, "grader_timeout": 2, **json.loads(code.get("card", "{}"))}
    funcs = {k: v.format(sleep=arg) for k, v in code.items() if k != "card"}
    ale_task(pytester.path, "fine")
    ale_task(pytester.path, "broken", card, **funcs)
    ale_task(pytester.path, "zz_fine")
    started = time.monotonic()
    result = run(pytester, "ale/tasks", "--ale-agent=noop")
    assert_contained(result, [line], graded="evaluate" in case)
    assert time.monotonic() - started < 60
    assert alive_with(arg) == []


def test_ale_programs_left_running_are_killed_with_a_warning(pytester: pytest.Pytester) -> None:
    at_import, in_grader = sleep_arg(), sleep_arg()
    ale_task(pytester.path, "fine")
    ale_task(
        pytester.path,
        "spawner",
        top=f"subprocess.Popen(['sleep', '{at_import}'])",
        evaluate=f"subprocess.Popen(['sleep', '{in_grader}'])",
    )
    result = run(pytester, "ale/tasks", "--ale-agent=noop")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*spawner/main.py: importing it left 1 process(es) running; they were killed*",
            "*spawner/main.py: evaluate() left 1 process(es) running; they were killed*",
        ]
    )
    assert alive_with(at_import) == alive_with(in_grader) == []
