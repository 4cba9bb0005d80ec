"""Collection: a task folder's ``main.py`` becomes a ``TaskFile`` whose items are trials.

One ``TrialItem`` per agent x variant x trial, named ``task[agent-variant-tN]``. A task
that cannot be loaded yields one ``BrokenTaskItem`` that errors with the reason, so the
rest of the run goes on (a pytest collection error would stop every task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .card import load_card
from .errors import AleError, TaskDefinitionError
from .native import NativeTask
from .outcome import TrialResult
from .reports.text import failure_message
from .sandbox import Sandbox
from .task import TaskAttempt, TaskData, TaskDefinition
from .trial import TrialPlan, run_trial

if TYPE_CHECKING:
    from .session import AleSession


def is_task_file(path: Path) -> bool:
    """``main.py`` beside a ``task_card.json`` (or the card of a folder missing main.py)."""
    if path.name == "main.py":
        return (path.parent / "task_card.json").is_file()
    return path.name == "task_card.json" and not (path.parent / "main.py").exists()


def load_task(folder: Path, session: AleSession) -> TaskDefinition:
    """Load and validate the task in ``folder`` (native or ALE format)."""
    main_py = folder / "main.py"
    if not main_py.is_file():
        raise TaskDefinitionError(
            f"{folder}: has task_card.json but no main.py; add main.py with INSTRUCTION and "
            "evaluate(), or remove the card"
        )
    card = load_card(folder / "task_card.json")
    try:
        source = main_py.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskDefinitionError(f"{main_py}: cannot read it ({exc})") from exc
    if "cua_bench" in source:
        from .compat import load_ale_task

        return load_ale_task(folder, card, session)
    return NativeTask.load(folder, card)


class TaskFile(pytest.File):
    """A task folder, seen through its ``main.py``."""

    def collect(self) -> Iterator[pytest.Item]:
        session: AleSession = self.config.stash[SESSION_KEY]
        folder = self.path.parent
        refused = refused_by_card(folder, session)
        if refused is not None:  # not imported: a Windows task's main.py may not import here
            yield from self._trials(refused, ["base"], session)
            return
        try:
            task = load_task(folder, session)
            variants = task.variants()
        except AleError as exc:
            yield BrokenTaskItem.from_parent(self, name=folder.name, error=str(exc))
            return
        yield from self._trials(task, variants, session)

    def _trials(
        self, task: TaskDefinition, variants: list[str], session: AleSession
    ) -> Iterator[pytest.Item]:
        markers = task.markers()
        session.register_markers(markers)
        for agent in session.agents:
            for variant in variants:
                for trial in range(1, session.settings.trials + 1):
                    item = TrialItem.from_parent(
                        self,
                        name=f"{task.name}[{agent}-{variant}-t{trial}]",
                        task=task,
                        agent_label=agent,
                        variant=variant,
                        trial=trial,
                    )
                    for marker in markers:
                        item.add_marker(marker)
                    # the platform first: no point asking for data a provider cannot use
                    reason = session.provider_refusal(task) or session.credentials.skip_reason(task.card)
                    reason = reason or task.skip_reason(variant)
                    if not reason and session.agent(agent).uses_solution:
                        reason = task.solution_missing(variant)
                    if reason:
                        item.add_marker(pytest.mark.skip(reason=reason))
                    yield item


def refused_by_card(folder: Path, session: AleSession) -> TaskDefinition | None:
    """The task as its card alone describes it, when the provider cannot host it (its OS,
    a GPU): its trials are skipped with the reason and its ``main.py`` is never imported.
    ``None`` when the provider hosts it, or the card is unreadable (loading says why)."""
    try:
        card = load_card(folder / "task_card.json")
    except AleError:
        return None
    task = CardOnlyTask(folder, card)
    return task if session.provider_refusal(task) else None


class CardOnlyTask(TaskDefinition):
    """A task known by its card only: its trials are all skipped, so none of it runs."""

    def variants(self) -> list[str]:
        return ["base"]

    def instruction(self, variant: str) -> str:
        raise self._not_loaded()

    def data(self, variant: str) -> TaskData:
        raise self._not_loaded()

    def begin(self, sandbox: Sandbox, variant: str) -> TaskAttempt:
        raise self._not_loaded()

    def _not_loaded(self) -> TaskDefinitionError:
        return TaskDefinitionError(f"{self.folder}: not loaded (the provider cannot host it)")


class TrialItem(pytest.Item):
    """One trial. The trial runs in ``setup`` (so infrastructure, task and grader faults
    report as pytest *errors*); ``runtest`` then passes or fails on the score."""

    def __init__(
        self, *, task: TaskDefinition, agent_label: str, variant: str, trial: int, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.agent_label = agent_label
        self.variant = variant
        self.trial = trial
        self.result: TrialResult | None = None

    @property
    def task_folder(self) -> Path:
        return self.task.folder

    def setup(self) -> None:
        session: AleSession = self.config.stash[SESSION_KEY]
        settings = session.settings
        threshold = settings.threshold
        if threshold is None:
            threshold = self.task.card.threshold if self.task.card.threshold is not None else 1.0
        plan = TrialPlan(
            task=self.task,
            variant=self.variant,
            trial=self.trial,
            agent=session.agent(self.agent_label),
            provider=session.provider(),
            provider_name=session.provider_label,
            run_id=settings.run_id,
            sandbox_run_id=session.sandbox_run_id(),
            test_id=self.nodeid,
            artifacts=session.artifacts_dir(self),
            threshold=threshold,
            timeout_s=settings.timeout or self.task.card.timeout_s,
            infra_retries=settings.infra_retries,
            network=settings.network,
            credentials=session.credentials,
            keep=settings.keep,
            on_phase=self._progress(),
        )
        self.result = result = run_trial(plan)
        self.user_properties.extend(result.properties())
        session.record(result)
        for warning in result.warnings:
            self.warn(AleTrialWarning(f"{self.task.name}: {warning}"))
        if result.status == "error":
            pytest.fail(failure_message(result), pytrace=False)

    def _progress(self) -> Callable[[str], None] | None:
        """With ``-v``, each trial phase is written live on the trial's own report line."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.get_verbosity() < 1 or hasattr(self.config, "workerinput"):
            return None
        capture = self.config.pluginmanager.get_plugin("capturemanager")

        def show(phase: str) -> None:
            paused = capture.global_and_fixture_disabled() if capture else nullcontext()
            with paused:  # the trial runs under output capture
                reporter.write(f"{phase} ", light=True)
                reporter.flush()

        return show

    def runtest(self) -> None:
        assert self.result is not None
        if not self.result.passed:
            pytest.fail(failure_message(self.result), pytrace=False)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, 0, f"{self.task.name} [{self.agent_label} {self.variant} t{self.trial}]"


