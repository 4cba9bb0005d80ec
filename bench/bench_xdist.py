"""Trials at scale: 64 trials of a 2-second agent on ``-n 16`` against the ideal.

The ideal is the same 64 trials with a 0-second agent on ``-n 16`` (start-up of 16
workers, collection, sandboxes and grading: everything but the agent's time), plus the
agent's own time spread perfectly: 64 x 2 s / 16 workers = 8 s. Both are measured in the
same run, alternating. Also checks that the two runs' summaries agree on trial counts.

    python bench/bench_xdist.py [--rounds 3] [--workers 16] [--trials 64] [--seconds 2]
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
INSTRUCTION = "write output/done.txt"
def evaluate(output_dir, reference_dir, sandbox):
    return 1.0 if (output_dir / "done.txt").is_file() else 0.0
"""


def build(root: Path, seconds: float) -> None:
    task = root / "tasks" / "bench" / "sleepy"
    (task / "input").mkdir(parents=True)
    (task / "main.py").write_text(MAIN)
    (task / "task_card.json").write_text(json.dumps({"domain": "bench", "timeout": 60}))
    (root / "agents").mkdir()
    for name, secs in (("slow", seconds), ("instant", 0)):
        (root / "agents" / f"{name}.yaml").write_text(
            f"kind: command\ncommand: sleep {secs}; touch output/done.txt\n"
        )


def run(root: Path, agent: str, workers: int, trials: int) -> tuple[float, dict]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tasks",
        f"--ale-agent={agent}",
        f"--ale-trials={trials}",
        "-n",
        str(workers),
    ]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    summary = json.loads((root / "reports" / "summary.json").read_text())
    return elapsed, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    agent_share = args.trials * args.seconds / args.workers
    slow, fixed, ratios = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.seconds)
        for _ in range(args.rounds):
            base, base_summary = run(root, "instant", args.workers, args.trials)
            real, real_summary = run(root, "slow", args.workers, args.trials)
            assert base_summary["groups"][0]["trials"] == real_summary["groups"][0]["trials"] == args.trials
            fixed.append(base)
            slow.append(real)
            ratios.append(real / (base + agent_share))
    print(f"{args.trials} trials of a {args.seconds:g} s agent on -n {args.workers}; {args.rounds} rounds\n")
    print("| figure | median | min | max |")
    print("|---|---|---|---|")
    for name, values in (
        (f"0 s agent, -n {args.workers} (fixed costs), s", fixed),
        (f"{args.seconds:g} s agent, -n {args.workers}, s", slow),
        (f"ratio to ideal (fixed + {agent_share:g} s)", ratios),
    ):
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
