"""Chaos on a real Docker engine: SIGINT, SIGTERM and SIGKILL, once or twice, at random
moments, to the controller or to one worker of an ``-n 2`` run. After each: nothing of the
run still runs, no container is left, results.jsonl is whole, a sweep leaves nothing, and
``--ale-resume`` completes the run with the right exit status (see ``chaos.py``).

The moments come from ``ALE_CHAOS_SEED`` (printed on failure) when set, else a fresh seed;
``bench/bench_chaos.py`` runs many more rounds and counts. Last, a forced sweep of a live
run: its trials whose container vanished are infrastructure errors, never scores.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..test_docker_provider import docker_client_or_skip
from .chaos import IMAGE, SIGNALS, TARGETS, build_project, containers, run_round


@pytest.fixture(scope="module")
def client():
    return docker_client_or_skip()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chaos")
    build_project(root)
    return root


SEED = int(os.environ.get("ALE_CHAOS_SEED") or secrets.randbelow(10**6))


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
@pytest.mark.parametrize("target", TARGETS)
def test_a_signal_at_a_random_moment_leaves_nothing_and_resume_completes_the_run(
    client, project: Path, target: str, signum: signal.Signals
) -> None:
    seed = SEED * 10 + TARGETS.index(target) * 3 + SIGNALS.index(signum)
    rnd = run_round(project, client, random.Random(seed), target, signum)
    where = f"seed {seed} (ALE_CHAOS_SEED={SEED}): {rnd.signal} to the {target} after {rnd.delay:.2f} s"
    assert rnd.ok, where + ("" if not rnd.twice else ", twice") + "\n" + "\n".join(rnd.problems)


def test_a_forced_sweep_of_a_live_docker_run_never_turns_a_vanished_sandbox_into_a_score(
    client, tmp_path: Path
) -> None:
    build_project(tmp_path)
    (tmp_path / "agents" / "slow.yaml").write_text(
        'kind: command\ncommand: "sleep 4; tr a-z A-Z < input/data.txt > output/data.txt"\n'
    )
    run_id = f"forced-{secrets.token_hex(4)}"
    docker = ["--ale-provider=docker", f"--ale-provider-opt=image={IMAGE}", f"--ale-run-id={run_id}"]
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *docker]
    args = [*base, "tasks/demo/a", "tasks/demo/b", "-n", "2", "--ale-agent=slow", "--ale-infra-retries=0"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while len(containers(client, run_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # both agents are mid-sleep
    # each container names its owner: one worker process each, on this machine
    labels = [client.api.inspect_container(c)["Config"]["Labels"] for c in containers(client, run_id)]
    owners = {label["pytest-ale.owner"] for label in labels}
    assert len(owners) == 2 and all(o.startswith(f"{socket.gethostname()}/") for o in owners), owners
    sweep = [*base, "--ale-sweep"]
    refused = subprocess.run(sweep, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR and "is still running" in refused.stderr
    assert len(containers(client, run_id)) == 2, "a refused sweep removed the live run's containers"
    force = [*sweep, "--ale-sweep-force"]
    forced = subprocess.run(force, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert "2 sandbox(es) removed" in forced.stdout, forced.stdout + forced.stderr
    out, _ = proc.communicate(timeout=120)
    rows = [json.loads(line) for line in (tmp_path / "reports" / "runs" / run_id / "results.jsonl").open()]
    outcomes = [(r["status"], r["error_kind"], r["score"]) for r in rows]
    assert outcomes == [("error", "infrastructure", None)] * 2, out.decode()[-3000:]
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED
    assert containers(client, run_id) == []
    # the run is over: resuming it runs both trials again, on sandboxes of their own
    resumed = subprocess.run(
        [*args, "--ale-resume"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert resumed.returncode == pytest.ExitCode.OK, resumed.stdout[-3000:]
