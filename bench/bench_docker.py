"""The docker provider against raw Docker, measured in the same run, same image.

1. **Per-trial wall time** of a trivial trial (a ``command`` agent running ``true``: the
   whole lifecycle, acquire, stage, exec, fence, collect, grade, record, release) against
   ``docker run --rm IMAGE true``. Per trial = (``pytest`` run of N trials - ``pytest`` run
   of N bare tests) / N, so pytest's start-up is not counted and everything else is,
   including removals still pending at exit. Also the median of the trials' own
   ``duration_s`` (acquire to release; removal runs in the background).
2. **Staging 1 GiB in 5,000 files** into a container: ``DockerSandbox.stage`` (what a
   trial stages with: a tar stream read while the engine extracts it), and ``put_archive``
   of an in-memory tar (``staging.tar_folders``, the generic path), against ``docker cp``
   of the same folder.

Rounds alternate and figures are medians; ratios are against the baseline of this run.

    python bench/bench_docker.py [--trials 20] [--rounds 5] [--stage-runs 3] [--write]

``--write`` replaces the "Docker provider" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_local import build, timed  # same folder: run as python bench/bench_docker.py

from pytest_ale.providers.docker import DockerProvider
from pytest_ale.sandbox import SandboxSpec
from pytest_ale.staging import tar_folders

IMAGE = os.environ.get("ALE_DOCKER_IMAGE", "pytest-ale/sandbox:latest")
RESULTS = Path(__file__).parent / "RESULTS.md"
HEADING = "## Docker provider"


def build_trivial(root: Path, trials: int) -> None:
    """bench_local's trivial task and bare tests, plus a ``command`` agent running ``true``."""
    build(root, trials)
    (root / "agents").mkdir()
    (root / "agents" / "true.yaml").write_text('kind: command\ncommand: "true"\n')


def bench_trials(trials: int, rounds: int) -> dict[str, float]:
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    per_trial, durations, raw = [], [], []
    phases: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_trivial(root, trials)
        for r in range(rounds):
            run_id = f"bench-{r}"
            ale = timed(
                [
                    *base,
                    "tasks",
                    "--ale-provider=docker",
                    f"--ale-provider-opt=image={IMAGE}",
                    "--ale-agent=true",
                    f"--ale-trials={trials}",
                    f"--ale-run-id={run_id}",
                ],
                root,
            )
            bare = timed([*base, "bare"], root)
            per_trial.append((ale - bare) / trials)
            rows = (root / "reports" / "runs" / run_id / "results.jsonl").read_text().splitlines()
            for row in (json.loads(line) for line in rows if line):
                durations.append(row["duration_s"])
                for name, seconds in row["phases"].items():
                    phases.setdefault(name, []).append(seconds)
            raw += [timed(["docker", "run", "--rm", IMAGE, "true"]) for _ in range(trials)]
    return {
        "per_trial": statistics.median(per_trial),
        "trial_duration": statistics.median(durations),
        "docker_run": statistics.median(raw),
        **{f"phase:{k}": statistics.median(v) for k, v in phases.items() if statistics.median(v) >= 0.001},
    }


def make_gib(folder: Path, files: int = 5000, total: int = 1024**3) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    size = total // files
    block = os.urandom(size)
    for i in range(files):
        (folder / f"f{i:05d}.bin").write_bytes(block[i % 97 :] + block[: i % 97])
    return size * files


def bench_staging(runs: int) -> dict[str, float]:
    provider = DockerProvider({"image": IMAGE})
    speeds: dict[str, list[float]] = {"stream": [], "bytes": [], "docker cp": []}
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        data = Path(tmp) / "input"
        total = make_gib(data)
        subprocess.run(["cat", *map(str, data.iterdir())], stdout=subprocess.DEVNULL, check=True)
        for r in range(runs):
            for how in speeds:
                sb = provider.acquire(SandboxSpec(run_id="bench-stage", trial_id=f"{how}-{r}", memory_gb=2))
                try:
                    started = time.perf_counter()
                    if how == "stream":
                        sb.stage(sb.workdir, {"input": data})
                    elif how == "bytes":
                        sb.put_archive(sb.workdir, tar_folders({"input": data}))
                    else:
                        subprocess.run(["docker", "cp", str(data), f"{sb.id}:{sb.workdir}/input"], check=True)
                    speeds[how].append(total / (time.perf_counter() - started) / 1024**2)
                    count = sb.exec("ls input | wc -l").stdout.strip()
                    assert count == "5000", f"{how}: {count} files arrived"
                finally:
                    provider.release(sb)
                    provider.guard.release_all()
    provider.close()
    return {how: statistics.median(v) for how, v in speeds.items()}


def report(trial: dict[str, float], stage: dict[str, float], args: argparse.Namespace) -> str:
    info = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    cp = stage["docker cp"]
    lines = [
        HEADING,
        "",
        f"`python bench/bench_docker.py --trials {args.trials} --rounds {args.rounds} "
        f"--stage-runs {args.stage_runs}` on {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, Docker Engine {info}, image `{IMAGE}`; medians, baselines "
        "measured in the same run.",
        "",
        "| per-trial wall time | seconds | vs `docker run --rm IMAGE true` |",
        "|---|---|---|",
        f"| `docker run --rm IMAGE true` (baseline) | {trial['docker_run']:.3f} | 1.00x |",
        f"| trivial trial, whole pytest run, per trial | {trial['per_trial']:.3f} | "
        f"{trial['per_trial'] / trial['docker_run']:.2f}x |",
        f"| trivial trial, acquire to release (`duration_s`) | {trial['trial_duration']:.3f} | "
        f"{trial['trial_duration'] / trial['docker_run']:.2f}x |",
        "",
        "Where a trivial trial's time goes (median seconds per phase): "
        + ", ".join(f"{k[6:]} {v:.3f}" for k, v in trial.items() if k.startswith("phase:"))
        + ". Container removal runs in the background (joined at exit, on signals); the "
        "whole-run figure includes it.",
        "",
        "| staging 1 GiB in 5,000 files | MiB/s | vs `docker cp` |",
        "|---|---|---|",
        f"| `docker cp` (baseline) | {cp:.0f} | 1.00x |",
        f"| `sandbox.stage`, streamed tar (the trial's path) | {stage['stream']:.0f} | "
        f"{stage['stream'] / cp:.2f}x |",
        f"| `put_archive`, in-memory tar (`tar_folders`) | {stage['bytes']:.0f} | "
        f"{stage['bytes'] / cp:.2f}x |",
        "",
        "A trial stages through `sandbox.stage`: the tar stream is read from disk while the "
        "engine extracts it, in constant memory, owned by the agent as it is written. The "
        "in-memory path builds the whole archive first, then re-owns it while sending.",
        "",
        f"Targets: a trivial trial at most 1.5x `docker run --rm` (measured "
        f"{trial['per_trial'] / trial['docker_run']:.2f}x), staging at least 0.8x `docker cp`'s "
        f"throughput (measured {stage['stream'] / cp:.2f}x).",
        "",
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    start = old.find(HEADING)
    if start == -1:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(HEADING))
        new = old[:start] + text + ("\n" + old[end + 1 :] if end != -1 else "")
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stage-runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    trial = bench_trials(args.trials, args.rounds)
    stage = bench_staging(args.stage_runs)
    text = report(trial, stage, args)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
