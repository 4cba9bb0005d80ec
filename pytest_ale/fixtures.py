"""The public fixtures: a sandbox and an agent for a user's own tests (README, "Fixtures").

Session-scoped (one per pytest process, so one per xdist worker), the run's own objects,
the ones trial items use:

- ``ale_provider``: the run's provider (``--ale-provider``), made on first use;
- ``ale_gateway``: this process's model gateway (started on first use), the one every
  harness talks to;
- ``ale_harness``: the agent of ``--ale-agent`` (its preset resolved once); with several,
  each test that uses it runs once per agent.

Function-scoped:

- ``ale_sandbox``: a fresh sandbox from ``ale_provider``, on a ``Lease`` for the test and
  released through ``Provider.release`` always; ``@pytest.mark.ale_sandbox(**fields)``
  sets ``SandboxSpec`` fields (``network=True``, ``workdir=...``);
- ``ale_agent``: ``run(instruction, ...) -> AgentResult``, ``ale_harness`` installed into
  ``ale_sandbox`` (once) and run on the instruction there, behind the gateway, then fenced
  (nothing it started still runs when the test looks at what it left); its log, the
  gateway's books and its trajectory are written as a trial's are (``trial.save_run``)
  to ``reports/runs/<run>/tests/<test>/``.

Any of them can be overridden in a ``conftest.py`` by a fixture of the same name.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .agents.base import Agent, AgentContext, AgentResult
from .card import DEFAULT_TIMEOUT_S
from .collect import SESSION_KEY, AleTrialWarning
from .errors import AleError
from .fence import fence
from .gateway import runtime
from .lease import Lease
from .sandbox import Provider, Sandbox, SandboxSpec
from .trial import save_run

if TYPE_CHECKING:
    from .gateway.server import Gateway
    from .session import AleSession

MARKER = "ale_sandbox"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(**fields): SandboxSpec fields for the test's ale_sandbox (pytest-ale)"
    )


def _session(request: pytest.FixtureRequest) -> AleSession:
    return request.config.stash[SESSION_KEY]


@pytest.fixture(scope="session")
def ale_provider(request: pytest.FixtureRequest) -> Provider:
    """The run's provider: the one trial items acquire their sandboxes from."""
    return _session(request).provider()


@pytest.fixture(scope="session")
def ale_gateway() -> Gateway:
    """This process's model gateway (``--ale-scripted-model``, ``--ale-replay``, ...)."""
    return runtime.gateway()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With several ``--ale-agent``, a test using ``ale_harness`` (``ale_agent`` does) runs
    once per agent, ``test_x[NAME]``, as trials do; not when a conftest overrides it."""
    if "ale_harness" not in metafunc.fixturenames:
        return
    agents = metafunc.config.stash[SESSION_KEY].agents
    defs = getattr(metafunc, "_arg2fixturedefs", {}).get("ale_harness") or ()
    if len(agents) > 1 and defs and getattr(defs[-1].func, "__module__", None) == __name__:
        metafunc.parametrize("ale_harness", agents, indirect=True, scope="session")


@pytest.fixture(scope="session")
def ale_harness(request: pytest.FixtureRequest) -> Agent:
    """The agent of ``--ale-agent`` (the first, or this test's with several): the same
    instance its trials run."""
    session = _session(request)
    return session.agent(getattr(request, "param", None) or session.agents[0])


@pytest.fixture
def ale_sandbox(request: pytest.FixtureRequest, ale_provider: Provider) -> Iterator[Sandbox]:
    """A fresh sandbox for this test, with an empty ``output/`` in its workdir, and the
    sockets the test's harness needs (the gateway's door) when it uses one."""
    session = _session(request)
    test_id = request.node.nodeid
    marker = request.node.get_closest_marker(MARKER)
    harness: Agent | None = None
    if "ale_harness" in request.fixturenames:
        harness = request.getfixturevalue("ale_harness")
    spec = SandboxSpec(
        run_id=session.sandbox_run_id(),
        trial_id=test_id,
        sockets=harness.sandbox_sockets(test_id) if harness else {},
        **(marker.kwargs if marker else {}),
    )
    lease = Lease(ale_provider, spec, keep=session.settings.keep)
    sandbox = lease.acquire()
    try:
        sandbox.mkdir(sandbox.path("output"))
        yield sandbox
    finally:
        if lease.keep:
            request.node.warn(AleTrialWarning(f"kept for debugging: {sandbox.describe()}"))
        lease.release()


@dataclass
class AgentRun:
    """``ale_agent``: runs ``harness`` on an instruction in ``sandbox``."""

    harness: Agent
    sandbox: Sandbox
    test_id: str
    artifacts: Path
    timeout_s: float
    installed: bool = False

    def __call__(
        self,
        instruction: str,
        *,
        timeout_s: float | None = None,
        model: str | None = None,
        solution: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AgentResult:
        """Run the agent once; ``solution`` is the folder the ``oracle`` runs (handed only
        to an agent that ``uses_solution``, as in a trial)."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        if not self.installed:
            self.harness.install(self.sandbox)
            self.installed = True
        context = AgentContext(
            instruction=instruction,
            timeout_s=timeout_s or self.timeout_s,
            workdir=self.sandbox.workdir,
            task_name=self.test_id,
            variant="base",
            solution=solution if self.harness.uses_solution else None,
            model=model or self.harness.model,
            env=dict(env or {}),
        )
        try:
            result = self.harness.run(self.sandbox, context)
        except BaseException:
            partial = self.harness.partial_result(self.test_id)
            if partial is not None:  # its books, written as a trial's are (never masking why)
                with contextlib.suppress(Exception):
                    save_run(self.artifacts, self.harness, partial, instruction, self.test_id)
            with contextlib.suppress(AleError):
                fence(self.sandbox)
            raise
        fence(self.sandbox)
        for problem in save_run(self.artifacts, self.harness, result, instruction, self.test_id):
            warnings.warn(problem, AleTrialWarning, stacklevel=2)
        return result


@pytest.fixture
def ale_agent(request: pytest.FixtureRequest, ale_sandbox: Sandbox, ale_harness: Agent) -> AgentRun:
    """``ale_agent(instruction, timeout_s=, model=, solution=, env=) -> AgentResult``."""
    session = _session(request)
    test_id = request.node.nodeid
    leaf = re.sub(r"[^0-9A-Za-z_.-]+", "_", test_id).strip("_")
    return AgentRun(
        harness=ale_harness,
        sandbox=ale_sandbox,
        test_id=test_id,
        artifacts=session.run_dir / "tests" / leaf,
        timeout_s=session.settings.timeout or DEFAULT_TIMEOUT_S,
    )
