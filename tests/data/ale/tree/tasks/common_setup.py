"""Setup shared by every test task: check the inputs arrived, make the output folder."""

from typing import Any


class BaseTaskSetup:
    async def __call__(self, task_cfg: Any, session: Any) -> None:
        await self._pre(task_cfg, session)
        await self.setup(task_cfg, session)

    async def _pre(self, task_cfg: Any, session: Any) -> None:
        meta = task_cfg.metadata
        if not await session.directory_exists(meta["input_dir"]):
            raise RuntimeError(f"inputs were not staged: {meta['input_dir']} is missing")
        await session.interface.create_dir(meta["remote_output_dir"])

    async def setup(self, task_cfg: Any, session: Any) -> None:
        """Per-task additions (a per-run secret, say); nothing by default."""
        return None
