"""Small ALE-format (``cua_bench``) task folders written by tests: one ``main.py`` template
whose module top, ``load()``, ``start()`` and ``evaluate()`` bodies a test fills in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ALE_MAIN = """
import os, sys, subprocess, time
import cua_bench as cb
{top}

@cb.tasks_config(split="train")
def load():
    {load}
    return [cb.Task(description="Do nothing.", metadata={{"requires_task_data": False}}, computer={{}})]


@cb.setup_task(split="train")
async def start(task_cfg, session):
    {start}


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session):
    {evaluate}
    return [1.0]
"""
#: an ALE card for a task needing no data and no particular VM
ALE_CARD = {"category": "faulty", "vm": {"snapshot": "cpu-free-ubuntu"}}


def write_ale_task(folder: Path, card: dict[str, Any] | None = None, **code: str) -> None:
    """``folder``/main.py and task_card.json; ``code`` gives ``top``, ``load``, ``start`` or
    ``evaluate`` source (each ``pass`` unless given; ``evaluate`` then returns ``[1.0]``)."""
    folder.mkdir(parents=True)
    parts = {"top": "", "load": "pass", "start": "pass", "evaluate": "pass"}
    parts.update({k: v if k == "top" else v.replace("\n", "\n    ") for k, v in code.items()})
    (folder / "main.py").write_text(ALE_MAIN.format(**parts))
    (folder / "task_card.json").write_text(json.dumps({**ALE_CARD, **(card or {})}))
