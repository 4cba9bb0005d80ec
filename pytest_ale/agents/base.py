"""The ``Agent`` interface every harness implements, and what a run hands back.

An agent is constructed from its preset's options, ``install``s itself into a sandbox,
then ``run``s once with an ``AgentContext`` and returns an ``AgentResult`` (its raw log and
the gateway's figures); it writes no file of the trial's. The trial writes the artifacts
and asks ``trajectory`` for the converted trajectory afterwards. Real CLI harnesses,
``oracle``, ``noop`` and ``command`` all share this shape.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..gateway.wire import Usage
from ..typed_options import AgentOptions

if TYPE_CHECKING:
    from ..sandbox import Sandbox

__all__ = ["Agent", "AgentContext", "AgentResult", "Usage", "run_script"]


#: guards every agent's kept partial results (trials run on many threads)
_PARTIALS_LOCK = threading.Lock()


@dataclass
class AgentContext:
    """Everything an agent may know about the trial it is running."""

    instruction: str
    timeout_s: float
    workdir: str
    #: the task's name (``domain/task``), for labels and logs
    task_name: str
    variant: str
    #: the host folder of the task's ``solution/``, for an agent that ``uses_solution``
    #: (the oracle) and ``None`` for any other; never the reference: an agent is handed
    #: no host path under ``reference/``
    solution: Path | None = None
    model: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class AgentResult:
    """What one run did, as the harness saw it: exit status, its raw log and the gateway's
    figures. The trial writes every artifact from it (agent.log, gateway.json(l),
    trajectory.json) and converts the trajectory afterwards (``Agent.trajectory``)."""

    exit_code: int | None = 0
    timed_out: bool = False
    oom: bool = False
    #: everything the harness printed (stdout, then stderr): the trial's ``agent.log``
    log: str = ""
    #: the harness's own machine-readable record of the run (a CLI's JSON-lines stdout),
    #: what ``Agent.trajectory`` converts; empty for a harness with none
    transcript: str = ""
    usage: Usage = field(default_factory=Usage)
    version: str | None = None
    model: str | None = None
    duration_s: float = 0.0
    #: why the model gateway stopped the agent for exceeding its budget, if it did
    budget_exceeded: str | None = None
    #: why the run ended short (the gateway stopped it, the sandbox failed under it): the
    #: trajectory's last step says so
    note: str | None = None
    #: the model gateway's books on the run: its summary (``gateway.json``) and one event
    #: per model request (``gateway.jsonl``); ``None`` for a harness that used no gateway
    gateway: dict[str, Any] | None = None
    gateway_events: list[dict[str, Any]] = field(default_factory=list)
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

    def trajectory(self, run: AgentResult, instruction: str, session_id: str) -> dict[str, Any] | None:
        """The run's trajectory (ATIF, ``trajectory.Trajectory`` as JSON), converted from
        what ``run`` returned; ``None`` (the default) leaves the trial's bare record of the
        process. The trial calls it after the run: a raise here is a warning in the trial's
        record, never an error (the run, and its model spend, stands)."""
        return None

    def sandbox_sockets(self, trial_id: str) -> dict[str, str]:
        """Host Unix sockets this agent needs inside the sandbox, ``{sandbox_path: host_path}``
        (the model gateway's door). Asked before the sandbox is acquired."""
        return {}

    def version(self) -> str | None:
        return self.options.version

    def keep_partial(self, trial_id: str, result: AgentResult) -> None:
        """Keep what a run of ``trial_id`` that is about to raise has to show for itself
        (the model usage it spent, its log and the gateway's books), for ``partial_result``."""
        with _PARTIALS_LOCK:
            self.__dict__.setdefault("_partials", {})[trial_id] = result

    def partial_result(self, trial_id: str) -> AgentResult | None:
        """What a run of ``trial_id`` that raised left behind: its model usage (tokens,
        cost, requests), log and properties, so an error trial keeps its books.
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
