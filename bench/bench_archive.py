"""Cost of archiving an agent's output with ``SteadyTarFile`` (safe against files that
change size while read) against the stdlib's ``tarfile.TarFile``, in the same run.

Writes a folder of files (default 8 x 64 MiB plus 2,000 small ones), then archives it into
memory with each class, alternating, several rounds. The figure is the ratio of medians.

    python bench/bench_archive.py [--big 8] [--mib 64] [--small 2000] [--rounds 5]

Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from pytest_ale.staging import SteadyTarFile


def build(root: Path, big: int, mib: int, small: int) -> int:
    block = os.urandom(1 << 20)
    for i in range(big):
        with (root / f"big-{i}.bin").open("wb") as fh:
            for _ in range(mib):
                fh.write(block)
    (root / "logs").mkdir()
    for i in range(small):
        (root / "logs" / f"{i:05d}.log").write_text(f"line {i}\n" * 20)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def archive(cls: type[tarfile.TarFile], root: Path) -> float:
    started = time.perf_counter()
    buf = io.BytesIO()
    with cls.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name, recursive=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big", type=int, default=8)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ale-bench-archive-") as tmp:
        root = Path(tmp)
        size = build(root, args.big, args.mib, args.small)
        times: dict[str, list[float]] = {"stdlib": [], "steady": []}
        archive(tarfile.TarFile, root)  # warm the page cache
        for _ in range(args.rounds):
            times["stdlib"].append(archive(tarfile.TarFile, root))
            times["steady"].append(archive(SteadyTarFile, root))
    base, steady = statistics.median(times["stdlib"]), statistics.median(times["steady"])
    mib = size / 1024**2
    print(f"{mib:.0f} MiB in {args.big + args.small} files, {args.rounds} rounds, medians\n")
    print("| archiver | median (s) | MiB/s | ratio vs stdlib |")
    print("|---|---|---|---|")
    print(f"| `tarfile.TarFile` (baseline) | {base:.2f} | {mib / base:.0f} | 1.00x |")
    print(f"| `SteadyTarFile` | {steady:.2f} | {mib / steady:.0f} | {steady / base:.2f}x |")


if __name__ == "__main__":
    main()
