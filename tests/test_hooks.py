"""pytest-ale's hooks (``hookspecs.py``) seen from a user's conftest: typed trial results
where the trial ran and on the xdist controller, a provider made by an extension, and the
run's figures at the end."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from .conftest import results

SEEN = "seen.jsonl"

TRIAL_HOOK = f"""
import json, os
from pytest_ale.outcome import TrialResult

def pytest_ale_trial_finished(item, result):
    assert isinstance(result, TrialResult), type(result)
    line = {{
        "pid": os.getpid(),
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
        "item": None if item is None else item.nodeid,
        "test_id": result.test_id,
        "agent": result.agent,
        "status": result.status,
        "score": result.score,
        "phases": sorted(result.phases),
        "error_kind": result.error_kind,
    }}
    with open({SEEN!r}, "a") as fh:
        fh.write(json.dumps(line) + "\\n")
"""


def _seen(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    path = pytester.path / SEEN
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_trial_finished_gets_each_trial_typed_once(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    make_task("broken", main="INSTRUCTION = 'no grader here'\n")
    pytester.makeconftest(TRIAL_HOOK)
    run = pytester.runpytest("tasks", "--ale-agent=oracle", "--ale-agent=noop", "-p", "no:cacheprovider")
    run.assert_outcomes(passed=1, failed=1, errors=1)
    seen = {(line["agent"], line["status"]): line for line in _seen(pytester)}
    assert set(seen) == {("oracle", "passed"), ("noop", "failed"), ("(broken task)", "error")}
    assert all(line["item"] == line["test_id"] for line in seen.values())  # with its item
    assert seen[("oracle", "passed")]["score"] == 1.0
    assert {"acquire", "agent", "grade", "release"} <= set(seen[("noop", "failed")]["phases"])
    assert seen[("(broken task)", "error")]["error_kind"] == "task"


def test_trial_finished_on_xdist_workers_and_controller(pytester: pytest.Pytester, make_task) -> None:
    pytest.importorskip("xdist")
    make_task("upper")
    make_task("lower", domain="finance")
    pytester.makeconftest(TRIAL_HOOK)
    args = ["tasks", "--ale-agent=oracle", "--ale-agent=noop", "-n", "2", "-p", "no:cacheprovider"]
    pytester.runpytest(*args).assert_outcomes(passed=2, failed=2)
    seen = _seen(pytester)
    # pytester runs the controller in this process (itself an xdist worker under CI's -n 2)
    on_workers = [line for line in seen if line["pid"] != os.getpid()]
    on_controller = [line for line in seen if line["pid"] == os.getpid()]
    assert {line["worker"] for line in on_workers} <= {"gw0", "gw1"}
    assert all(line["item"] == line["test_id"] for line in on_workers)
    assert all(line["item"] is None for line in on_controller)
    assert len({line["pid"] for line in on_controller}) == 1
    # the controller's results, rebuilt from the workers' reports, are the same ones

    def same(line: dict[str, Any]) -> str:
        return json.dumps(
            {k: v for k, v in line.items() if k not in ("pid", "worker", "item")}, sort_keys=True
        )

    assert len(on_workers) == 4 and sorted(map(same, on_workers)) == sorted(map(same, on_controller))
    assert {line["test_id"] for line in on_controller} == {r["test_id"] for r in results(pytester)}


SUMMARY_HOOK = """
import json
from pytest_ale.reports.summary import Row

