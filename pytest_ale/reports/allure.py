"""Allure results for every trial (a ``pytest11`` plugin, active only with ``--alluredir``).

allure-pytest already writes a result file per pytest item, custom items included, but it
knows nothing about trials. This plugin fills each trial's result in, through allure's
public ``allure.dynamic`` / ``allure.attach`` API: a readable title, labels (agent, model,
provider, domain, tier, task, and the standard suite/behavior tree), parameters (agent,
variant, trial, score), a description (text and HTML) with the score and labels, status
details with the grader's explanation, and attachments (trajectory, agent log, grader
explanation, output listing, ``result.json`` and any ``*.png`` screenshots in the trial's
artifacts folder).

It runs in ``pytest_runtest_teardown``: inside allure-pytest's own teardown wrapper, so
after its setup wrapper has named the test (which would overwrite an earlier title) and
before it adds default suite labels (which it skips when ours are there). Under xdist
each worker has its own listener and writes its own files into the shared ``--alluredir``.
The module imports without allure installed; it then does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..collect import SESSION_KEY, AleTrialWarning, BrokenTaskItem, TrialItem
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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if not isinstance(item, TrialItem | BrokenTaskItem) or not allure_active(item.config):
        return
    try:
        if isinstance(item, TrialItem):
            describe_trial(item)
        else:
            describe_broken(item)
    except Exception as exc:  # a report must never turn a trial into an error
        item.warn(AleTrialWarning(f"Allure: could not describe {item.nodeid}: {exc!r}"))


def describe_trial(item: TrialItem) -> None:
    import allure

    result = item.result
    task = item.task
    settings = item.config.stash[SESSION_KEY].settings
    allure.dynamic.title(f"{task.name} [{item.agent_label} {item.variant} t{item.trial}]")
    candidates = {
        "agent": item.agent_label,
        "model": result.model if result else None,
        "provider": result.provider if result else settings.provider,
        "domain": task.domain,
        "tier": task.card.tier,
        "task": task.name,
    }
    labels = {name: str(value) for name, value in candidates.items() if value}
    for name, value in labels.items():
        allure.dynamic.label(name, value)
    allure.dynamic.parent_suite(task.domain)
    allure.dynamic.suite(task.name)
    allure.dynamic.sub_suite(item.agent_label)
    allure.dynamic.epic(task.domain)
    allure.dynamic.feature(task.name)
    allure.dynamic.story(item.agent_label)
    # the agent is a parameter too: without it every agent's trial t1 would share one
    # historyId, and Allure would show them as retries of a single test
    allure.dynamic.parameter("agent", item.agent_label)
    allure.dynamic.parameter("variant", item.variant)
    allure.dynamic.parameter("trial", item.trial)
    if result is None:  # skipped before it ran (platform refused, missing data)
        return
    # excluded: a score that changes between runs must not split the test's history
    allure.dynamic.parameter("score", score_text(result), excluded=True)
    message = status_message(result)
    allure.dynamic.description(message)
    allure.dynamic.description_html(trial_description(result, labels))
    _set_status_message(item.config, message)
    _attach_artifacts(result)


def describe_broken(item: BrokenTaskItem) -> None:
    import allure

    folder = item.task_folder
    allure.dynamic.title(f"{folder.name} [broken task]")
    allure.dynamic.label("task", folder.name)
    allure.dynamic.label("domain", folder.parent.name)
    allure.dynamic.parent_suite(folder.parent.name)
    allure.dynamic.suite(folder.name)
    allure.dynamic.description(f"broken task: {item.error}")
    allure.dynamic.description_html(broken_description(folder, item.error))
    allure.attach(item.error, name="error", attachment_type=allure.attachment_type.TEXT)


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
