"""judged_summary: an ALE-format task graded by an LLM judge, the way ALE's
``tasks/utils/evaluation.py`` builds one: an OpenAI client from ``OPENAI_API_KEY`` and
``OPENAI_API_BASE``, asked to score the agent's summary against the rubric; the score is
the judge's answer."""

from __future__ import annotations

import json
import os
import re

import cua_bench as cb
from openai import OpenAI

ROOT = os.environ.get("REMOTE_ROOT_DIR", "/media/user/data/agenthle")
TASK_DIR = f"{ROOT}/essays/judged_summary/base"
JUDGE_MODEL = os.environ.get("LLM_JUDGE_MODEL", "gpt-4o-mini")


@cb.tasks_config(split="train")
def load():
    return [
        cb.Task(
            description=(
                f"Summarize {TASK_DIR}/input/article.txt in one sentence; write it to "
                f"{TASK_DIR}/output/summary.txt."
            ),
            metadata={
                "domain_name": "essays",
                "task_name": "judged_summary",
                "variant_name": "base",
                "task_dir": TASK_DIR,
            },
            computer={"provider": "computer", "setup_config": {"os_type": "linux"}},
        )
    ]


def _client_kwargs() -> dict:
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        raise RuntimeError("OPENAI_API_KEY is not set")
    kwargs = {"api_key": key}
    if os.environ.get("OPENAI_API_BASE"):
        kwargs["base_url"] = os.environ["OPENAI_API_BASE"]
    return kwargs


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session: cb.DesktopSession) -> list[float]:
    summary_file = f"{TASK_DIR}/output/summary.txt"
    if not await session.file_exists(summary_file):
        return [0.0]
    summary = (await session.read_file(summary_file)).strip()
    rubric = (await session.read_file(f"{TASK_DIR}/reference/rubric.txt")).strip()
    client = OpenAI(**_client_kwargs())
    response = client.chat.completions.create(
        model=JUDGE_MODEL,
        temperature=0,
        messages=[
            {"role": "system", "content": 'You grade summaries. Answer with JSON: {"score": <0..1>}.'},
            {"role": "user", "content": f"Rubric:\n{rubric}\n\nSummary:\n{summary}"},
        ],
    )
    text = response.choices[0].message.content or ""
    found = re.search(r"\{.*\}", text, re.DOTALL)
    if not found:
        raise RuntimeError(f"the judge answered no JSON: {text[:200]}")
    return [float(json.loads(found.group(0))["score"])]
