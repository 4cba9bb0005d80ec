"""The pytest plugin: hooks only. Options, collection, selection, reporting, crash safety.

Registered through the ``pytest11`` entry point as ``ale``; ``-p no:ale`` turns it off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import fixtures, hookspecs, interrupts, liveness, options
from .collect import SESSION_KEY, TaskFile, is_task_file
from .errors import AleError
from .events import TrialEvents
from .reports.reporter import ResultsReporter
from .run_control import RunControl
from .selection import recorded_trials, select
from .session import AleSession

REPORTER = "ale-results-reporter"
WATCH_KEY = pytest.StashKey[interrupts.Watch]()
SIGNALS_KEY = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("ale_sweep"):
        return None
    session = _session(config, _settings(config))
    run_id = config.getoption("ale_run_id") or None
    try:
        with _sweeping(session, run_id):
            removed = session.provider().sweep(run_id)
    except liveness.RunBusyError as exc:
        raise pytest.UsageError(
            f"pytest-ale: {exc}: sweeping it would remove sandboxes under its running trials. "
            f"Stop it first (Ctrl-C, or kill -TERM {_controller_pid(exc)}), let it end, or pass "
            "--ale-sweep-force (its trials whose sandbox vanishes become infrastructure errors)"
        ) from None
    except AleError as exc:
        raise pytest.UsageError(f"pytest-ale: sweep failed: {exc}") from None
    finally:
        session.close()
    for entry in removed:
        print(f"pytest-ale sweep: removed {entry}")
    print(f"pytest-ale sweep: {len(removed)} sandbox(es) removed by provider {session.provider_label!r}")
    return 0


@contextlib.contextmanager
def _sweeping(session: AleSession, run_id: str | None) -> Iterator[None]:
    """A sweep of a run id holds the run exclusively: refused while any of it still runs."""
    if run_id is None or not session.run_dir.is_dir():
        yield
    elif session.settings.sweep_force:
        live = liveness.live_owners(session.run_dir)
        if live:
            who = "; ".join(o.describe() for o in live)
            print(f"pytest-ale sweep: forced while run {run_id!r} still runs ({who})")
        yield
    else:
        with liveness.exclusive(session.run_dir):
            yield


def _controller_pid(exc: liveness.RunBusyError) -> str:
    pids = [o.pid for o in exc.owners if o.role == "controller"] or [o.pid for o in exc.owners]
    return str(pids[0]) if pids else "PID"


def pytest_configure(config: pytest.Config) -> None:
    session = config.stash[SESSION_KEY] = _session(config, _settings(config))
    config.pluginmanager.register(TrialEvents(config), "ale-trial-events")
    config.pluginmanager.register(fixtures, "ale-fixtures")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        config.pluginmanager.register(ResultsReporter(session), REPORTER)
        config.pluginmanager.register(RunControl(config, session), "ale-run-control")
    else:
        session.resumed = set(workerinput.get("ale_resumed", ()))
    interrupts.install()
    config.stash[SIGNALS_KEY] = True


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Join the run (``liveness``) before any trial, and as the controller, read what
    ``--ale-resume`` takes over: before the workers start, so they all get the same."""
    config = session.config
    ale: AleSession = config.stash[SESSION_KEY]
    workerinput = getattr(config, "workerinput", None)
    results_file = ale.run_dir / "results.jsonl"
    if config.option.collectonly:
        if ale.settings.resume and workerinput is None:
            ale.resumed = set(recorded_trials(results_file, clean=False))
        return
    try:
        lock = ale.hold_run(workerinput["workerid"] if workerinput else "controller")
    except liveness.RunBusyError as exc:
        raise pytest.UsageError(
            f"pytest-ale: {exc}: wait for it to end or stop it (a second run with this "
            "--ale-run-id would mix their results), or choose another --ale-run-id"
        ) from None
    watch = config.stash[WATCH_KEY] = interrupts.Watch(
        lock.heartbeat, liveness.HEARTBEAT_S, watch_parent=workerinput is not None
    )
    watch.start()
    if ale.settings.resume and workerinput is None:
        recorded = recorded_trials(results_file)
        ale.resumed = set(recorded)
        reporter = config.pluginmanager.get_plugin(REPORTER)
        if reporter is not None:
            reporter.add_resumed(recorded)


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
    """xdist: every worker shares the controller's run id and the trials it resumes."""
    session: AleSession = node.config.stash[SESSION_KEY]
    node.workerinput["ale_run_id"] = session.settings.run_id
    node.workerinput["ale_resumed"] = sorted(session.resumed)


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
    select(config, items, session.settings, session.resumed)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker lets go of everything first, shielded from signals: a Ctrl-C now (or
    a controller gone, so that xdist's own teardown raises) would skip unconfigure, and the
    controller would wait for a worker that keeps the run's lock."""
    if hasattr(session.config, "workerinput"):
        interrupts.shield()
        _close(session.config)


def pytest_unconfigure(config: pytest.Config) -> None:
    _close(config)
    if config.stash.get(SIGNALS_KEY, False):
        interrupts.uninstall()


def _close(config: pytest.Config) -> None:
    watch = config.stash.get(WATCH_KEY, None)
    if watch is not None:
        watch.stop()
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()  # the provider (every sandbox) first, then the run lock
