"""The ``Agent`` interface every harness implements, and what a run hands back.

An agent is constructed from its preset's options, ``install``s itself into a sandbox,
then ``run``s once with an ``AgentContext`` and returns an ``AgentResult``. Real CLI
harnesses, ``oracle``, ``noop`` and ``command`` all share this shape.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..typed_options import AgentOptions

if TYPE_CHECKING:
    from ..sandbox import Sandbox


#: guards every agent's kept partial results (trials run on many threads)
_PARTIALS_LOCK = threading.Lock()


@dataclass
class Usage:
    """Model usage of one trial, filled by harnesses that talk to a model. ``input_tokens``
    counts every prompt token, cached ones included; ``cache_read_tokens`` and
    ``cache_write_tokens`` are the parts of it read from and written to the prompt cache
    (the same meaning for every vendor, see ``gateway.wire.TokenUsage``)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    requests: int = 0


@dataclass
class AgentContext:
    """Everything an agent may know about the trial it is running."""

    instruction: str
    timeout_s: float
    workdir: str
    #: the task's name (``domain/task``), for labels and logs
    task_name: str
    variant: str
    artifacts: Path
    #: the host folder of the task's ``solution/``, for an agent that ``uses_solution``
    #: (the oracle) and ``None`` for any other; never the reference: an agent is handed
    #: no host path under ``reference/``
    solution: Path | None = None
    model: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class AgentResult:
    """What the agent did: exit status, log, trajectory and usage."""

    exit_code: int | None = 0
    timed_out: bool = False
    oom: bool = False
    log: str = ""
    trajectory: dict[str, Any] | None = None
    usage: Usage = field(default_factory=Usage)
    version: str | None = None
    duration_s: float = 0.0
    #: why the model gateway stopped the agent for exceeding its budget, if it did
    budget_exceeded: str | None = None
    #: extra report properties (``ale_*`` names) the harness wants in JUnit / results
    properties: dict[str, object] = field(default_factory=dict)


class Agent(abc.ABC):
    """A harness. Subclasses set ``name`` and implement ``run``; one with options of its
    own declares them in ``Options`` (an ``AgentOptions`` subclass, ``typed_options``)."""

    name: ClassVar[str] = "agent"
    #: handed the task's ``solution/`` (the oracle alone: a harness under test never is)
    uses_solution: ClassVar[bool] = False
    #: the options this agent accepts, checked when the presets resolve
    Options: ClassVar[type[AgentOptions]] = AgentOptions
    options: AgentOptions

    def __init__(self, options: AgentOptions | Mapping[str, Any] | None = None, label: str | None = None):
        self.label = label or self.name
        self.options = self.Options.validated(options, owner=f"agent {self.label!r}")
        self.model: str | None = self.options.model

    def install(self, sandbox: Sandbox) -> None:  # noqa: B027 - optional hook
        """Put the harness into the sandbox (no-op for agents that need nothing)."""

    @abc.abstractmethod
    def run(self, sandbox: Sandbox, context: AgentContext) -> AgentResult:
        """Work on the instruction inside ``sandbox`` within ``context.timeout_s``."""

    def sandbox_sockets(self, trial_id: str) -> dict[str, str]:
        """Host Unix sockets this agent needs inside the sandbox, ``{sandbox_path: host_path}``
        (the model gateway's door). Asked before the sandbox is acquired."""
        return {}

    def version(self) -> str | None:
        return self.options.version

    def keep_partial(self, trial_id: str, result: AgentResult) -> None:
        """Keep what a run of ``trial_id`` that is about to raise has to show for itself
        (the model usage it spent, its log and trajectory), for ``partial_result``."""
        with _PARTIALS_LOCK:
            self.__dict__.setdefault("_partials", {})[trial_id] = result

    def partial_result(self, trial_id: str) -> AgentResult | None:
        """What a run of ``trial_id`` that raised left behind: its model usage (tokens,
        cost, requests), log, trajectory and properties, so an error trial keeps its books.
        Handed over once; ``None`` when the run kept nothing (or did not raise)."""
        with _PARTIALS_LOCK:
            return self.__dict__.get("_partials", {}).pop(trial_id, None)


def run_script(
    sandbox: Sandbox,
    context: AgentContext,
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    version: str | None = None,
) -> AgentResult:
    """Run one command as the agent: in the workspace, within the time budget, logged."""
    merged = {**context.env, **(env or {})}
    result = sandbox.exec(argv, timeout=context.timeout_s, env=merged, cwd=context.workdir)
    log = result.stdout
    if result.stderr:
        log += ("\n" if log and not log.endswith("\n") else "") + result.stderr
    return AgentResult(
        exit_code=None if result.timed_out else result.exit_code,
        timed_out=result.timed_out,
        oom=result.oom_killed,
        log=log,
        version=version,
        duration_s=result.duration_s,
    )