def pytest_ale_summary(config, rows, summary):
    assert all(isinstance(row, Row) for row in rows)
    with open("summary-hook.json", "w") as fh:
        json.dump({
            "rows": sorted([row.agent, row.task, row.status, row.score] for row in rows),
            "groups": [[g["agent"], g["domain"], g["trials"]] for g in summary["groups"]],
        }, fh)
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["n0", "n2"])
def test_summary_hook_gets_rows_and_figures(pytester: pytest.Pytester, make_task, xdist: bool) -> None:
    if xdist:
        pytest.importorskip("xdist")
    make_task("upper")
    make_task("lower", domain="finance")
    pytester.makeconftest(SUMMARY_HOOK)
    extra = ["-n", "2"] if xdist else []
    run = pytester.runpytest(
        "tasks", "--ale-agent=oracle", "--ale-agent=noop", "-p", "no:cacheprovider", *extra
    )
    run.assert_outcomes(passed=2, failed=2)
    got = json.loads((pytester.path / "summary-hook.json").read_text())
    assert got["rows"] == [
        ["noop", "lower", "failed", 0.0],
        ["noop", "upper", "failed", 0.0],
        ["oracle", "lower", "passed", 1.0],
        ["oracle", "upper", "passed", 1.0],
    ]
    summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
    assert got["groups"] == [[g["agent"], g["domain"], g["trials"]] for g in summary["groups"]]
    assert ["oracle", "ALL", 2] in got["groups"]


PROVIDER_HOOK = """
import json, os
from pytest_ale.providers.local import LocalOptions, LocalProvider

class CountingOptions(LocalOptions):
    flavour: str = "plain"

class CountingProvider(LocalProvider):
    name = "counting"
    Options = CountingOptions

    def acquire(self, spec):
        with open("acquired.txt", "a") as fh:
            fh.write(spec.trial_id + "\\n")
        return super().acquire(spec)

def pytest_ale_make_provider(config, preset):
    with open("presets.jsonl", "a") as fh:
        fh.write(json.dumps({"name": preset.name, "kind": preset.kind, "options": preset.options}) + "\\n")
    if preset.kind == "counting":
        return CountingProvider(preset.options)
    return None
"""


@pytest.mark.parametrize("xdist", [False, True], ids=["n0", "n2"])
def test_make_provider_hook_supplies_the_provider(pytester: pytest.Pytester, make_task, xdist: bool) -> None:
    if xdist:
        pytest.importorskip("xdist")
    make_task("upper")
    make_task("lower", domain="finance")
    pytester.makeconftest(PROVIDER_HOOK)
    (pytester.path / "providers").mkdir()
    (pytester.path / "providers" / "mine.yaml").write_text("kind: counting\nflavour: plain\n")
    root = pytester.path / "sandboxes"  # kept sandboxes stay in the test's folder
    args = ["tasks", "--ale-provider=mine", f"--ale-provider-opt=root={root}", "--ale-keep"]
    run = pytester.runpytest(*args, "-p", "no:cacheprovider", *(["-n", "2"] if xdist else []))
    run.assert_outcomes(passed=2)
    assert sorted((pytester.path / "acquired.txt").read_text().splitlines()) == [
        "tasks/demo/upper/main.py::upper[oracle-base-t1]",
        "tasks/finance/lower/main.py::lower[oracle-base-t1]",
    ]
    presets = [json.loads(line) for line in (pytester.path / "presets.jsonl").read_text().splitlines()]
    options = {"flavour": "plain", "root": str(root), "keep": True}
    assert presets and all(p == {"name": "mine", "kind": "counting", "options": options} for p in presets)
    assert len(presets) <= (2 if xdist else 1)  # once per process that needed a sandbox
    assert {r["provider"] for r in results(pytester)} == {"mine"}


def test_make_provider_hook_declining_leaves_the_registered_kind(
    pytester: pytest.Pytester, make_task
) -> None:
    make_task("upper")
    pytester.makeconftest(PROVIDER_HOOK)
    pytester.runpytest("tasks", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert not (pytester.path / "acquired.txt").exists()
    assert (pytester.path / "presets.jsonl").read_text().count("\n") == 1  # asked once, declined


def test_unregistered_provider_kind_without_a_hook_is_a_usage_error(
    pytester: pytest.Pytester, make_task
) -> None:
    make_task("upper")
    (pytester.path / "providers").mkdir()
    (pytester.path / "providers" / "mine.yaml").write_text("kind: counting\n")
    run = pytester.runpytest("tasks", "--ale-provider=mine", "-p", "no:cacheprovider")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["*unknown provider kind 'counting'*"])
