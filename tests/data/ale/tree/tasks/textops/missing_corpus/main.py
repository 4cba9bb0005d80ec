"""missing_corpus: its data folder does not exist, so it is skipped naming the folder."""

from __future__ import annotations

from dataclasses import dataclass

import cua_bench as cb

from tasks.linux_runtime import LinuxTaskConfig


@dataclass
class MissingCorpusConfig(LinuxTaskConfig):
    DOMAIN_NAME: str = "textops"
    TASK_NAME: str = "missing_corpus"


@cb.tasks_config(split="train")
def load():
    cfg = MissingCorpusConfig()
    return [cb.Task(description=f"Count the files in {cfg.input_dir}.", metadata=cfg.to_metadata())]


@cb.setup_task(split="train")
async def start(task_cfg, session: cb.DesktopSession):
    return None


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session: cb.DesktopSession) -> list[float]:
    return [0.0]
