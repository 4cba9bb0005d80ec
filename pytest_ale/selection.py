"""Which collected trials run: task lists, shards of a suite, and resuming a run.

All three deselect through pytest's own ``pytest_deselected`` hook, so the counts show in
pytest's summary line like ``-k`` / ``-m`` deselections.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from .options import Settings


def listed_tasks(settings: Settings) -> set[Path] | None:
    """Task folders named by ``--ale-task-list`` files, or ``None`` when there are none."""
    if not settings.task_lists:
        return None
    wanted: set[Path] = set()
    for task_list in settings.task_lists:
        path = task_list if task_list.is_absolute() else settings.rootdir / task_list
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise pytest.UsageError(f"pytest-ale: cannot read task list {path}: {exc}") from None
        for line in lines:
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            candidates = [settings.rootdir / entry, path.parent / entry]
            found = next((c for c in candidates if (c / "main.py").is_file()), None)
            if found is None:
                raise pytest.UsageError(
                    f"pytest-ale: {path}: {entry!r} is not a task folder (no main.py under "
                    f"{candidates[0]}); fix or remove that line"
                )
            wanted.add(found.resolve())
    return wanted


def in_shard(nodeid: str, shard: tuple[int, int]) -> bool:
    """Deterministic: the same item lands in the same shard on every machine and run."""
    index, total = shard
    digest = int(hashlib.sha256(nodeid.encode()).hexdigest()[:12], 16)
    return digest % total == index - 1


def recorded_trials(results_file: Path, *, clean: bool = True) -> dict[str, dict[str, Any]]:
    """Trials already finished in this run, by test id. With ``clean`` (the run holds its
    lock), infrastructure errors and lines a crash cut short are dropped from the file, so
    those trials run again and every trial ends with exactly one line."""
    if not results_file.is_file():
        return {}
    done: dict[str, dict[str, Any]] = {}
    kept_lines = []
    for line in results_file.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash: that trial runs again
        if row.get("status") == "error" and row.get("error_kind") == "infrastructure":
            continue
        done[row["test_id"]] = row
        kept_lines.append(line)
    if not clean:
        return done
    tmp = results_file.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept_lines), encoding="utf-8")
    os.replace(tmp, results_file)
    return done


def select(config: pytest.Config, items: list[pytest.Item], settings: Settings, resumed: set[str]) -> None:
    """Apply task lists, the shard and resume (the test ids already recorded) to ``items``.

    ``resumed`` is read once, by the controller (``recorded_trials``), and handed to xdist
    workers: each worker reading (and cleaning) results.jsonl itself would race the others."""
    wanted = listed_tasks(settings)
    kept, dropped = [], []
    for item in items:
        folder = getattr(item, "task_folder", None)
        keep = (
            (wanted is None or folder is None or folder.resolve() in wanted)
            and (settings.shard is None or in_shard(item.nodeid, settings.shard))
            and item.nodeid not in resumed
        )
        (kept if keep else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
