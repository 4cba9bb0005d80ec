"""Fixtures of the provider conformance suite: one ``provider`` per entry of ``CASES``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_ale.sandbox import Provider, Sandbox, SandboxSpec

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


def spec_for(case: Case, run_id: str = "conformance", **extra: Any) -> SandboxSpec:
    return SandboxSpec(run_id=run_id, trial_id=f"tests/conformance::{uuid.uuid4().hex[:6]}", **extra)


@pytest.fixture
def sandbox(provider: Provider, case: Case) -> Iterator[Sandbox]:
    made = provider.acquire(spec_for(case))
    yield made
    provider.release(made)
