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


def listed_tasks(settings: Settings, roots: tuple[list[Path], list[Path]]) -> set[Path] | None:
    """Task folders named by ``--ale-task-list`` files, or ``None`` when there are none.

    A line is tried against the collected task roots (``task_roots``: what pytest was
    pointed at, ALE's ``tasks/`` holding ``domain/task``), the list's own folder, the
    rootdir, the folder pytest was started in, then the folders holding the collected task
    folders; a line that names no task folder in any of them stops the run, naming the
    file, the line and where it looked. The list files are already absolute (``options``)."""
    if not settings.task_lists:
        return None
    tops, holders = roots
    wanted: set[Path] = set()
    for path in settings.task_lists:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise pytest.UsageError(f"pytest-ale: cannot read task list {path}: {exc}") from None
        near = [*tops, path.parent, settings.rootdir, settings.invocation_dir]
        bases = list(dict.fromkeys([*near, *holders]))
        for number, line in enumerate(lines, 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            found = next((base / entry for base in bases if _is_task_folder(base / entry)), None)
            if found is None:
                shown = list(dict.fromkeys(near))
                more = len(bases) - len(shown)
                raise pytest.UsageError(
                    f"pytest-ale: task list {path}, line {number}: {entry!r} is not a task folder "
                    f"(no main.py or task_card.json); looked in {', '.join(map(str, shown))}"
                    + (f" and the {more} folders holding the collected tasks" if more else "")
                    + "; fix or remove that line, or point pytest at the tree holding it"
                )
            wanted.add(found.resolve())
    return wanted


def task_roots(config: pytest.Config, folders: list[Path]) -> tuple[list[Path], list[Path]]:
    """Where list lines may start: the folders pytest was pointed at and the folder two up
    from each collected task (ALE's ``tasks/``, holding ``domain/task``); then the folders
    holding the collected task folders (a flat tree's ``name`` lines)."""
    start = Path(config.invocation_params.dir)
    tops: list[Path] = []
    for arg in config.args:
        given = start / arg.split("::", 1)[0]
        tops.append(given if given.is_dir() else given.parent)
    unique = list(dict.fromkeys(folders))
    tops.extend(folder.parent.parent for folder in unique)
    holders = [folder.parent for folder in unique]
    return (
        [p.resolve() for p in dict.fromkeys(tops)],
        [p.resolve() for p in dict.fromkeys(holders)],
    )


def _is_task_folder(path: Path) -> bool:
    return (path / "main.py").is_file() or (path / "task_card.json").is_file()


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
    folders = [f for f in (getattr(item, "task_folder", None) for item in items) if f is not None]
    wanted = listed_tasks(settings, task_roots(config, folders)) if settings.task_lists else None
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
