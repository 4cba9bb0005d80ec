"""Collection of 1,000 generated tasks, against collecting 1,000 plain test modules.

Generates N native task folders (main.py + task_card.json + input/) and N one-test
modules, then times ``pytest --collect-only -q`` of each as whole processes, alternating,
several rounds. The figure that matters is the task collection's own time (wall minus
the time pytest needs to start with no tests at all), and its ratio to plain modules.

    python bench/bench_collect.py [--tasks 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAIN = '''
"""Generated task {i}."""
from pathlib import Path

INSTRUCTION = "Sum the numbers in input/numbers.txt and write the total to output/total.txt"


def evaluate(output_dir: Path, reference_dir: Path, sandbox) -> tuple[float, str]:
    out = output_dir / "total.txt"
    if not out.is_file():
        return 0.0, "output/total.txt is missing"
    return (1.0, "ok") if out.read_text().strip() == "{total}" else (0.0, "wrong total")
'''


def build(root: Path, count: int) -> None:
    domains = ["finance", "health", "legal", "science", "logistics", "engineering"]
    for i in range(count):
        task = root / "tasks" / domains[i % len(domains)] / f"task-{i:04d}"
        (task / "input").mkdir(parents=True)
        (task / "main.py").write_text(MAIN.format(i=i, total=i * 3))
        card = {
            "title": f"Task {i}",
            "domain": domains[i % len(domains)],
            "tier": "near-term",
            "timeout": 600,
            "os": "linux",
            "tags": ["generated"],
        }
        (task / "task_card.json").write_text(json.dumps(card))
        (task / "input" / "numbers.txt").write_text(f"{i}\n{i}\n{i}\n")
        plain = root / "plain" / f"pkg{i % 50}"
        plain.mkdir(parents=True, exist_ok=True)
        (plain / f"test_mod{i:04d}.py").write_text(f"def test_{i}():\n    assert {i} >= 0\n")
    (root / "empty").mkdir()


def collect(root: Path, target: str, expected: int) -> float:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "--import-mode=importlib",
        target,
    ]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    collected = sum("::" in line for line in done.stdout.splitlines())
    if collected != expected:
        raise SystemExit(f"{target}: collected {collected}, expected {expected}\n{done.stdout[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"empty": [], "tasks": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.tasks)
        for target, expected in (("tasks", args.tasks), ("plain", args.tasks)):
            collect(root, target, expected)  # warm-up: byte-code caches, page cache
        for _ in range(args.rounds):
            times["empty"].append(collect(root, "empty", 0))
            times["tasks"].append(collect(root, "tasks", args.tasks))
            times["plain"].append(collect(root, "plain", args.tasks))
    start = statistics.median(times["empty"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.tasks} items, {args.rounds} rounds, whole-process wall time (median)\n")
    print("| run | wall (s) | collection alone (s) |")
    print("|---|---|---|")
    print(f"| pytest start-up, nothing to collect | {med['empty']:.2f} | - |")
    print(f"| {args.tasks} task folders | {med['tasks']:.2f} | {med['tasks'] - start:.2f} |")
    print(f"| {args.tasks} plain test modules | {med['plain']:.2f} | {med['plain'] - start:.2f} |")
    ratio = (med["tasks"] - start) / max(med["plain"] - start, 1e-9)
    print(f"\ntask collection / plain-module collection: {ratio:.2f}x")


if __name__ == "__main__":
    main()
