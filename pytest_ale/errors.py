"""Typed errors: who is at fault decides how a trial is reported.

Each class's ``kind`` is what a trial it ends records as ``error_kind`` (one of
``outcome.ERROR_KINDS``):

- ``TaskDefinitionError`` (``task``): the task folder is broken (bad card, syntax error, no
  grader). Reported as a pytest error on that task's items only; the rest of the run goes on.
- ``InfrastructureError`` (``infrastructure``): the sandbox or provider failed (could not
  start, died, vanished). Retried up to ``--ale-infra-retries``, then reported as an error,
  never as a zero score.
- ``GraderError`` (``grader``): the task's grader raised or returned something that is not
  a score.
- ``StagingError`` (``staging``): data could not be moved into or out of a sandbox safely.
- ``ConfigError`` (``settings``): an option, preset, provider setting or API key is wrong
  (unknown agent, bad YAML, a key the upstream refuses).
- ``ReplayDivergence`` (``replay``): a replayed trial (its agent or its judge) asked the
  model something its cassette does not hold.
- any other ``AleError`` (``unclassified``).
- ``AgentFault``: the agent broke a rule of the trial (output over a cap): not an error,
  the trial is graded 0 and counts against the agent like any failure.
"""

from __future__ import annotations

from typing import ClassVar


class AleError(Exception):
    """Base of every pytest-ale error; ``str()`` is the message shown to the user."""

    #: the trial's ``error_kind`` when this error ends it (``outcome.ERROR_KINDS``)
    kind: ClassVar[str] = "unclassified"


class ConfigError(AleError):
    """A command-line option, ini key, preset file, provider setting or API key is wrong."""

    kind: ClassVar[str] = "settings"


class TaskDefinitionError(AleError):
    """A task folder cannot be loaded: names the file and the fix."""

    kind: ClassVar[str] = "task"


class InfrastructureError(AleError):
    """The sandbox or its provider failed; not the agent's fault. Retryable."""

    kind: ClassVar[str] = "infrastructure"


class SandboxGoneError(InfrastructureError):
    """The sandbox died or became unreachable while in use."""


class GraderError(AleError):
    """The task's grader raised or returned an invalid score."""

    kind: ClassVar[str] = "grader"


class StagingError(AleError):
    """Data could not be moved into or out of a sandbox safely."""

    kind: ClassVar[str] = "staging"


class ReplayDivergence(AleError):
    """A replayed trial asked the model something its cassette does not hold."""

    kind: ClassVar[str] = "replay"


class AgentFault(AleError):
    """What the agent caused that stops grading (output over a size or file-count cap): the
    trial scores 0 and counts in the mean and pass rate. Never an excluded error."""


class OutputOverCap(AgentFault, StagingError):
    """``output/`` is larger, or holds more files, than the sandbox's caps allow."""
