"""The controller's reporter: gathers finished trials, prints the results table, writes
``summary.json`` (then calls ``pytest_ale_summary``), and applies the ``--ale-baseline``
release gate to the exit status.

It gathers typed ``TrialResult``s through ``pytest_ale_trial_finished``, which the xdist
controller gets for every worker's trial, so it works the same with and without ``-n``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ..errors import AleError
from .baseline import GateReport, gate, load_baseline
from .summary import Row, row_from_result, summary_data, table, write_summary

if TYPE_CHECKING:
    from ..outcome import TrialResult
    from ..session import AleSession


class ResultsReporter:
    def __init__(self, session: AleSession) -> None:
        self.session = session
        self.rows: list[Row] = []
        #: trials ``--ale-resume`` took from results.jsonl: in the table, summary and exit code
        self.resumed: list[Row] = []
        self.gate_reports: list[GateReport] = []
        self.gate_error: str | None = None

    def add_resumed(self, recorded: dict[str, dict[str, Any]]) -> None:
        self.resumed = [row_from_result(row) for row in recorded.values()]
        self.rows.extend(self.resumed)

    def pytest_ale_trial_finished(self, item: pytest.Item | None, result: TrialResult) -> None:
        self.rows.append(row_from_result(result.to_json()))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        settings = self.session.settings
        if self.rows:
            data = summary_data(self.rows, settings.run_id)
            write_summary(data, settings.output / "summary.json")
            session.config.hook.pytest_ale_summary(config=session.config, rows=list(self.rows), summary=data)
        if self.resumed and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            # the exit status covers the whole run: a trial that failed before the resume
            # fails it still (and a run whose every trial was resumed is no empty run)
            failed = any(row.status != "passed" for row in self.resumed)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK
        if settings.baseline is None or session.exitstatus not in (0, 1):
            return
        try:
            self.gate_reports = gate(self.rows, load_baseline(settings.baseline), settings.gate_alpha)
        except AleError as exc:
            self.gate_error = str(exc)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        # with a baseline, the gate decides: failed trials are expected, significant drops not
        failed = any(report.failed for report in self.gate_reports)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        settings = self.session.settings
        if self.rows:
            terminalreporter.section("pytest-ale results")
            for line in table(self.rows):
                terminalreporter.write_line(line)
            if self.resumed:
                failed = sum(row.status != "passed" for row in self.resumed)
                terminalreporter.write_line(
                    f"resumed: {len(self.resumed)} trial(s) recorded earlier in run "
                    f"{settings.run_id} ({failed} not passed) are included above and in the exit status"
                )
            terminalreporter.write_line(
                f"results: {self.session.run_dir / 'results.jsonl'}  "
                f"summary: {settings.output / 'summary.json'}"
            )
        if self.gate_error or self.gate_reports:
            terminalreporter.section("pytest-ale release gate")
            if self.gate_error:
                terminalreporter.write_line(self.gate_error, red=True)
            for report in self.gate_reports:
                for i, line in enumerate(report.lines()):
                    terminalreporter.write_line(
                        line, red=report.failed and i == 0, green=not report.failed and i == 0
                    )
