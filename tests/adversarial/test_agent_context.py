"""A harness sees no path to the answer: the context handed to ``Agent.run`` holds the
instruction, the workspace and (for the oracle alone) ``solution/``, never ``reference/``
or the task definition (nor its attempt) that knows where it is."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pytest_ale.agents.base import Agent, AgentContext, AgentResult
from pytest_ale.card import load_card
from pytest_ale.native import NativeTask
from pytest_ale.providers.local import LocalProvider
from pytest_ale.sandbox import Sandbox
from pytest_ale.trial import TrialPlan, run_trial

from ..conftest import GOOD_MAIN


class SpyAgent(Agent):
    """Walks everything it was handed, looking for a way to the reference."""

    name = "spy"
    seen: list[Any]

    def run(self, sandbox: Sandbox, context: AgentContext) -> AgentResult:
        self.seen = list(_values(context))
        return AgentResult(exit_code=0)


class OracleSpy(SpyAgent):
    """A spy that, like the oracle, is handed ``solution/``."""

    name = "oracle-spy"
    uses_solution = True


def _values(obj: Any, depth: int = 0) -> Any:
    yield obj
    if depth > 3:
        return
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            yield from _values(getattr(obj, field.name), depth + 1)
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _values(value, depth + 1)


@pytest.mark.parametrize("spy", [SpyAgent, OracleSpy])
def test_agent_context_holds_no_way_to_the_reference(tmp_path: Path, spy: type[SpyAgent]) -> None:
    folder = tmp_path / "tasks" / "demo" / "upper"
    for sub in ("input", "reference", "solution"):
        (folder / sub).mkdir(parents=True)
    (folder / "main.py").write_text(GOOD_MAIN)
    (folder / "task_card.json").write_text('{"domain": "demo", "timeout": 30}')
    (folder / "input" / "data.txt").write_text("hello\n")
    (folder / "reference" / "data.txt").write_text("HELLO\n")
    (folder / "solution" / "solve.sh").write_text("true\n")
    task = NativeTask.load(folder, load_card(folder / "task_card.json"))
    agent = spy()
    provider = LocalProvider({"root": str(tmp_path / "root")})
    plan = TrialPlan(
        task=task,
        variant=task.variants()[0],
        trial=1,
        agent=agent,
        provider=provider,
        provider_name="local",
        run_id="spy",
        test_id="spy",
        artifacts=tmp_path / "artifacts",
        threshold=1.0,
        timeout_s=30,
    )
    result = run_trial(plan)
    assert result.status == "failed", result  # graded: the spy wrote nothing
    reference = str((folder / "reference").resolve())
    for value in agent.seen:
        assert not hasattr(value, "data"), f"the agent was handed {type(value).__name__}"
        assert not hasattr(value, "grade"), f"the agent was handed {type(value).__name__}"
        assert reference not in str(value), f"the agent was handed {value!r}"
        if isinstance(value, Path):
            assert not (value / "reference").exists() and value.name != "reference", value
    handed_solution = any(isinstance(v, Path) and v.name == "solution" for v in agent.seen)
    assert handed_solution == spy.uses_solution  # the oracle's door, and no other agent's
