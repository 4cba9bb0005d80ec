"""column_total: a multi-variant ALE-format test task with an in-sandbox scorer script."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cua_bench as cb

from tasks.common_setup import BaseTaskSetup
from tasks.linux_runtime import LinuxTaskConfig

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
if str(SCRIPTS_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPTS_DIR))

import score_outputs  # noqa: E402

DOMAIN_NAME = "ledger"
TASK_NAME = "column_total"
VARIANTS = ["q1", "q2"]
EVAL_DIR = f"/tmp/agenthle_eval/{TASK_NAME}"


@dataclass
class ColumnTotalConfig(LinuxTaskConfig):
    DOMAIN_NAME: str = DOMAIN_NAME
    TASK_NAME: str = TASK_NAME

    @property
    def task_description(self) -> str:
        return (
            f"Sum the amount column of {self.input_dir}/ledger.csv ({self.VARIANT_NAME}). Write "
            f'{self.remote_output_dir}/summary.json as {{"total": <sum>, "rows": <data rows>}}.'
        )

    def to_metadata(self) -> dict:
        meta = super().to_metadata()
        meta["summary_file"] = f"{self.remote_output_dir}/summary.json"
        meta["reference_file"] = f"{self.reference_dir}/total.json"
        return meta


_setup = BaseTaskSetup()


@cb.tasks_config(split="train")
def load():
    tasks = []
    for name in VARIANTS:
        cfg = ColumnTotalConfig(VARIANT_NAME=name)
        tasks.append(
            cb.Task(
                description=cfg.task_description,
                metadata=cfg.to_metadata(),
                computer={"provider": "computer", "setup_config": {"os_type": "linux"}},
            )
        )
    return tasks


@cb.setup_task(split="train")
async def start(task_cfg, session: cb.DesktopSession):
    await _setup(task_cfg, session)


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session: cb.DesktopSession) -> list[float]:
    if score_outputs.TASK != TASK_NAME:
        raise RuntimeError(f"imported another task's score_outputs ({score_outputs.TASK})")
    meta = task_cfg.metadata
    if not await session.file_exists(meta["summary_file"]):
        return [0.0]
    await session.interface.create_dir(EVAL_DIR)
    scorer = f"{EVAL_DIR}/sandbox_scorer.py"
    await session.write_file(scorer, (SCRIPTS_DIR / "sandbox_scorer.py").read_text())
    result = await session.run_command(f'python "{scorer}" "{meta["summary_file"]}" "{meta["reference_file"]}"')
    report = json.loads(result.get("stdout", "").strip().splitlines()[-1])
    if report.get("python") != 3:
        raise RuntimeError(f"the sandbox's python is not Python 3: {report}")
    return [score_outputs.combine(report)]
