"""segment_cells: needs a GPU; skipped on a provider without one."""

from __future__ import annotations

from dataclasses import dataclass

import cua_bench as cb

from tasks.linux_runtime import LinuxTaskConfig


@dataclass
class SegmentCellsConfig(LinuxTaskConfig):
    DOMAIN_NAME: str = "vision"
    TASK_NAME: str = "segment_cells"


@cb.tasks_config(split="train")
def load():
    cfg = SegmentCellsConfig()
    return [cb.Task(description=f"Segment the cells in {cfg.input_dir}.", metadata=cfg.to_metadata())]


@cb.setup_task(split="train")
async def start(task_cfg, session: cb.DesktopSession):
    await session.interface.create_dir(task_cfg.metadata["remote_output_dir"])


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session: cb.DesktopSession) -> list[float]:
    return [1.0 if await session.file_exists(task_cfg.metadata["remote_output_dir"] + "/masks.npz") else 0.0]
