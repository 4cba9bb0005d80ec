"""Collection: ids, the agent x variant x trial matrix, markers, -k/-m, task lists, presets."""

from __future__ import annotations

import pytest


def collected_ids(pytester: pytest.Pytester, *args: str) -> list[str]:
    run = pytester.runpytest("--collect-only", "-q", *args)
    return [line for line in run.outlines if "::" in line]


def test_ids_are_readable_and_trials_multiply(pytester: pytest.Pytester, make_task) -> None:
    make_task("loan", domain="finance")
    assert collected_ids(pytester, "tasks") == ["tasks/finance/loan/main.py::loan[oracle-base-t1]"]
    ids = collected_ids(pytester, "tasks", "--ale-trials", "3", "--ale-agent=oracle", "--ale-agent=noop")
    assert len(ids) == 6
    assert "tasks/finance/loan/main.py::loan[noop-base-t3]" in ids


def test_variants_become_items(pytester: pytest.Pytester, make_task) -> None:
    main = """
        VARIANTS = ["small", "large"]
        def instruction(variant):
            return f"work on the {variant} data"
        def evaluate(output_dir, reference_dir, sandbox):
            return 1.0
    """
    make_task("multi", main=main)
    assert collected_ids(pytester, "tasks") == [
        "tasks/demo/multi/main.py::multi[oracle-small-t1]",
        "tasks/demo/multi/main.py::multi[oracle-large-t1]",
    ]


def test_k_and_m_select_by_name_and_card_facts(pytester: pytest.Pytester, make_task) -> None:
    make_task("loan", domain="finance", card={"domain": "finance", "tier": "last-exam"})
    make_task("triage", domain="health", card={"domain": "health", "tier": "near-term"})
    make_task("render", domain="graphics", card={"domain": "graphics", "gpu": True, "os": "linux"})
    make_task("excel", domain="office", card={"domain": "office", "vm": {"snapshot": "cpu-license"}})
    assert collected_ids(pytester, "tasks", "-k", "loan") == [
        "tasks/finance/loan/main.py::loan[oracle-base-t1]"
    ]
    assert collected_ids(pytester, "tasks", "-m", "health") == [
        "tasks/health/triage/main.py::triage[oracle-base-t1]"
    ]
    assert collected_ids(pytester, "tasks", "-m", "last_exam") == [
        "tasks/finance/loan/main.py::loan[oracle-base-t1]"
    ]
    assert len(collected_ids(pytester, "tasks", "-m", "linux and not gpu")) == 2
    assert collected_ids(pytester, "tasks", "-m", "windows and licensed") == [
        "tasks/office/excel/main.py::excel[oracle-base-t1]"
    ]
    run = pytester.runpytest("tasks", "--strict-markers", "-m", "finance or health")
    run.assert_outcomes(passed=2, deselected=2)


def test_tasks_the_provider_cannot_host_are_skipped_with_the_reason(
    pytester: pytest.Pytester, make_task
) -> None:
    make_task("render", card={"domain": "demo", "gpu": True})
    make_task("excel", card={"domain": "demo", "vm": {"snapshot": "cpu-free"}})
    make_task("upper")
    run = pytester.runpytest("tasks", "-rs")
    run.assert_outcomes(passed=1, skipped=2)
    run.stdout.fnmatch_lines_random(
        [
            "*provider 'local' has no GPU*",
            "*provider 'local' cannot run windows tasks*",
        ]
    )


def test_task_list_selects_tasks(pytester: pytest.Pytester, make_task) -> None:
    make_task("loan", domain="finance")
    make_task("triage", domain="health")
    (pytester.path / "near.txt").write_text("# near-term\ntasks/health/triage\n")
    assert collected_ids(pytester, "tasks", "--ale-task-list", "near.txt") == [
        "tasks/health/triage/main.py::triage[oracle-base-t1]"
    ]
    (pytester.path / "bad.txt").write_text("tasks/health/nope\n")
    run = pytester.runpytest("tasks", "--ale-task-list", "bad.txt")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(
        ["*bad.txt, line 1: 'tasks/health/nope' is not a task folder*fix or remove that line*"]
    )


def test_agent_presets_resolve_repo_first_then_builtin(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    (pytester.path / "agents").mkdir()
    (pytester.path / "agents" / "shouty.yaml").write_text(
        "kind: command\ncommand: tr a-z A-Z < input/data.txt > output/data.txt\n"
    )
    run = pytester.runpytest("tasks", "--ale-agent=shouty", "--ale-agent=noop", "-v")
    run.assert_outcomes(passed=1, failed=1)
    run.stdout.fnmatch_lines(["*upper[[]shouty-base-t1[]] *PASSED*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ale-agent=nobody"], "*no agent named 'nobody'*installed: *command*noop, oracle*"),
        (["--ale-provider=nowhere"], "*no provider named 'nowhere'*"),
        (["--ale-trials=0"], "*--ale-trials must be at least 1*"),
        (["--ale-threshold=2"], "*--ale-threshold must be between 0 and 1*"),
        (["--ale-timeout=soon"], "*--ale-timeout must be a float*"),
        (["--ale-agent=agents/broken.yaml"], "*broken.yaml:2:1: invalid YAML*fix the syntax*"),
        (["--ale-agent=agents/nocommand.yaml"], "*needs a non-empty 'command' template*"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, make_task, args, message) -> None:
    make_task("upper")
    (pytester.path / "agents").mkdir()
    (pytester.path / "agents" / "broken.yaml").write_text("kind: [command\n")
    (pytester.path / "agents" / "nocommand.yaml").write_text("kind: command\n")
    run = pytester.runpytest("tasks", *args)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines([message])
