"""What a trial needs from a task, whatever format the task is written in.

``TaskDefinition`` is implemented by native tasks (``native.py``) and by ALE-format tasks
(``compat/``). It is the loaded task, shared by every trial of it; what one trial holds
(its own import of the task's code, its session, the instruction it gave) lives on the
``TaskAttempt`` that ``TaskDefinition.begin`` returns, which only that trial sees and
which ends with it. The trial drives both through the same few calls, in the order of
docs/architecture.md ("One trial").
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

from .card import TaskCard, marker_name
from .sandbox import Sandbox
from .scoring import Grade

DATA_KINDS = ("input", "software")


@dataclass(frozen=True)
class TaskData:
    """The host folders of one variant's data; ``None`` where the task has none."""

    input: Path | None
    software: Path | None
    reference: Path | None
    solution: Path | None


class TaskDefinition(abc.ABC):
    """A loaded, validated task: its card, variants, instruction, setup and grader."""

    folder: Path
    card: TaskCard
    #: "native" or "ale"
    format: str = "native"

    def __init__(self, folder: Path, card: TaskCard) -> None:
        self.folder = folder
        self.card = card

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def domain(self) -> str:
        return self.card.domain(self.folder)

    def markers(self) -> list[str]:
        """Card facts as marker names: OS, ``gpu``, ``licensed``, domain, tier."""
        names = [self.card.os, marker_name(self.domain)]
        if self.card.gpu:
            names.append("gpu")
        if self.card.licensed:
            names.append("licensed")
        if self.card.tier:
            names.append(marker_name(self.card.tier))
        names.extend(marker_name(tag) for tag in self.card.tags)
        return list(dict.fromkeys(names))

    @abc.abstractmethod
    def variants(self) -> list[str]:
        """Variant names, each becomes items (``base`` when the task has one)."""

    @abc.abstractmethod
    def instruction(self, variant: str) -> str:
        """The instruction handed to the agent."""

    @abc.abstractmethod
    def data(self, variant: str) -> TaskData:
        """Where this variant's data lives on the host."""

    def workdir(self, variant: str) -> str:
        """The sandbox path of the trial's workspace (input/, software/, output/)."""
        return "/workspace"

    def skip_reason(self, variant: str) -> str | None:
        """Why this variant cannot run at all here (missing data, say), else ``None``."""
        return None

    def solution_missing(self, variant: str) -> str | None:
        """Why an agent that runs the task's own solution (the oracle) skips ``variant``:
        a format whose tasks often ship none says so here; ``None`` runs it."""
        return None

    @abc.abstractmethod
    def begin(self, sandbox: Sandbox, variant: str) -> TaskAttempt:
        """Start one trial of ``variant`` in ``sandbox`` (after input/ and software/ are
        staged): the attempt's own task state, used by that trial only, closed at its end."""


class TaskAttempt(abc.ABC):
    """One trial's hold on its task: set up, the instruction, graded, closed.

    Made by ``TaskDefinition.begin`` for one sandbox and variant; nothing on it outlives
    the trial, and two trials of the same task (on two threads) never share one.
    """

    def __init__(self, sandbox: Sandbox, variant: str) -> None:
        self.sandbox = sandbox
        self.variant = variant

    @abc.abstractmethod
    def setup(self) -> None:
        """Prepare the sandbox for the agent."""

    @property
    @abc.abstractmethod
    def instruction(self) -> str:
        """The instruction handed to the agent (as this attempt's setup left it)."""

    @abc.abstractmethod
    def grade(self, output_dir: Path) -> Grade:
        """Score the trial. The sandbox is fenced: nothing the agent started still runs."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Let go of what the attempt holds (always called, once, at the trial's end)."""
