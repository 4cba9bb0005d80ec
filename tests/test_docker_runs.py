"""Whole pytest runs on ``--ale-provider=docker`` against a real engine: the bundled suite,
fencing before grading, isolation from the host, and no container left behind after a
normal run, a Ctrl-C, a SIGTERM, or a SIGKILL followed by ``--ale-sweep``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from .conftest import like_a_terminal, results
from .test_docker_provider import IMAGE, containers_of, docker_client_or_skip

REPO = Path(__file__).resolve().parents[1]
DOCKER = ["--ale-provider=docker", f"--ale-provider-opt=image={IMAGE}", "-p", "no:cacheprovider"]


@pytest.fixture(scope="module")
def client():
    return docker_client_or_skip()


@pytest.fixture
def run_id() -> str:
    return f"dockerrun-{uuid.uuid4().hex[:10]}"


def test_own_task_oracle_passes_noop_fails_and_nothing_is_left(
    pytester: pytest.Pytester, make_task, client, run_id
) -> None:
    make_task("upper")
    make_task("lower", domain="finance", card={"domain": "finance", "timeout": 30, "cpus": 1})
    run = pytester.runpytest(
        "tasks", *DOCKER, f"--ale-run-id={run_id}", "--ale-agent=oracle", "--ale-agent=noop"
    )
    run.assert_outcomes(passed=2, failed=2)
    rows = {(r["agent"], r["task"]): r for r in results(pytester)}
    assert {k: (r["status"], r["provider"]) for k, r in rows.items()} == {
        ("oracle", "upper"): ("passed", "docker"),
        ("oracle", "lower"): ("passed", "docker"),
        ("noop", "upper"): ("failed", "docker"),
        ("noop", "lower"): ("failed", "docker"),
    }
    assert containers_of(client, run_id) == []


def test_bundled_suite_oracle_all_pass_noop_all_fail(client, tmp_path: Path, run_id) -> None:
    tasks = sorted(p.parent for p in (REPO / "tasks").glob("*/*/task_card.json"))
    if not tasks:
        pytest.skip("no bundled tasks under tasks/ yet")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "tasks", *DOCKER, "-q", f"--ale-output={tmp_path}"),
            *(f"--ale-run-id={run_id}", "--ale-agent=oracle", "--ale-agent=noop", "-n", "2"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    lines = (tmp_path / "runs" / run_id / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line]
    by_agent: dict[str, list[str]] = {"oracle": [], "noop": []}
    for row in rows:
        by_agent[row["agent"]].append(row["status"])
    detail = done.stdout[-3000:]
    assert len(by_agent["oracle"]) == len(by_agent["noop"]) >= len(tasks), detail
    assert set(by_agent["oracle"]) == {"passed"}, detail
    assert set(by_agent["noop"]) == {"failed"}, detail
    assert containers_of(client, run_id) == []


FENCE_MAIN = """
from pathlib import Path

INSTRUCTION = "Upper-case input/data.txt into output/data.txt; leave nothing running."


def evaluate(output_dir, reference_dir, sandbox):
    procs = sandbox.exec(["ps", "-eo", "args"], user="root").stdout
    leftovers = [line for line in procs.splitlines() if "sleep 1000" in line or "while" in line]
    if leftovers:
        return 0.0, f"still running at grading time: {leftovers}"
    ok = (output_dir / "data.txt").read_text() == (reference_dir / "data.txt").read_text()
    return (1.0 if ok else 0.0), "fenced"
"""

FENCE_SOLUTION = """
nohup sleep 1000 >/dev/null 2>&1 &
setsid sh -c 'while :; do sleep 1; done' >/dev/null 2>&1 &
tr a-z A-Z < input/data.txt > output/data.txt
"""


def test_background_processes_are_gone_before_grading(
    pytester: pytest.Pytester, make_task, client, run_id
) -> None:
    make_task("bg", main=FENCE_MAIN, solution=FENCE_SOLUTION)
    run = pytester.runpytest("tasks", *DOCKER, f"--ale-run-id={run_id}")
    run.assert_outcomes(passed=1)
    (row,) = results(pytester)
    assert row["explanation"] == "fenced"
    assert any("fence: killed" in w for w in row["warnings"]), row["warnings"]


ISOLATION_MAIN = """
INSTRUCTION = "Probe what the sandbox can see."


def evaluate(output_dir, reference_dir, sandbox):
    probe = (output_dir / "probe.txt").read_text()
    return (1.0 if probe == "ref:absent task:absent found: net:lo\\n" else 0.0), probe
"""


def test_agent_cannot_read_the_reference_host_paths_or_the_network(
    pytester: pytest.Pytester, make_task, client, run_id
) -> None:
    token = uuid.uuid4().hex
    folder = pytester.path / "tasks" / "demo" / "iso"
    half = len(token) // 2
    solution = f"""
ref=absent; [ -e {folder}/reference/secret.txt ] && ref=present
task=absent; [ -e {folder}/main.py ] && task=present
found=$(grep -rl "TOKEN-{token[:half]}""{token[half:]}" / --exclude-dir=proc --exclude-dir=sys \\
        --exclude-dir=dev --exclude-dir=usr 2>/dev/null | tr '\\n' ' ')
echo "ref:$ref task:$task found:$found net:$(ls /sys/class/net | tr '\\n' ' ' | sed 's/ $//')" \\
  > output/probe.txt
