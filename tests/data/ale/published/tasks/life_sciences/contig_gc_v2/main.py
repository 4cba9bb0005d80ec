"""contig_gc_v2: an ALE-format test task shaped like ALE's life_sciences/rgi_mcr1_colistin_v2.

Its ``task_dir`` names a visible workspace (``contig_gc_instance_1``) that is not where its
data lives: ALE finds the data by ``domain_name/task_name/variant_name``
(``life_sciences/contig_gc_v2/base``), and the grader reads the reference there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cua_bench as cb
from tasks.common_setup import BaseTaskSetup
from tasks.linux_runtime import LinuxTaskConfig

DOMAIN_NAME = "life_sciences"
TASK_NAME = "contig_gc_v2"
VISIBLE_TASK_NAME = "contig_gc_instance_1"


@dataclass
class ContigGcConfig(LinuxTaskConfig):
    DOMAIN_NAME: str = DOMAIN_NAME
    TASK_NAME: str = TASK_NAME

    @property
    def data_task_dir(self) -> str:
        return self.join(self.REMOTE_ROOT_DIR, self.DOMAIN_NAME, TASK_NAME, self.VARIANT_NAME)

    @property
    def task_dir(self) -> str:
        return self.join(self.REMOTE_ROOT_DIR, self.DOMAIN_NAME, VISIBLE_TASK_NAME, self.VARIANT_NAME)

    @property
    def input_dir(self) -> str:
        return self.join(self.data_task_dir, "input")

    @property
    def reference_dir(self) -> str:
        return self.join(self.data_task_dir, "reference")

    @property
    def remote_output_dir(self) -> str:
        return self.join(self.data_task_dir, self.REMOTE_OUTPUT_DIR)

    @property
    def task_description(self) -> str:
        return (
            f"Read the contig in {self.input_dir}/contig.fasta. Write {self.remote_output_dir}/answer.json "
            'holding {"gc": <fraction of G and C bases, to 4 decimals>}.'
        )

    def to_metadata(self) -> dict:
        meta = super().to_metadata()
        meta["data_task_dir"] = self.data_task_dir
        meta["answer_file"] = f"{self.remote_output_dir}/answer.json"
        meta["targets_file"] = f"{self.reference_dir}/metadata/targets.json"
        return meta


_setup = BaseTaskSetup()


@cb.tasks_config(split="train")
def load():
    cfg = ContigGcConfig()
    return [
        cb.Task(
            description=cfg.task_description,
            metadata=cfg.to_metadata(),
            computer={"provider": "computer", "setup_config": {"os_type": cfg.OS_TYPE}},
        )
    ]


@cb.setup_task(split="train")
async def start(task_cfg, session: cb.DesktopSession):
    await _setup(task_cfg, session)


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session: cb.DesktopSession) -> list[float]:
    meta = task_cfg.metadata
    if not await session.file_exists(meta["targets_file"]):
        raise RuntimeError(f"evaluator-controlled reference missing: {meta['targets_file']}")
    if not await session.file_exists(meta["answer_file"]):
        return [0.0]
    try:
        answer = json.loads(await session.read_file(meta["answer_file"]))
        target = json.loads(await session.read_file(meta["targets_file"]))
        return [1.0 if abs(float(answer["gc"]) - float(target["gc"])) < 1e-3 else 0.0]
    except (ValueError, KeyError, TypeError):
        return [0.0]
