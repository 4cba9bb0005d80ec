"""Chaos rounds: an ``-n 2`` docker run hit by a signal at a random moment, then checked.

A round starts ``pytest tasks -n 2 --ale-provider=docker`` (a ``command`` agent with short
sleeps; task ``bad`` always fails), waits a random time, sends SIGINT, SIGTERM or SIGKILL
(sometimes twice) to the controller or to one worker, waits for the run to end and checks:

- the run ends within ``SLOW_S`` of the signal, and no process of it is left (found by
  an environment marker every worker inherits),
- no container of the run is left (``RUN`` and its workers' ``RUN@gwN``),
- every line of results.jsonl parses,
- one ``--ale-sweep`` is not refused and leaves nothing,
- ``--ale-resume`` completes the run: every trial recorded exactly once with the right
  status, summary.json covering them all, exit status 1 (``bad`` failed, before or now).

Used by ``test_chaos.py`` (a few rounds, one per target and signal) and by
``bench/bench_chaos.py`` (many rounds, counted).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE = os.environ.get("ALE_DOCKER_IMAGE", "pytest-ale/sandbox:latest")
MARKER = "ALE_CHAOS_ROUND"
TASKS = ("a", "b", "bad")
TRIALS = 2
AGENT = (
    'if [ "$(cat input/id.txt)" = bad ]; then sleep 0.5; '
    "else sleep 1; tr a-z A-Z < input/data.txt > output/data.txt; fi"
)
MAIN = """
INSTRUCTION = "Upper-case input/data.txt into output/data.txt."


def evaluate(output_dir, reference_dir, sandbox):
    out = output_dir / "data.txt"
    ok = out.is_file() and out.read_text() == (reference_dir / "data.txt").read_text()
    return (1.0 if ok else 0.0), "compared"
"""
#: every process of a round dumps its threads' stacks on SIGUSR1 (a slow stop says where)
CONFTEST = """
import faulthandler, os, signal
_stacks = open(os.path.join(os.path.dirname(__file__), "stacks", f"{os.getpid()}.txt"), "w")
faulthandler.register(signal.SIGUSR1, file=_stacks, all_threads=True)
"""
TARGETS = ("controller", "worker")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
#: a run still going this long after the signal did not stop "within seconds"
SLOW_S = 30.0


@dataclass
class Round:
    target: str
    signal: str
    run_id: str
    delay: float = 0.0
    twice: bool = False
    #: the run had ended before the signal could be sent
    missed: bool = False
    #: from the signal until no process of the run is left (workers included)
    stop_s: float = 0.0
    leaked_processes: int = 0
    leaked_containers: int = 0
    swept: int = 0
    left_after_sweep: int = 0
    lines: int = 0
    torn_lines: int = 0
    resume_exit: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def build_project(root: Path) -> None:
    """The tasks and the agent preset a round runs, under ``root``."""
    for name in TASKS:
        folder = root / "tasks" / "demo" / name
        for sub in ("input", "reference"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "main.py").write_text(MAIN)
        card = {"domain": "demo", "tier": "near-term", "timeout": 60}
        (folder / "task_card.json").write_text(json.dumps(card))
        (folder / "input" / "data.txt").write_text("hello\n")
        (folder / "input" / "id.txt").write_text(name)
        (folder / "reference" / "data.txt").write_text("HELLO\n")
    (root / "agents").mkdir(exist_ok=True)
    (root / "agents" / "chaos.yaml").write_text(f"kind: command\ncommand: {json.dumps(AGENT)}\n")
    (root / "conftest.py").write_text(CONFTEST)
    (root / "stacks").mkdir(exist_ok=True)


def pytest_args(run_id: str, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "pytest", "tasks", "-q", "-p", "no:cacheprovider", "-n", "2"),
        *("--ale-provider=docker", f"--ale-provider-opt=image={IMAGE}", "--ale-agent=chaos"),
        *(f"--ale-trials={TRIALS}", f"--ale-run-id={run_id}", *extra),
    ]


def marked_processes(run_id: str) -> list[int]:
    """Live processes whose environment carries this round's marker (zombies aside)."""
    needle = f"{MARKER}={run_id}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
                if state != "Z":
                    found.append(int(proc.name))
        except OSError:
            continue
    return found