"""
    make_task("iso", main=ISOLATION_MAIN, solution=solution, files={"reference/secret.txt": f"TOKEN-{token}"})
    run = pytester.runpytest("tasks", *DOCKER, f"--ale-run-id={run_id}")
    (row,) = results(pytester)
    assert row["explanation"] == "ref:absent task:absent found: net:lo\n"
    run.assert_outcomes(passed=1)


OOM_SOLUTION = """
tr a-z A-Z < input/data.txt > output/data.txt
python -c 'x = bytearray(600 * 1024 * 1024)'
"""


def test_an_agent_over_its_memory_limit_is_graded_and_marked_oom(
    pytester: pytest.Pytester, make_task, client, run_id
) -> None:
    wrong = OOM_SOLUTION.replace("tr a-z A-Z", "cat")
    make_task("oom", solution=wrong, card={"domain": "demo", "timeout": 60, "memory_gb": 0.125})
    run = pytester.runpytest("tasks", *DOCKER, f"--ale-run-id={run_id}")
    run.assert_outcomes(failed=1)
    (row,) = results(pytester)
    assert (row["status"], row["score"], row["oom"]) == ("oom", 0.0, True)
    assert row["error"] is None


def test_gpu_tasks_are_skipped_unless_the_preset_has_gpus() -> None:
    from pytest_ale.providers.docker import DockerProvider
    from pytest_ale.sandbox import SandboxSpec

    spec = SandboxSpec(run_id="", trial_id="", gpu=True)
    assert "GPU" in (DockerProvider.supports(spec, {"gpu": "false"}) or "")
    assert DockerProvider.supports(spec, {"gpu": True}) is None
    assert "windows" in (DockerProvider.supports(SandboxSpec(run_id="", trial_id="", os="windows"), {}) or "")


SLOW_SOLUTION = "sleep 60\ntr a-z A-Z < input/data.txt > output/data.txt\n"


@pytest.fixture
def start_slow_run(pytester: pytest.Pytester, make_task, client, run_id):
    """Start a pytest run whose agent sleeps; returns once the agent runs in its container.
    Whatever happens to the test, the run and its containers are gone afterwards."""
    from docker.errors import APIError

    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        make_task("slow", solution=SLOW_SOLUTION, card={"domain": "demo", "timeout": 300})
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "tasks", *DOCKER, f"--ale-run-id={run_id}", "-q"],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=like_a_terminal,
        )
        procs.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for info in containers_of(client, run_id):
                try:
                    rows = client.api.top(info["Id"]).get("Processes") or []
                except APIError:  # created, not started yet
                    continue
                if any("sleep 60" in " ".join(row) for row in rows):
                    return proc  # the agent is mid-run
            time.sleep(0.2)
        pytest.fail("the trial never reached its agent")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)
    for info in containers_of(client, run_id):
        client.api.remove_container(info["Id"], force=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_no_container_left_after_an_interrupt(start_slow_run, client, run_id, signum) -> None:
    proc = start_slow_run()
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out.decode()[-2000:]
    assert containers_of(client, run_id) == [], out.decode()[-2000:]


def test_sweep_removes_what_a_sigkill_left(pytester: pytest.Pytester, start_slow_run, client, run_id) -> None:
    proc = start_slow_run()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert len(containers_of(client, run_id)) == 1  # nothing could clean up after SIGKILL
    swept = subprocess.run(
        [sys.executable, "-m", "pytest", *DOCKER, "--ale-sweep", f"--ale-run-id={run_id}"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "1 sandbox(es) removed" in swept.stdout
    assert containers_of(client, run_id) == []


def test_ale_tree_runs_on_docker(pytester: pytest.Pytester, client, run_id) -> None:
    """The ALE-format tree (tests/data/ale) unmodified, on docker: the data root deep inside
    the container, the reference staged only after the fence, ALE's session over exec."""
    import shutil

    ale = Path(__file__).parent / "data" / "ale"
    shutil.copytree(ale / "tree", pytester.path / "ale")
    shutil.copytree(ale / "data", pytester.path / "ale-data")
    run = pytester.runpytest(
        "ale/tasks", "--ale-data", "ale-data", *DOCKER, f"--ale-run-id={run_id}",
        "--ale-agent=oracle", "--ale-agent=noop", "-rs",
    )  # fmt: skip
    run.assert_outcomes(passed=5, failed=5, skipped=6)
    run.stdout.fnmatch_lines_random(
        [
            "SKIPPED*raster_mosaic/main.py: provider 'docker' cannot run windows tasks",
            "SKIPPED*segment_cells/main.py: provider 'docker' has no GPU here*",
        ]
    )
    rows = {(r["agent"], r["task"], r["variant"]): r for r in results(pytester)}
    assert {k for k, r in rows.items() if r["score"] == 1.0} == {
        ("oracle", "word_census", "base"),
        ("oracle", "column_total", "q1"),
        ("oracle", "column_total", "q2"),
        ("oracle", "permission_audit", "base"),
        ("oracle", "hidden_answer", "base"),
    }
    assert all(r["provider"] == "docker" for r in rows.values())
    assert rows[("oracle", "permission_audit", "base")]["explanation"] == "load() ran again; failed: none"
    assert containers_of(client, run_id) == []
