"""Per-trial overhead of the local provider against a bare pytest test, in the same run.

Builds a trivial task (noop agent, grader returns 0/1 from one file check) and a bare test
module with the same number of trivial tests, then times whole ``pytest`` processes of
each, alternating, several rounds. Overhead per trial = (ale run - bare run) / trials.

    python bench/bench_local.py [--trials 200] [--rounds 5]

Prints a Markdown table for bench/RESULTS.md.
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

MAIN = """
INSTRUCTION = "nothing to do"
def evaluate(output_dir, reference_dir, sandbox):
    return 1.0 if not (output_dir / "x").exists() else 0.0
"""


def build(root: Path, trials: int) -> None:
    task = root / "tasks" / "bench" / "trivial"
    (task / "input").mkdir(parents=True)
    (task / "main.py").write_text(MAIN)
    (task / "task_card.json").write_text(json.dumps({"domain": "bench", "timeout": 30}))
    (task / "input" / "a.txt").write_text("a\n")
    (root / "bare").mkdir()
    (root / "bare" / "test_bare.py").write_text(
        "import pytest\n\n"
        f"@pytest.mark.parametrize('i', range({trials}))\n"
        "def test_bare(i):\n    assert i >= 0\n"
    )


def timed(cmd: list[str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.trials)
        runs = {
            "bare pytest test": [*base, "bare"],
            "local, bubblewrap": [
                *base,
                "tasks",
                "--ale-agent=noop",
                "--ale-threshold=1",
                f"--ale-trials={args.trials}",
            ],
            "local, plain processes": [
                *base,
                "tasks",
                "--ale-agent=noop",
                f"--ale-trials={args.trials}",
                "--ale-provider-opt=isolation=none",
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, cmd in runs.items():
                times[name].append(timed(cmd, root))
    bare = statistics.median(times["bare pytest test"])
    print(f"trials per run: {args.trials}; rounds: {args.rounds}; whole-process wall time, median\n")
    print("| run | median wall (s) | per trial (ms) | overhead vs bare test (ms/trial) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        med = statistics.median(values)
        per = 1000 * med / args.trials
        over = 1000 * (med - bare) / args.trials
        print(f"| {name} | {med:.2f} | {per:.1f} | {over:.1f} |")


if __name__ == "__main__":
    main()
