"""raster_mosaic: a Windows task (Windows paths from common_config); pytest-ale's local
provider cannot host it, so it is skipped with that reason."""

from __future__ import annotations

from dataclasses import dataclass

import cua_bench as cb

from tasks.common_config import GeneralTaskConfig
from tasks.common_setup import BaseTaskSetup


@dataclass
class RasterMosaicConfig(GeneralTaskConfig):
    DOMAIN_NAME: str = "gis"
    TASK_NAME: str = "raster_mosaic"

    @property
    def task_description(self) -> str:
        return f"Mosaic the tiles in {self.input_dir} into {self.remote_output_dir}\\mosaic.tif."


_setup = BaseTaskSetup()


@cb.tasks_config(split="train")
def load():
    cfg = RasterMosaicConfig()
    return [
        cb.Task(
            description=cfg.task_description,
            metadata=cfg.to_metadata(),
            computer={"provider": "computer", "setup_config": {"os_type": "windows"}},
        )
    ]


@cb.setup_task(split="train")
async def start(task_cfg, session: cb.DesktopSession):
    await _setup(task_cfg, session)


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session: cb.DesktopSession) -> list[float]:
    out = task_cfg.metadata["remote_output_dir"] + "\\mosaic.tif"
    return [1.0] if await session.file_exists(out) else [0.0]
