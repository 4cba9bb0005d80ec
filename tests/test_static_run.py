"""End to end over real SSH: a task run with ``--ale-provider=static`` (and ``aws`` on moto)
against a loopback sshd, and what a connection dropped in the middle of a trial does.

Documented outcome of a drop mid-command: the command's processes are killed, the
sandbox raises ``SandboxGoneError`` (an infrastructure error), the trial is retried on a
fresh sandbox (``--ale-infra-retries``), and reported as an error once retries run out;
the dropped sandbox is released either way (no instance left behind).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conformance.cases import aws_options, static_options
from tests.conformance.env import Env
from tests.conformance.sshd import available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

MAIN = """
INSTRUCTION = "Upper-case input/data.txt into output/data.txt."


def evaluate(output_dir, reference_dir, sandbox):
    got = (output_dir / "data.txt").read_text() if (output_dir / "data.txt").exists() else ""
    return (1.0, "ok") if got == (reference_dir / "data.txt").read_text() else (0.0, f"got {got!r}")
"""
SOLVE = "tr a-z A-Z < input/data.txt > output/data.txt\n"


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    shared = Env()
    yield shared
    shared.close()


def write_task(root: Path) -> str:
    """The task and a ``slow`` agent; returns the agent's sleep command, unique to this call so
    a watcher on another xdist worker never mistakes it for its own."""
    mark = f"sleep 2.{uuid.uuid4().int % 10**6:06d}"
    folder = root / "tasks" / "demo" / "upper"
    (folder / "input").mkdir(parents=True)
    (folder / "reference").mkdir()
    (folder / "solution").mkdir()
    (folder / "main.py").write_text(MAIN)
    (folder / "task_card.json").write_text(json.dumps({"domain": "demo", "tier": "near-term", "timeout": 60}))
    (folder / "input" / "data.txt").write_text("hello ssh\n")
    (folder / "reference" / "data.txt").write_text("HELLO SSH\n")
    (folder / "solution" / "solve.sh").write_text(SOLVE)
    (root / "agents").mkdir()
    (root / "agents" / "slow.yaml").write_text(f"kind: command\ncommand: '{mark}; {SOLVE.strip()}'\n")
    return mark


def write_preset(root: Path, name: str, options: dict) -> None:
    (root / "providers").mkdir(exist_ok=True)
    (root / "providers" / f"{name}.yaml").write_text(yaml.safe_dump({"kind": name, **options}))


def results(root: Path) -> list[dict]:
    rows = []
    for path in (root / "reports" / "runs").glob("*/results.jsonl"):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line]
    return rows


def drop_once_during(sshd, needle: str) -> threading.Thread:
    """Kill the sshd connection processes as soon as a process running ``needle`` appears."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
                    except OSError:
                        continue
                    if needle.encode() in cmdline and b"tr a-z" not in cmdline:
                        sshd.drop_connections()
                        return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_task_runs_end_to_end_on_static_over_ssh(pytester: pytest.Pytester, env: Env) -> None:
    write_task(pytester.path)
    write_preset(pytester.path, "static", static_options(env))
    run = pytester.runpytest("tasks", "--ale-provider=static", "--ale-agent=oracle", "--ale-agent=noop")
    run.assert_outcomes(passed=1, failed=1)
    rows = {row["agent"]: row for row in results(pytester.path)}
    assert rows["oracle"]["status"] == "passed" and rows["oracle"]["score"] == 1.0
    assert rows["oracle"]["provider"] == "static"
    assert rows["noop"]["status"] == "failed"
    # the workspace on the machine is gone, and the key never reached the reports
    assert list((env.root / "static-root").iterdir()) == []
    key = (env.root / "static_key").read_text().splitlines()[1]
    for path in (pytester.path / "reports").rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace")


def test_dropped_connection_is_retried_on_a_fresh_sandbox(pytester: pytest.Pytester, env: Env) -> None:
    mark = write_task(pytester.path)
    write_preset(pytester.path, "static", static_options(env))
    watcher = drop_once_during(env.sshd, mark)
    run = pytester.runpytest("tasks", "--ale-provider=static", "--ale-agent=slow", "--ale-infra-retries=1")
    watcher.join(1)
    run.assert_outcomes(passed=1)
    (row,) = results(pytester.path)
    assert row["attempts"] == 2
    assert any("infrastructure error, retried" in w and "dropped" in w for w in row["warnings"])


def test_dropped_connection_without_retries_is_an_infra_error_and_leaves_no_instance(
    pytester: pytest.Pytester, env: Env
) -> None:
    mark = write_task(pytester.path)
    options = aws_options(env)
    write_preset(pytester.path, "aws", options)
    from pytest_ale.providers import aws as aws_module

    authorize = env.sshd.authorize
    original = aws_module.AwsProvider.__init__

    def init_and_authorize(self, opts=None):  # the loopback "VM" learns the run's key
        original(self, opts)
        authorize(self.public_key)

    aws_module.AwsProvider.__init__ = init_and_authorize  # type: ignore[method-assign]
    try:
        watcher = drop_once_during(env.sshd, mark)
        run = pytester.runpytest("tasks", "--ale-provider=aws", "--ale-agent=slow", "--ale-infra-retries=0")
        watcher.join(1)
    finally:
        aws_module.AwsProvider.__init__ = original  # type: ignore[method-assign]
    run.assert_outcomes(errors=1)
    (row,) = results(pytester.path)
    assert row["status"] == "error" and row["error_kind"] == "infrastructure"
    assert "dropped" in row["error"]
    instances = [
        instance
        for reservation in env.ec2().describe_instances()["Reservations"]
        for instance in reservation["Instances"]
    ]
    assert instances, "the trial should have started an instance"
    assert {i["State"]["Name"] for i in instances} <= {"shutting-down", "terminated"}
    pairs = env.ec2().describe_key_pairs()["KeyPairs"]
    assert not [p for p in pairs if p["KeyName"].startswith("ale-")], "the run's key pair was left"


def test_bundled_tasks_run_on_static_over_ssh(pytester: pytest.Pytester, env: Env) -> None:
    """Bundled tasks of tasks/ (one with a per-run secret made in setup), end to end over
    real SSH: oracle passes, noop fails."""
    import shutil

    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(repo / "tasks", pytester.path / "tasks")
    write_preset(pytester.path, "static", static_options(env))
    count = len(list((repo / "tasks").glob("*/*/task_card.json")))
    run = pytester.runpytest("tasks", "--ale-provider=static", "--ale-agent=oracle", "--ale-agent=noop")
    run.assert_outcomes(passed=count, failed=count)
    rows = results(pytester.path)
    assert {(r["agent"], r["status"], r["score"]) for r in rows} == {
        ("oracle", "passed", 1.0),
        ("noop", "failed", 0.0),
    }
    assert {r["provider"] for r in rows} == {"static"} and len(rows) == 2 * count
    assert list((env.root / "static-root").iterdir()) == []
