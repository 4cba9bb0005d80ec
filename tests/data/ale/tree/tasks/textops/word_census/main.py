"""word_census: an ALE-format test task whose grader uses every DesktopSession call."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import cua_bench as cb
import score_outputs

from tasks.common_setup import BaseTaskSetup
from tasks.linux_runtime import LinuxTaskConfig

logger = logging.getLogger(__name__)

DOMAIN_NAME = "textops"
TASK_NAME = "word_census"
EVAL_DIR = f"/tmp/agenthle_eval/{TASK_NAME}"


@dataclass
class WordCensusConfig(LinuxTaskConfig):
    DOMAIN_NAME: str = DOMAIN_NAME
    TASK_NAME: str = TASK_NAME

    @property
    def task_description(self) -> str:
        return (
            f"Read {self.input_dir}/passage.txt. Write {self.remote_output_dir}/census.json "
            'holding {"words": <number of words>, "lines": <number of lines>, "top": '
            "<most frequent word, lower-case>}. Words are runs of letters and apostrophes."
        )

    def to_metadata(self) -> dict:
        meta = super().to_metadata()
        meta["census_file"] = f"{self.remote_output_dir}/census.json"
        return meta


_setup = BaseTaskSetup()


@cb.tasks_config(split="train")
def load():
    cfg = WordCensusConfig()
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


def _require(condition: bool, what: str) -> None:
    """The grader checks the session itself: a broken session is an infrastructure fault."""
    if not condition:
        raise RuntimeError(f"session misbehaves: {what}")


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session: cb.DesktopSession) -> list[float]:
    meta = task_cfg.metadata
    _require(score_outputs.TASK == TASK_NAME, f"imported another task's score_outputs ({score_outputs.TASK})")
    out_dir, census_file = meta["remote_output_dir"], meta["census_file"]

    # existence: a folder is not a file, a file is not a folder
    _require(await session.directory_exists(out_dir), "output folder missing")
    _require(not await session.file_exists(out_dir), "file_exists() is true for a folder")
    if not (await session.file_exists(census_file) or await session.directory_exists(census_file)):
        return [0.0]
    _require(not await session.directory_exists(census_file), "directory_exists() is true for a file")

    # listing: names of a folder; a file raises
    _require("census.json" in await session.list_dir(out_dir), "list_dir misses census.json")
    try:
        await session.list_dir(census_file)
    except Exception:
        pass
    else:
        raise RuntimeError("session misbehaves: list_dir() on a file did not raise")

    # reading: bytes and text, the reference (staged only now) and the input
    try:
        submission = json.loads((await session.read_bytes(census_file)).decode("utf-8"))
    except ValueError:
        return [0.0]
    passage = await session.read_file(f"{meta['input_dir']}/passage.txt")
    reference = json.loads(await session.read_file(f"{meta['reference_dir']}/census.json"))
    _require(reference == score_outputs.census(passage), "reference does not match the input")

    # writing: parents are not created; create_dir does; three ways to write
    try:
        await session.write_file(f"{EVAL_DIR}/no/such/folder/x.txt", "x")
    except Exception:
        pass
    else:
        raise RuntimeError("session misbehaves: write_file() created missing folders")
    await session.interface.create_dir(f"{EVAL_DIR}/scratch")
    await session.write_file(f"{EVAL_DIR}/scratch/a.txt", "left")
    await session.write_text(f"{EVAL_DIR}/scratch/c.txt", "-right")
    await session.write_bytes(f"{EVAL_DIR}/scratch/b.bin", b"\x00\x01\xff")
    _require(await session.read_bytes(f"{EVAL_DIR}/scratch/b.bin") == b"\x00\x01\xff", "bytes changed")

    # commands: dict access and attributes; check=True raises; a timeout is accepted
    result = await session.run_command(f"cat {EVAL_DIR}/scratch/a.txt {EVAL_DIR}/scratch/c.txt")
    _require(result.get("stdout") == "left-right", f"stdout {result.get('stdout')!r}")
    _require(result["return_code"] == 0 and result["success"], "return_code/success keys")
    _require(result.stdout == "left-right" and result.returncode == 0, "attributes")
    failed = await session.run_command("echo oops >&2; exit 3", check=False)
    _require(failed.get("return_code") == 3 and failed.return_code == 3, "exit code lost")
    _require(not failed["success"] and "oops" in failed["stderr"], "stderr/success of a failure")
    try:
        await session.run_command("exit 4")
    except Exception:
        pass
    else:
        raise RuntimeError("session misbehaves: check=True did not raise on exit 4")
    try:
        await session.run_command("true", check=True, timeout=60)
    except TypeError:  # the real session has no timeout argument
        await session.run_command("true", check=True)

    # deleting a folder
    await session.interface.delete_dir(f"{EVAL_DIR}/scratch")
    _require(not await session.directory_exists(f"{EVAL_DIR}/scratch"), "delete_dir left the folder")

    # a screenshot needs a display; a headless sandbox says so
    try:
        png = await session.screenshot()
        _require(png[:4] == b"\x89PNG", "screenshot is not a PNG")
    except NotImplementedError as exc:
        logger.info("no screenshot: %s", exc)

    return [score_outputs.score_census(submission, reference)]
