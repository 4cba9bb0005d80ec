"""The pytest plugin: hooks only. Options, collection, reporting and the summary table.

Registered through the ``pytest11`` entry point as ``ale``; ``-p no:ale`` turns it off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import options
from .collect import SESSION_KEY, TaskFile, is_task_file
from .errors import AleError
from .reports.summary import Row, row_from_properties, table, write_summary
from .session import AleSession


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("ale_sweep"):
        return None
    settings = _settings(config)
    session = _session(config, settings)
    removed = session.provider().sweep(config.getoption("ale_run_id") or None)
    for entry in removed:
        print(f"pytest-ale sweep: removed {entry}")
    print(f"pytest-ale sweep: {len(removed)} sandbox(es) removed by provider {settings.provider!r}")
    session.close()
    return 0


def pytest_configure(config: pytest.Config) -> None:
    settings = _settings(config)
    session = config.stash[SESSION_KEY] = _session(config, settings)
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ResultsReporter(session), "ale-results-reporter")


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


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker shares the controller's run id."""
    node.workerinput["ale_run_id"] = node.config.stash[SESSION_KEY].settings.run_id


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_task_file(file_path):
        return TaskFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session: AleSession = config.stash[SESSION_KEY]
    wanted = _listed_tasks(session)
    if wanted is None:
        return
    kept, dropped = [], []
    for item in items:
        folder = getattr(item, "task_folder", None)
        if folder is None or folder.resolve() in wanted:
            kept.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _listed_tasks(session: AleSession) -> set[Path] | None:
    lists = session.settings.task_lists
    if not lists:
        return None
    wanted: set[Path] = set()
    for task_list in lists:
        path = task_list if task_list.is_absolute() else session.settings.rootdir / task_list
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise pytest.UsageError(f"pytest-ale: cannot read task list {path}: {exc}") from None
        for line in lines:
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            candidates = [session.settings.rootdir / entry, path.parent / entry]
            found = next((c for c in candidates if (c / "main.py").is_file()), None)
            if found is None:
                raise pytest.UsageError(
                    f"pytest-ale: {path}: {entry!r} is not a task folder (no main.py under "
                    f"{candidates[0]}); fix or remove that line"
                )
            wanted.add(found.resolve())
    return wanted


class ResultsReporter:
    """Gathers finished trials from test reports (on the xdist controller too) and prints
    the results table at the end of the run."""

    def __init__(self, session: AleSession) -> None:
        self.session = session
        self.rows: list[Row] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            row = row_from_properties(dict(report.user_properties))
            if row is not None:
                self.rows.append(row)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        settings = self.session.settings
        terminalreporter.section("pytest-ale results")
        for line in table(self.rows):
            terminalreporter.write_line(line)
        summary = settings.output / "summary.json"
        write_summary(self.rows, summary, settings.run_id)
        terminalreporter.write_line(f"results: {self.session.run_dir / 'results.jsonl'}  summary: {summary}")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
