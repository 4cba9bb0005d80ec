"""Firing ``pytest_ale_trial_finished`` (``hookspecs.py``): where a trial ran, and on the
xdist controller, from the result the worker's report carries.

At a trial item's teardown the hook is called with the item and its typed
``TrialResult``; the teardown report then carries the result as plain JSON
(``report.ale_result``), which xdist sends on like any report attribute, so the
controller calls the hook once more with ``item=None`` and the result rebuilt.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from .outcome import TrialResult

#: the report attribute that carries a finished trial's result (as ``to_json()``)
REPORT_ATTR = "ale_result"


def finished_result(item: pytest.Item) -> TrialResult | None:
    """The result of the trial ``item`` ran, if it is a trial item that finished."""
    result = getattr(item, "result", None)
    return result if isinstance(result, TrialResult) else None


class TrialEvents:
    """Registered in every pytest process (the controller and each xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        """After the item's teardown, even one that raised; the innermost wrapper, so
        inside allure-pytest's (which closes the test's Allure result after it)."""
        try:
            return (yield)
        finally:
            result = finished_result(item)
            if result is not None:
                item.config.hook.pytest_ale_trial_finished(item=item, result=result)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        result = finished_result(item)
        if call.when == "teardown" and result is not None:
            setattr(report, REPORT_ATTR, result.to_json())
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """The controller, for a report from an xdist worker (``report.node``)."""
        data = getattr(report, REPORT_ATTR, None)
        if self.is_worker or data is None or getattr(report, "node", None) is None:
            return
        self.config.hook.pytest_ale_trial_finished(item=None, result=TrialResult.from_json(data))
