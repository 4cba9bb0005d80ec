"""Allure results for every trial (a ``pytest11`` plugin, active only with ``--alluredir``).

allure-pytest already writes a result file per pytest item, custom items included, but it
knows nothing about trials. This plugin fills each trial's result in, through allure's
public ``allure.dynamic`` / ``allure.attach`` API: a readable title, labels (agent, model,
provider, domain, tier, task, and the standard suite/behavior tree), parameters (agent,
variant, trial, score), a description (text and HTML) with the score and labels, status
details with the grader's explanation, and attachments (trajectory, agent log, grader
explanation, output listing, ``result.json`` and any ``*.png`` screenshots in the trial's
artifacts folder).

It gets each trial's typed ``TrialResult`` from ``pytest_ale_trial_finished``, which fires
at the trial's teardown: inside allure-pytest's own teardown wrapper, so after its setup
wrapper has named the test (which would overwrite an earlier title) and before it adds
default suite labels (which it skips when ours are there). A trial skipped before it ran
has no result and gets its title, labels and parameters from its item at teardown. Under
xdist each worker has its own listener and writes its own files into the shared
``--alluredir`` (the controller's call of the hook, with no item, writes nothing).
The module imports without allure installed; it then does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..collect import BROKEN_AGENT, SESSION_KEY, AleTrialWarning, TrialItem
from ..events import finished_result
from ..outcome import TrialResult
from .allure_text import (
    broken_description,
    output_listing,
    score_text,
    status_message,
    trial_description,
)

#: at most this many screenshots per trial (an agent may write many images)
MAX_SCREENSHOTS = 20


def allure_active(config: pytest.Config) -> bool:
    """True when allure-pytest is loaded and writing results (``--alluredir`` given)."""
    return config.pluginmanager.get_plugin("allure_listener") is not None


@pytest.hookimpl(optionalhook=True)  # pytest-ale's own plugin may be off (-p no:ale)
def pytest_ale_trial_finished(item: pytest.Item | None, result: TrialResult) -> None:
    if item is None or not allure_active(item.config):
        return
    if result.agent == BROKEN_AGENT:
        _safely(item, describe_broken, item.path.parent, result)
    else:
        _safely(item, describe_trial, item.config, result)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """A trial skipped before it ran (platform refused, missing data): who it was."""
    if not isinstance(item, TrialItem) or finished_result(item) is not None:
        return
    if not allure_active(item.config):
        return
    task = item.task
    labels = _labels(
        agent=item.agent_label,
        provider=item.config.stash[SESSION_KEY].provider_label,
        domain=task.domain,
        tier=task.card.tier,
        task=task.name,
    )
    _safely(item, _identify, str(task.name), task.domain, item.agent_label, item.variant, item.trial, labels)


def _safely(item: pytest.Item, describe: Callable[..., None], *args: Any) -> None:
    try:
        describe(*args)
    except Exception as exc:  # a report must never turn a trial into an error
        item.warn(AleTrialWarning(f"Allure: could not describe {item.nodeid}: {exc!r}"))


def _labels(**candidates: object) -> dict[str, str]:
    return {name: str(value) for name, value in candidates.items() if value}


def describe_trial(config: pytest.Config, result: TrialResult) -> None:
    import allure

    labels = _labels(
        agent=result.agent,
        model=result.model,
        provider=result.provider,
        domain=result.domain,
        tier=result.tier,
        task=result.task,
    )
    _identify(result.task, result.domain, result.agent, result.variant, result.trial, labels)
    # excluded: a score that changes between runs must not split the test's history
    allure.dynamic.parameter("score", score_text(result), excluded=True)
    message = status_message(result)
    allure.dynamic.description(message)
    allure.dynamic.description_html(trial_description(result, labels))
    _set_status_message(config, message)
    _attach_artifacts(result)


def _identify(task: str, domain: str, agent: str, variant: str, trial: int, labels: dict[str, str]) -> None:
    """A trial's title, labels, suites and parameters: what identifies it across runs."""
    import allure

    allure.dynamic.title(f"{task} [{agent} {variant} t{trial}]")
    for name, value in labels.items():
        allure.dynamic.label(name, value)
    allure.dynamic.parent_suite(domain)
    allure.dynamic.suite(task)
    allure.dynamic.sub_suite(agent)
    allure.dynamic.epic(domain)
    allure.dynamic.feature(task)
    allure.dynamic.story(agent)
    # the agent is a parameter too: without it every agent's trial t1 would share one
    # historyId, and Allure would show them as retries of a single test
    allure.dynamic.parameter("agent", agent)
    allure.dynamic.parameter("variant", variant)
    allure.dynamic.parameter("trial", trial)


def describe_broken(folder: Path, result: TrialResult) -> None:
    import allure

    error = result.error or ""
    allure.dynamic.title(f"{result.task} [broken task]")
    allure.dynamic.label("task", result.task)
    allure.dynamic.label("domain", result.domain)
    allure.dynamic.parent_suite(result.domain)
    allure.dynamic.suite(result.task)
    allure.dynamic.description(f"broken task: {error}")
    allure.dynamic.description_html(broken_description(folder, error))
    allure.attach(error, name="error", attachment_type=allure.attachment_type.TEXT)


def _set_status_message(config: pytest.Config, message: str) -> None:
    """Status details for a trial that has none yet (a passed one); a failed or errored
    trial keeps allure-pytest's, which carry the same score and explanation plus the trace.
    The public API has no call for this, so it goes through the listener's reporter."""
    from allure_commons.model2 import StatusDetails

    listener: Any = config.pluginmanager.get_plugin("allure_listener")
    reporter = getattr(listener, "allure_logger", None)
    test = reporter.get_test(None) if reporter is not None else None
    if test is not None and test.statusDetails is None:
        test.statusDetails = StatusDetails(message=message)


def _attach_artifacts(result: TrialResult) -> None:
    import allure

    kind = allure.attachment_type
    if result.explanation or result.error:
        text = result.explanation or ""
        if result.error:
            text = f"{text}\n\n{result.error_kind or 'unknown'} error: {result.error}".strip()
        allure.attach(text, name="grader explanation", attachment_type=kind.TEXT)
    if not result.artifacts:
        return
    folder = Path(result.artifacts)
    files = [
        ("trajectory.json", "trajectory", kind.JSON),
        ("agent.log", "agent log", kind.TEXT),
        ("result.json", "result", kind.JSON),
    ]
    for filename, name, attachment_type in files:
        if (folder / filename).is_file():
            allure.attach.file(folder / filename, name=name, attachment_type=attachment_type)
    allure.attach(output_listing(folder / "output"), name="output listing", attachment_type=kind.TEXT)
    for png in sorted(folder.rglob("*.png"))[:MAX_SCREENSHOTS]:
        allure.attach.file(png, name=str(png.relative_to(folder)), attachment_type=kind.PNG)
