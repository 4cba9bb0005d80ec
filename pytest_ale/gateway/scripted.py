"""The scripted model: a YAML of turns per task that answers in every wire format, so a
real harness drives its tools with no upstream model at all (how CI tests harnesses).

::

    tasks:
      upper:                       # the task's name (its folder)
        - shell: "tr a-z A-Z < input/data.txt > output/data.txt"
          say: "Upper-casing the file."        # optional text beside the call
        - tool: {name: Read, arguments: {file_path: output/data.txt}}   # exact tool call
        - text: "Done: output/data.txt is written."   # the final answer (last turn only)
      other:
        match: "a phrase of its instruction"  # find the task by its text instead of its name
        turns: [...]
    default:                       # optional: turns for any task not listed
      - text: "Nothing scripted for this task."
    judge:                         # optional: what the task's grader hears from its judge
      essay:                       # the task's name, or "*" for any task not listed
        - match: "rubric: tone"    # optional: a phrase of the judge's prompt
          text: '{"score": 0.4}'
        - text: '{"score": 0.7}'   # the first rule that matches answers
      other: "YES"                 # one answer for every judge request of the task

Which turn to play is read from the conversation itself (how many tool-call turns it
already holds), so the model is stateless: retries, side requests and replays see the
same answer. A ``shell`` turn becomes the harness's own shell tool (``Bash``,
``exec_command``, ``run_shell_command``, ...), chosen from the tools the request offers.
Requests that offer no tools (titles, "who speaks next" checks) get a short answer, or a
minimal JSON object when the request asks for a schema. A judge's request (one the
task's grader makes while it grades) is answered from ``judge`` only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ..errors import ConfigError
from .wire import Call, Reply, WireFormat

#: shell tools the harnesses offer, in order of preference, and their argument shapes
SHELL_TOOLS: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
    ("Bash", lambda c: {"command": c, "description": "Run a scripted step"}),
    ("exec_command", lambda c: {"cmd": c}),
    ("shell_command", lambda c: {"command": c}),
    ("run_shell_command", lambda c: {"command": c, "description": "Run a scripted step"}),
    ("shell", lambda c: {"command": ["bash", "-lc", c]}),
    ("bash", lambda c: {"command": c}),
]
FINAL_TEXT = "Done."


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] = {}


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shell: str | None = None
    tool: ToolSpec | None = None
    say: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Turn:
        actions = [a for a in (self.shell, self.tool, self.text) if a is not None]
        if len(actions) != 1:
            raise ValueError("a turn has exactly one of 'shell', 'tool' or 'text'")
        return self

    @property
    def is_call(self) -> bool:
        return self.text is None


class TaskScript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: str | None = None
    turns: list[Turn]

    @model_validator(mode="after")
    def _text_last(self) -> TaskScript:
        for turn in self.turns[:-1]:
            if not turn.is_call:
                raise ValueError("only the last turn may be a plain 'text' answer (it ends the run)")
        return self


class JudgeRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: a phrase of the judge's prompt this rule answers (any prompt without one)
    match: str | None = None
    text: str


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: dict[str, TaskScript] = {}
    default: TaskScript | None = None
    judge: dict[str, list[JudgeRule]] = {}

    @model_validator(mode="before")
    @classmethod
    def _lists_are_turns(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("tasks"), dict):
            data["tasks"] = {k: {"turns": v} if isinstance(v, list) else v for k, v in data["tasks"].items()}
        if isinstance(data.get("default"), list):
            data["default"] = {"turns": data["default"]}
        if isinstance(data.get("judge"), dict):
            data["judge"] = {k: [{"text": v}] if isinstance(v, str) else v for k, v in data["judge"].items()}
        return data


class ScriptedModel:
    """Answers model requests from a ``Script``."""

    def __init__(self, script: Script, source: str = "<script>") -> None:
        self.script = script
        self.source = source

    @classmethod
    def load(cls, path: Path) -> ScriptedModel:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"scripted model {path}: cannot read it ({exc})") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"scripted model {path}: invalid YAML ({exc}); fix the syntax") from exc
        try:
            return cls(Script.model_validate(data or {}), str(path))
        except ValidationError as exc:
            raise ConfigError(
                f"scripted model {path}: {exc}\nexpected 'tasks: {{NAME: [turns]}}' where each turn has "
                "one of shell / tool / text (see pytest_ale.gateway.scripted)"
            ) from None

    def turns_for(self, task: str | None, text: str) -> TaskScript | None:
        if task and task in self.script.tasks:
            return self.script.tasks[task]
        for script in self.script.tasks.values():
            if script.match and script.match in text:
                return script
        return self.script.default

    def answer(
        self, fmt: type[WireFormat], body: dict[str, Any], task: str | None, role: str = "agent"
    ) -> Reply:
        if role == "judge":
            return self.judged(fmt, body, task)
        tools = fmt.tools(body)
        schema = fmt.structured_schema(body)
        if not tools:
            if schema is not None:
                return Reply(text=json.dumps(placeholder(schema)))
            return Reply(text=FINAL_TEXT)
        conversation = fmt.conversation(body)
        script = self.turns_for(task, "\n".join(item["text"] for item in conversation))
        if script is None:
            return Reply(text=f"scripted model ({self.source}): no turns for task {task!r} and no default")
        index = fmt.tool_turns(body)
        if index >= len(script.turns):
            return Reply(text=FINAL_TEXT)
        turn = script.turns[index]
        if turn.text is not None:
            return Reply(text=turn.text)
        if turn.tool is not None:
            return Reply(text=turn.say or "", calls=[Call(turn.tool.name, dict(turn.tool.arguments))])
        assert turn.shell is not None
        for name, shape in SHELL_TOOLS:
            if name in tools:
                return Reply(text=turn.say or "", calls=[Call(name, shape(turn.shell))])
        return Reply(text=f"scripted model: no shell tool among the offered tools {sorted(tools)}")

    def judged(self, fmt: type[WireFormat], body: dict[str, Any], task: str | None) -> Reply:
        """The judge's answer: the first of the task's ``judge`` rules matching its prompt."""
        rules = self.script.judge.get(task or "") or self.script.judge.get("*") or []
        prompt = "\n".join(item["text"] for item in fmt.conversation(body))
        for rule in rules:
            if rule.match is None or rule.match in prompt:
                return Reply(text=rule.text)
        return Reply(text=f"scripted model ({self.source}): no judge answer for task {task!r}")


def placeholder(schema: dict[str, Any]) -> Any:
    """A minimal value satisfying a JSON schema ("who speaks next" checks get "user")."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    kind = str(kind).lower() if kind else None
    if schema.get("enum"):
        return "user" if "user" in schema["enum"] else schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {name: placeholder(props.get(name) or {}) for name in required}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return "Scripted answer."