#: the results table's agent column for tasks that could not be loaded
BROKEN_AGENT = "(broken task)"


class BrokenTaskItem(pytest.Item):
    """Stands in for a task that cannot be loaded: errors with the reason, nothing else."""

    def __init__(self, *, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error
        self.result: TrialResult | None = None

    @property
    def task_folder(self) -> Path:
        return self.path.parent

    def setup(self) -> None:
        settings = self.config.stash[SESSION_KEY].settings
        self.result = TrialResult(  # no agent ran: its own line in the results table
            run_id=settings.run_id,
            test_id=self.nodeid,
            task=self.path.parent.name,
            domain=self.path.parent.parent.name,
            agent=BROKEN_AGENT,
            provider=self.config.stash[SESSION_KEY].provider_label,
            variant="base",
            trial=0,
            threshold=1.0,
            error=self.error,
            error_kind="task",
        )
        self.user_properties.extend(
            [
                ("ale_status", "error"),
                ("ale_agent", BROKEN_AGENT),
                ("ale_task", self.result.task),
                ("ale_domain", self.result.domain),
            ]
        )
        pytest.fail(f"broken task: {self.error}", pytrace=False)

    def runtest(self) -> None:  # pragma: no cover - setup always fails
        pass

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, 0, f"{self.path.parent.name} [broken task]"


class AleTrialWarning(pytest.PytestWarning):
    """Something about a trial a person should see (a refused output file, a retry)."""


SESSION_KEY = pytest.StashKey["AleSession"]()