def containers(client: Any, run_id: str) -> list[str]:
    from pytest_ale.providers.docker.client import PROVIDER_LABEL, RUN_LABEL
    from pytest_ale.sandbox import run_id_matches

    listed = client.api.containers(all=True, filters={"label": f"{PROVIDER_LABEL}=docker"})
    return [c["Id"] for c in listed if run_id_matches((c.get("Labels") or {}).get(RUN_LABEL), run_id)]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def run_round(root: Path, client: Any, rng: random.Random, target: str, signum: int) -> Round:
    """One round (see the module docstring); what went wrong is in ``Round.problems``."""
    run_id = f"chaos-{uuid.uuid4().hex[:8]}"
    rnd = Round(target=target, signal=signal.Signals(signum).name, run_id=run_id)
    env = {**os.environ, MARKER: run_id}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    for old in (root / "stacks").glob("*.txt"):
        old.unlink()
    proc = subprocess.Popen(
        pytest_args(run_id),
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    victim = proc.pid
    if target == "worker":
        _wait(lambda: len(_children(proc.pid)) >= 2 or proc.poll() is not None, 30)
        workers = _children(proc.pid)
        victim = rng.choice(workers) if workers else proc.pid
        rnd.delay = rng.uniform(0.0, 6.0)
    else:
        rnd.delay = rng.uniform(0.3, 9.0)
    rnd.twice = signum != signal.SIGKILL and rng.random() < 0.5
    time.sleep(rnd.delay)
    hit = time.monotonic()
    if proc.poll() is not None:
        rnd.missed = True
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signum)
        if rnd.twice:
            time.sleep(rng.uniform(0.1, 1.0))
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signum)
    try:
        out, _ = proc.communicate(timeout=SLOW_S / 2)
    except subprocess.TimeoutExpired:
        stacks = _stacks(root, run_id)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            rnd.problems.append("the run did not end within 120 s of the signal")
        if time.monotonic() - hit > SLOW_S:
            rnd.problems.append(f"the run's processes {SLOW_S / 2:.0f} s after the signal:\n{stacks}")
    if not _wait(lambda: not marked_processes(run_id), 30):
        left = marked_processes(run_id)
        rnd.leaked_processes = len(left)
        rnd.problems.append(f"process(es) of the run still alive 30 s after it ended: {left}")
    if not rnd.missed:
        rnd.stop_s = round(time.monotonic() - hit, 2)  # until every process of the run is gone
        if rnd.stop_s > SLOW_S:
            rnd.problems.append(f"the run ended {rnd.stop_s:.0f} s after the signal (over {SLOW_S:.0f} s)")
    rnd.leaked_containers = len(containers(client, run_id))
    if rnd.leaked_containers:
        rnd.problems.append(f"{rnd.leaked_containers} container(s) of the run left after it ended")
    _check_lines(root, rnd)
    _sweep(root, env, client, rnd)
    _resume(root, env, client, rnd)
    if rnd.problems:
        rnd.problems.append(f"the run's output: {out.decode(errors='replace')[-2500:]}")
    return rnd


def _stacks(root: Path, run_id: str) -> str:
    """The stacks of every live process of the run (their faulthandler, see ``CONFTEST``)."""
    pids = marked_processes(run_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
    time.sleep(1)
    parts = []
    for pid in pids:
        path = root / "stacks" / f"{pid}.txt"
        text = path.read_text(errors="replace") if path.is_file() else "(no stack file)"
        parts.append(f"-- pid {pid}:\n{text[-4000:]}")
    return "\n".join(parts)


def _results(root: Path, run_id: str) -> Path:
    return root / "reports" / "runs" / run_id / "results.jsonl"


def _check_lines(root: Path, rnd: Round) -> None:
    path = _results(root, rnd.run_id)
    lines = path.read_text().splitlines() if path.is_file() else []
    rnd.lines = len(lines)
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            rnd.torn_lines += 1
    if rnd.torn_lines:
        rnd.problems.append(f"{rnd.torn_lines} torn line(s) in results.jsonl")


def _sweep(root: Path, env: dict[str, str], client: Any, rnd: Round) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--ale-sweep",
         f"--ale-run-id={rnd.run_id}", "--ale-provider=docker", f"--ale-provider-opt=image={IMAGE}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        rnd.problems.append(f"the sweep failed or was refused: {done.stdout[-500:]} {done.stderr[-500:]}")
    rnd.swept = sum(line.startswith("pytest-ale sweep: removed") for line in done.stdout.splitlines())
    rnd.left_after_sweep = len(containers(client, rnd.run_id))
    if rnd.left_after_sweep:
        rnd.problems.append(f"{rnd.left_after_sweep} container(s) left after the sweep")


def _resume(root: Path, env: dict[str, str], client: Any, rnd: Round) -> None:
    done = subprocess.run(
        pytest_args(rnd.run_id, "--ale-resume"), cwd=root, env=env, capture_output=True, text=True,
        timeout=180, check=False,
    )  # fmt: skip
    rnd.resume_exit = done.returncode
    tail = done.stdout[-2000:]
    if done.returncode != 1:
        rnd.problems.append(f"--ale-resume exited {done.returncode}, not 1 (task bad fails): {tail}")
    path = _results(root, rnd.run_id)
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    ids = [r["test_id"] for r in rows]
    if len(ids) != len(TASKS) * TRIALS or len(set(ids)) != len(ids):
        rnd.problems.append(
            f"after the resume, results.jsonl has {len(ids)} line(s), {len(set(ids))} trial(s)"
        )
    wrong = [r["test_id"] for r in rows if r["status"] != ("failed" if r["task"] == "bad" else "passed")]
    if wrong:
        rnd.problems.append(f"wrong status after the resume: {wrong}")
    summary = json.loads((root / "reports" / "summary.json").read_text())
    whole = next((g for g in summary["groups"] if g["domain"] == "ALL"), {})
    if whole.get("trials") != len(TASKS) * TRIALS:
        rnd.problems.append(f"summary.json covers {whole.get('trials')} trial(s), not {len(TASKS) * TRIALS}")
    if containers(client, rnd.run_id):
        rnd.problems.append("container(s) left after the resumed run")
