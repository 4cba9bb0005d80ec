"""pytest-ale's hooks for extensions: pluggy hookspecs, added in ``pytest_addhooks``.

A ``conftest.py`` or a plugin implements any of them by name (README, "Hooks"). They hand
out typed objects (``TrialResult``, ``Row``, ``Preset``), never the string properties that
JUnit XML carries. ``events.py`` fires ``pytest_ale_trial_finished``; the session asks
``pytest_ale_make_provider``; the results reporter fires ``pytest_ale_summary``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .outcome import TrialResult
    from .presets import Preset
    from .reports.summary import Row
    from .sandbox import Provider


@pytest.hookspec
def pytest_ale_trial_finished(item: pytest.Item | None, result: TrialResult) -> None:
    """A trial ended (graded, or an error: ``result.status``), at its item's teardown.

    Called once in the process that ran the trial, with its ``item``; under xdist once
    more on the controller, with ``item=None`` and ``result`` rebuilt from the worker's
    report (the same fields). A task that could not be loaded ends too, as a result whose
    ``agent`` is ``"(broken task)"`` and ``status`` is ``error``. Trials skipped before
    they ran (``--ale-resume``, a provider that cannot host them) do not end here.
    """


@pytest.hookspec(firstresult=True)
def pytest_ale_make_provider(config: pytest.Config, preset: Preset) -> Provider | None:
    """Make the run's provider (once per process, when the first sandbox is needed).

    ``preset`` is the resolved ``--ale-provider`` (its ``name``, ``kind`` and ``options``,
    ``--ale-provider-opt`` and ``--ale-keep`` merged in). Return a ``Provider`` to supply
    it (the first one returned wins), or ``None`` to leave it to the registered ``kind``.
    The options are the preset's as written (a mapping): a registered kind's were checked
    against its ``Options`` at configure time; a provider the hook makes checks them
    against its own ``Options`` when constructed from them (``typed_options``).
    """


@pytest.hookspec
def pytest_ale_summary(config: pytest.Config, rows: list[Row], summary: dict[str, Any]) -> None:
    """The run's figures, on the controller at the end of the session: one ``Row`` per
    finished (and resumed) trial, and ``summary``, what ``summary.json`` holds. Called
    when at least one trial finished or was resumed."""
