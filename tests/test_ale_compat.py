"""ALE-format (``cua_bench``) task trees run unmodified: end-to-end runs of the plugin.

The tree under ``tests/data/ale/tree`` has ALE's shape (``tasks/common_config.py``,
``tasks/linux_runtime.py``, ``tasks/common_setup.py``, ``tasks/<domain>/<task>/...``) and
its data lives apart, under ``tests/data/ale/data/<domain>/<task>/<variant>/``. Both are
copied into each pytester folder (under /tmp, which bubblewrap hides from the agent).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from .ale_tasks import write_ale_task
from .conftest import results

DATA = Path(__file__).parent / "data" / "ale"
HAS_BWRAP = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap is not installed")
ISOLATION = [
    pytest.param([], id="bwrap", marks=needs_bwrap),
    pytest.param(["--ale-provider-opt", "isolation=none"], id="no-isolation"),
]
RUNNABLE = ["word_census", "column_total", "permission_audit", "hidden_answer"]

# The searching agent: every file it can reach named like a task file, and every file
# holding a task's marker. The markers are assembled at run time, so the only files that
# hold them whole are the task's own data files.
SEARCH = r"""
roots="${SEARCH_ROOTS:-/}"
I="ZQX-INPUT-"; I="${I}VISIBLE-2291"; R="ZQX-REFERENCE-"; R="${R}SECRET-4417"
named() { find $roots \( -path /proc -o -path /sys -o -path /dev \) -prune -o -name "$1" -print 2>/dev/null; }
holding() {
  find $roots \( -path /proc -o -path /sys -o -path /dev -o -path /usr -o -path /lib -o -path /lib32 \
    -o -path /lib64 -o -path /bin -o -path /sbin -o -path /etc -o -path "$PYPREFIX" \) -prune \
    -o -type f -size -4M -print0 2>/dev/null | xargs -0 grep -l -- "$1" 2>/dev/null
}
{
  echo "input_name: $(named brief.txt | tr '\n' ' ')"
  echo "input_grep: $(holding "$I" | tr '\n' ' ')"
  echo "ref_name: $(named answer_key.txt | tr '\n' ' ')"
  echo "ref_grep: $(holding "$R" | tr '\n' ' ')"
} > output/found.txt
cat output/found.txt
"""


@pytest.fixture
def ale(pytester: pytest.Pytester) -> Path:
    """The ALE tree at ``ale/tasks/...`` and its data at ``ale-data/``; returns ``ale/``."""
    shutil.copytree(DATA / "tree", pytester.path / "ale")
    shutil.copytree(DATA / "data", pytester.path / "ale-data")
    return pytester.path / "ale"


def agent_preset(pytester: pytest.Pytester, name: str, script: str, env: dict[str, str] | None = None) -> str:
    folder = pytester.path / "agents"
    folder.mkdir(exist_ok=True)
    # the command is a str.format template: literal braces are doubled
    preset: dict[str, Any] = {"kind": "command", "command": script.replace("{", "{{").replace("}", "}}")}
    if env:
        preset["env"] = env
    (folder / f"{name}.yaml").write_text(json.dumps(preset))  # JSON is YAML
    return name


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("ale/tasks", "--ale-data", "ale-data", "-p", "no:cacheprovider", "-rs", *args)


def by_key(pytester: pytest.Pytester) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["agent"], r["task"], r["variant"]): r for r in results(pytester)}


def test_tree_collects_unmodified(pytester: pytest.Pytester, ale: Path) -> None:
    before = {p: p.read_bytes() for p in ale.rglob("*") if p.is_file()}
    result = run(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines_random(
        [
            "ale/tasks/textops/word_census/main.py::word_census[[]oracle-base-t1[]]",
            "ale/tasks/ledger/column_total/main.py::column_total[[]oracle-q1-t1[]]",
            "ale/tasks/ledger/column_total/main.py::column_total[[]oracle-q2-t1[]]",
            "ale/tasks/sysadmin/permission_audit/main.py::permission_audit[[]oracle-base-t1[]]",
            "ale/tasks/gis/raster_mosaic/main.py::raster_mosaic[[]oracle-base-t1[]]",
            "*8 tests collected*",
        ]
    )
    assert result.ret == pytest.ExitCode.OK
    after = {p: p.read_bytes() for p in ale.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert after == {p: b for p, b in before.items()}


@pytest.mark.parametrize("isolation", ISOLATION)
def test_oracle_passes_and_noop_fails(pytester: pytest.Pytester, ale: Path, isolation: list[str]) -> None:
    result = run(pytester, "--ale-agent=oracle", "--ale-agent=noop", *isolation)
    result.assert_outcomes(passed=5, failed=5, skipped=6)
    rows = by_key(pytester)
    for task in RUNNABLE:
        variants = ["q1", "q2"] if task == "column_total" else ["base"]
        for variant in variants:
            assert rows[("oracle", task, variant)]["score"] == 1.0, rows[("oracle", task, variant)]
            noop = rows[("noop", task, variant)]
            assert (noop["status"], noop["score"]) == ("failed", 0.0), noop
    # load() ran again before evaluate(): the grader read the setup-time token back
    assert rows[("oracle", "permission_audit", "base")]["explanation"] == "load() ran again; failed: none"
    # the collected output keeps its permission bits
    out = Path(rows[("oracle", "permission_audit", "base")]["artifacts"]) / "output"
    assert stat.S_IMODE((out / "deploy.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "private.key").stat().st_mode) == 0o600


def test_skips_say_why(pytester: pytest.Pytester, ale: Path) -> None:
    result = run(pytester, "-k", "raster_mosaic or segment_cells or missing_corpus")
    result.assert_outcomes(skipped=3)
    missing = pytester.path / "ale-data" / "textops" / "missing_corpus" / "base"
    result.stdout.fnmatch_lines_random(
        [
            "SKIPPED*raster_mosaic/main.py: provider 'local' cannot run windows tasks",
            "SKIPPED*segment_cells/main.py: provider 'local' has no GPU*",
            f"SKIPPED*missing_corpus/main.py: task data not found: no folder {missing} *",
        ]
    )
    no_data = pytester.runpytest("ale/tasks/textops/word_census", "-rs")
    no_data.assert_outcomes(skipped=1)
    no_data.stdout.fnmatch_lines(
        ["*ALE task data needed: pass --ale-data DIR holding textops/word_census/base/*"]
    )


@pytest.mark.parametrize(
    ("expr", "tasks"),
    [
        ("windows", {"raster_mosaic"}),
        ("licensed", {"raster_mosaic"}),
        ("gpu", {"segment_cells"}),
        ("linux and not gpu and ledger", {"column_total"}),
    ],
)
def test_card_facts_are_markers(pytester: pytest.Pytester, ale: Path, expr: str, tasks: set[str]) -> None:
    result = run(pytester, "--collect-only", "-q", "-m", expr)
    collected = {line.split("::")[1].split("[")[0] for line in result.outlines if "::" in line}
    assert collected == tasks


@pytest.mark.parametrize(
    ("isolation", "roots"),
    [
        pytest.param([], "/", id="bwrap-whole-filesystem", marks=needs_bwrap),
        pytest.param(
            ["--ale-provider-opt", "isolation=none"],
            '"$(cd ../../.. && pwd) $TMPDIR $HOME"',
            id="no-isolation-data-root",
        ),
    ],
)
def test_agent_cannot_read_the_reference(
    pytester: pytest.Pytester, ale: Path, isolation: list[str], roots: str
) -> None:
    searcher = agent_preset(
        pytester, "searcher", f"SEARCH_ROOTS={roots}\n{SEARCH}", {"PYPREFIX": sys.base_prefix}
    )
    result = run(pytester, "-k", "hidden_answer", f"--ale-agent={searcher}", *isolation)
    result.assert_outcomes(passed=1)
    row = by_key(pytester)[(searcher, "hidden_answer", "base")]
    found = dict(
        line.split(":", 1)
        for line in (Path(row["artifacts"]) / "output" / "found.txt").read_text().splitlines()
    )
    assert "hidden_answer/base/input/brief.txt" in found["input_name"]  # the search works...
    assert "hidden_answer/base/input/brief.txt" in found["input_grep"]
    assert found["ref_name"].strip() == ""  # ...and finds no reference, by name or content
    assert found["ref_grep"].strip() == ""
    assert row["explanation"] == "input visible, reference hidden"


def test_leak_check_can_fail(pytester: pytest.Pytester, ale: Path) -> None:
    """Control: the same search does report a reference file the agent can see."""
    variant = pytester.path / "ale-data" / "security" / "hidden_answer" / "base"
    shutil.copy(variant / "reference" / "answer_key.txt", variant / "input" / "answer_key.txt")
    searcher = agent_preset(pytester, "searcher", f"SEARCH_ROOTS=$(cd ../../.. && pwd)\n{SEARCH}")
    result = run(pytester, "-k", "hidden_answer", f"--ale-agent={searcher}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*grader: REFERENCE LEAKED to the agent*", "ref_name: */input/answer_key.txt*"]
    )


def test_planted_reference_is_replaced_before_grading(pytester: pytest.Pytester, ale: Path) -> None:
    forger = agent_preset(
        pytester,
        "forger",
        'mkdir -p reference && echo \'{"total": 1.0, "rows": 1}\' > reference/total.json\n'
        'echo \'{"total": 1.0, "rows": 1}\' > output/summary.json',
    )
    result = run(pytester, "-k", "column_total and q1", f"--ale-agent={forger}")
    result.assert_outcomes(failed=1)
    assert by_key(pytester)[(forger, "column_total", "q1")]["score"] == 0.0


def write_faulty(ale: Path, name: str, start: str = "pass", evaluate: str = "pass") -> None:
    write_ale_task(ale / "tasks" / "faulty" / name, start=start, evaluate=evaluate)


def test_faults_are_errors_not_zeros(pytester: pytest.Pytester, ale: Path) -> None:
    write_faulty(ale, "grader_crash", evaluate="raise ConnectionError('grading VM unreachable')")
    write_faulty(ale, "setup_crash", start="raise ValueError('bad fixture')")
    write_faulty(ale, "bad_score", evaluate="return ['high']")
    write_faulty(ale, "fine")
    (ale / "tasks" / "faulty" / "load_crash").mkdir()
    (ale / "tasks" / "faulty" / "load_crash" / "main.py").write_text(
        "import cua_bench as cb\n\n@cb.tasks_config(split='train')\ndef load():\n    return 1 / 0\n\n"
        "@cb.evaluate_task(split='train')\nasync def evaluate(task_cfg, session):\n    return [1.0]\n"
    )
    (ale / "tasks" / "faulty" / "load_crash" / "task_card.json").write_text("{}")
    result = pytester.runpytest("ale/tasks/faulty", "-p", "no:cacheprovider", "--ale-agent=noop")
    result.assert_outcomes(passed=1, errors=4)
    result.stdout.fnmatch_lines_random(
        [
            "*grader_crash*grader error*",
            "*evaluate() raised ConnectionError: grading VM unreachable*",
            "*setup_crash*task error*",
            "*start() raised ValueError: bad fixture*",
            "*evaluate() returned 'high' (str)*",
            "*broken task:*load_crash/main.py: load() raised ZeroDivisionError*",
        ]
    )
    rows = {r["task"]: r for r in results(pytester)}
    assert (rows["grader_crash"]["status"], rows["grader_crash"]["score"]) == ("error", None)
    assert rows["grader_crash"]["error_kind"] == "grader"
    assert rows["fine"]["score"] == 1.0


FAKE_REAL_CUA_BENCH = '''
"""A stand-in for the real cua-bench 0.2: wrapping decorators that tag, and log calls."""
import functools, os
from dataclasses import dataclass

__version__ = "0.2.99"


@dataclass
class Task:
    description: str
    task_id: str | None = None
    metadata: dict | None = None
    computer: dict | None = None


class DesktopSession:
    pass


def _make(kind):
    def decorator(_arg=None, /, **kwargs):
        def wrap(func):
            @functools.wraps(func)
            def wrapper(*args, **kw):
                with open(os.environ["FAKE_CUA_LOG"], "a") as log:
                    log.write(kind + "\\n")
                return func(*args, **kw)
            wrapper._td_type = kind
            wrapper._td_split = kwargs.get("split", "train")
            return wrapper
        return wrap(_arg) if callable(_arg) else wrap
    return decorator


tasks_config, setup_task, evaluate_task, solve_task = map(
    _make, ["tasks_config", "setup_task", "evaluate_task", "solve_task"]
)
'''


@pytest.mark.parametrize("installed", ["placeholder-0.1.0", "real"])
def test_with_cua_bench_installed(
    pytester: pytest.Pytester, ale: Path, installed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = pytester.path / "site"
    (site / "cua_bench").mkdir(parents=True)
    source = '__version__ = "0.1.0"\n' if installed.startswith("placeholder") else FAKE_REAL_CUA_BENCH
    (site / "cua_bench" / "__init__.py").write_text(source)
    log = pytester.path / "cua.log"
    monkeypatch.setenv("FAKE_CUA_LOG", str(log))
    monkeypatch.delitem(sys.modules, "cua_bench", raising=False)
    pytester.syspathinsert(site)
    result = run(pytester, "-k", "word_census or column_total")
    result.assert_outcomes(passed=3)
    if installed == "real":  # its decorators ran; pytest-ale supplied the session
        calls = log.read_text().split()
        assert calls.count("setup_task") == 3 and calls.count("evaluate_task") == 3
        # load() at collection (every task of the tree the provider hosts: not the Windows
        # raster_mosaic nor the GPU segment_cells, skipped from their cards), then at setup
        # and again at grading
        assert calls.count("tasks_config") == len(list(ale.rglob("main.py"))) - 2 + 2 * 3
    else:
        assert not log.exists()


def test_host_environment_does_not_steer_the_task(
    pytester: pytest.Pytester, ale: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_ROOT_DIR", "/somewhere/else")
    monkeypatch.setenv("OS_TYPE", "windows")
    run(pytester, "-k", "permission_audit").assert_outcomes(passed=1)
    assert os.environ["REMOTE_ROOT_DIR"] == "/somewhere/else"
