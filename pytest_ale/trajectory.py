"""The unified trajectory schema (ATIF-compatible): what an agent did, step by step.

Every harness's log converts into a ``Trajectory``: steps with their source (``user``,
``agent``, ``system``), message, tool calls and observations, per-step metrics, and final
metrics over the trial. Harnesses that have no model (oracle, noop, command) produce a
two-step trajectory: the instruction and what the process printed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "ATIF-v1.4"


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    tool_call_id: str
    function_name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ObservationResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    source_call_id: str | None = None
    content: str | None = None


class Observation(BaseModel):
    results: list[ObservationResult] = Field(default_factory=list)


class StepMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None


class Step(BaseModel):
    model_config = ConfigDict(extra="allow")
    step_id: int = Field(ge=1)
    timestamp: str | None = None
    source: Literal["user", "agent", "system"]
    message: str = ""
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    observation: Observation | None = None
    metrics: StepMetrics | None = None


class AgentInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    version: str = "unknown"
    model_name: str | None = None


class FinalMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")
    total_prompt_tokens: int | None = None
    total_completion_tokens: int | None = None
    total_cached_tokens: int | None = None
    total_cost_usd: float | None = None
    total_steps: int | None = None


class Trajectory(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_version: str = SCHEMA_VERSION
    session_id: str
    agent: AgentInfo
    steps: list[Step]
    final_metrics: FinalMetrics | None = None


def process_trajectory(
    session_id: str,
    agent: str,
    version: str | None,
    instruction: str,
    log: str,
    exit_code: int | None,
) -> Trajectory:
    """The trajectory of a harness without a model: the instruction, then its output."""
    status = "timed out" if exit_code is None else f"exited with code {exit_code}"
    steps = [
        Step(step_id=1, source="user", message=instruction),
        Step(step_id=2, source="agent", message=f"{agent} {status}\n{log[-20000:]}".rstrip()),
    ]
    return Trajectory(
        session_id=session_id,
        agent=AgentInfo(name=agent, version=version or "unknown"),
        steps=steps,
        final_metrics=FinalMetrics(total_steps=len(steps)),
    )


def validate_trajectory(data: dict[str, Any]) -> Trajectory:
    """Parse and check a saved trajectory (``trajectory.json``); raises ``ValidationError``."""
    trajectory = Trajectory.model_validate(data)
    for number, step in enumerate(trajectory.steps, start=1):
        if step.step_id != number:
            raise ValueError(f"step {number} has step_id {step.step_id}; ids must run 1, 2, 3, ...")
    return trajectory


class StepsBuilder:
    """Builds the steps of a trajectory while a harness log is read, line by line.

    ``agent()`` opens a model step (text, reasoning, tool calls, metrics); ``observe()``
    attaches a tool's result to the step that made the call, wherever it is.
    """

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._calls: dict[str, Step] = {}

    def add(self, source: Literal["user", "agent", "system"], message: str, **fields: Any) -> Step:
        step = Step(step_id=len(self.steps) + 1, source=source, message=message, **fields)
        self.steps.append(step)
        return step

    def agent(
        self,
        message: str = "",
        *,
        reasoning: str | None = None,
        tool_calls: list[ToolCall] | None = None,
        metrics: StepMetrics | None = None,
        timestamp: str | None = None,
    ) -> Step:
        step = self.add(
            "agent",
            message,
            reasoning_content=reasoning or None,
            tool_calls=tool_calls or None,
            metrics=metrics,
            timestamp=timestamp,
        )
        for call in tool_calls or []:
            self._calls[call.tool_call_id] = step
        return step

    def call(self, step: Step, call: ToolCall) -> None:
        """Add a tool call to an existing agent step."""
        step.tool_calls = [*(step.tool_calls or []), call]
        self._calls[call.tool_call_id] = step

    def observe(self, call_id: str | None, content: str) -> None:
        step = self._calls.get(call_id or "") or (self.steps[-1] if self.steps else None)
        if step is None:
            step = self.add("system", "")
        if step.observation is None:
            step.observation = Observation()
        step.observation.results.append(ObservationResult(source_call_id=call_id, content=content))

    def trajectory(
        self,
        session_id: str,
        agent: AgentInfo,
        final_metrics: FinalMetrics | None = None,
        **extra: Any,
    ) -> Trajectory:
        metrics = final_metrics or FinalMetrics()
        metrics.total_steps = len(self.steps)
        return Trajectory(
            session_id=session_id, agent=agent, steps=self.steps, final_metrics=metrics, **extra
        )
