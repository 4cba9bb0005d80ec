"""The conformance suite's fixtures here: ``ale_conformance_target`` is every built-in
provider of ``CASES`` in turn, on the loopback services of one shared ``Env``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_ale.testing import Target

from .cases import CASES, Case
from .env import Env


@pytest.fixture(scope="session")
def env() -> Iterator[Env]:
    shared = Env()
    yield shared
    shared.close()


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def ale_conformance_target(request: pytest.FixtureRequest, env: Env) -> Target:
    case: Case = request.param
    return case.target(env)
