"""The conformance suite's pytest plugin: the ``--ale-conformance`` option and the fixtures
every check uses (``ale_conformance_target``, ``ale_conformance_provider``,
``ale_conformance_sandbox``: named apart from the run's own ``ale_provider`` and
``ale_sandbox``, which are the session's provider and a trial's sandbox).

``--ale-conformance=NAME[,KEY=VALUE...]`` adds the shipped checks (``suite.py``) to what is
collected (in place of the default test paths when none are given) and checks provider
``NAME`` with those options. A conftest may instead override ``ale_conformance_target``
(parametrized, it checks several providers) and import the checks into a test module:
``from pytest_ale.testing.suite import *``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..errors import AleError
from ..sandbox import Provider, Sandbox
from .target import Target, from_option, spec_for

SUITE = Path(__file__).with_name("suite.py")
TARGET_KEY = pytest.StashKey[Target]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("ale").addoption(
        "--ale-conformance",
        dest="ale_conformance",
        default=None,
        metavar="NAME[,KEY=VALUE...]",
        help="run the provider conformance suite (pytest_ale.testing) against provider NAME "
        "(a preset or a registered kind), with these options",
    )


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("ale_conformance")
    if not value:
        return
    try:
        config.stash[TARGET_KEY] = from_option(value, config.rootpath, config.invocation_params.dir)
    except AleError as exc:
        raise pytest.UsageError(f"pytest-ale: {exc}") from None
    here = str(SUITE.parent)
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [here]
    elif here not in config.args:  # an xdist worker is handed the controller's, with it
        config.args = [*config.args, here]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """``suite.py`` is a test module whatever ``python_files`` says (its folder is what
    ``--ale-conformance`` adds, so its tests read ``suite.py::test_...``)."""
    if file_path == SUITE and parent.config.getoption("ale_conformance"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def ale_conformance_target(request: pytest.FixtureRequest) -> Target:
    """The provider under check: ``--ale-conformance``'s, unless a conftest overrides this."""
    target = request.config.stash.get(TARGET_KEY, None)
    if target is None:
        pytest.fail(
            "no provider to check: pass --ale-conformance=NAME[,KEY=VALUE...] or override the "
            "ale_conformance_target fixture (returning a pytest_ale.testing.Target)",
            pytrace=False,
        )
    return target


@pytest.fixture
def ale_conformance_provider(ale_conformance_target: Target) -> Iterator[Provider]:
    """A fresh provider of the target, closed after the check."""
    reason = ale_conformance_target.skip_reason()
    if reason:
        pytest.skip(f"{ale_conformance_target.name}: {reason}")
    made = ale_conformance_target.make()
    yield made
    made.close()


@pytest.fixture
def ale_conformance_sandbox(
    ale_conformance_provider: Provider, ale_conformance_target: Target
) -> Iterator[Sandbox]:
    """A fresh sandbox of that provider, released after the check."""
    made = ale_conformance_provider.acquire(spec_for(ale_conformance_target))
    yield made
    ale_conformance_provider.release(made)
