"""The pytest plugin: hooks only. Options, collection, selection, reporting, crash safety.

Registered through the ``pytest11`` entry point as ``ale``; ``-p no:ale`` turns it off.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from . import options
from .collect import SESSION_KEY, TaskFile, is_task_file
from .errors import AleError
from .reports.reporter import ResultsReporter
from .selection import select
from .session import AleSession

REPORTER = "ale-results-reporter"


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("ale_sweep"):
        return None
    session = _session(config, _settings(config))
    try:
        removed = session.provider().sweep(config.getoption("ale_run_id") or None)
    except AleError as exc:
        raise pytest.UsageError(f"pytest-ale: sweep failed: {exc}") from None
    finally:
        session.close()
    for entry in removed:
        print(f"pytest-ale sweep: removed {entry}")
    print(f"pytest-ale sweep: {len(removed)} sandbox(es) removed by provider {session.settings.provider!r}")
    return 0


def pytest_configure(config: pytest.Config) -> None:
    session = config.stash[SESSION_KEY] = _session(config, _settings(config))
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ResultsReporter(session), REPORTER)
    _terminate_like_interrupt()


def _settings(config: pytest.Config) -> options.Settings:
    try:
        return options.Settings.from_config(config)
    except AleError as exc:
        raise pytest.UsageError(f"pytest-ale: {exc}") from None


def _session(config: pytest.Config, settings: options.Settings) -> AleSession:
    try:
        return AleSession(config, settings)
    except AleError as exc:
        raise pytest.UsageError(f"pytest-ale: {exc}") from None


def _terminate_like_interrupt() -> None:
    """SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so every sandbox is released."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker shares the controller's run id."""
    node.workerinput["ale_run_id"] = node.config.stash[SESSION_KEY].settings.run_id


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: a worker died (SIGKILL, OOM): remove the sandboxes it held."""
    if not error:
        return
    session: AleSession = node.config.stash[SESSION_KEY]
    worker = node.gateway.id
    try:
        removed = session.provider().sweep(session.sandbox_run_id(worker))
    except AleError as exc:
        removed = [f"(sweep failed: {exc})"]
    node.config.pluginmanager.get_plugin("terminalreporter").write_line(
        f"pytest-ale: worker {worker} died; swept {len(removed)} sandbox(es) it held"
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_task_file(file_path):
        return TaskFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session: AleSession = config.stash[SESSION_KEY]
    resumed = select(config, items, session.settings, session.run_dir / "results.jsonl")
    reporter = config.pluginmanager.get_plugin(REPORTER)
    if resumed and reporter is not None:
        reporter.add_resumed(resumed)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
