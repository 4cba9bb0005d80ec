"""Fixtures of the provider conformance suite: one ``provider`` per entry of ``CASES``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_ale.sandbox import Provider

from .cases import CASES, Case
from .env import Env


@pytest.fixture(scope="session")
def env() -> Iterator[Env]:
    shared = Env()
    yield shared
    shared.close()


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    chosen: Case = request.param
    reason = chosen.skip_reason()
    if reason:
        pytest.skip(f"{chosen.name}: {reason}")
    return chosen


@pytest.fixture
def provider(case: Case, env: Env) -> Iterator[Provider]:
    made = case.make(env)
    yield made
    made.close()
