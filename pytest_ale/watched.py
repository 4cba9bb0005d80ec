"""The provider as trials see it: no new sandbox once the run stops, and a sandbox that
vanished under its trial (a forced sweep, ``docker rm -f``, a reclaimed VM) makes the
trial an infrastructure error, never a score.

A sandbox removed mid-agent often looks like an agent that failed: its command was
killed, ``output/`` is missing, the grader gives 0. So at release, when the trial ended
without an infrastructure error, the sandbox is asked to run ``true``; if it cannot, the
trial raises ``SandboxGoneError`` instead of keeping the score (its retry then runs on a
fresh sandbox). The agent cannot fake this: its processes are fenced by then, and the
sandbox itself (container, VM, the local trial folder outside its view) is not its own.
"""

from __future__ import annotations

import sys
from types import NotImplementedType
from typing import Any

from . import interrupts
from .errors import InfrastructureError, SandboxGoneError
from .sandbox import Provider, Sandbox, SandboxSpec

PROBE_TIMEOUT_S = 60


class WatchedProvider(Provider):
    """Wraps the session's provider for its trials; everything else goes to ``inner``."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.options = inner.options
        self.name = inner.name  # type: ignore[misc]
        self.capabilities = inner.capabilities  # type: ignore[misc]

    def acquire(self, spec: SandboxSpec) -> Sandbox:
        reason = interrupts.stopping()
        if reason:
            raise KeyboardInterrupt(f"the run is stopping ({reason}): no new sandbox")
        return self.inner.acquire(spec)

    def release(self, sandbox: Sandbox) -> None:
        in_flight = sys.exc_info()[1]
        gone = None
        if not interrupts.stopping() and (in_flight is None or _graded_fault(in_flight)):
            gone = vanished(sandbox)
        self.inner.release(sandbox)
        if gone:
            raise SandboxGoneError(
                f"the sandbox vanished during the trial ({gone}); removed by a sweep "
                "(--ale-sweep-force) or by hand? The trial's score is not kept"
            ) from in_flight

    def release_held(self) -> None:
        self.inner.release_held()

    def sweep(self, run_id: str | None = None) -> list[str]:
        return self.inner.sweep(run_id)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _graded_fault(exc: BaseException) -> bool:
    """An exception that a vanished sandbox may have caused and that is no infrastructure
    error yet (a grader that could not read the sandbox, say)."""
    return isinstance(exc, Exception) and not isinstance(exc, InfrastructureError)


def vanished(sandbox: Sandbox) -> str | None:
    """Why ``sandbox`` is no longer there, or ``None`` when it still runs commands."""
    if getattr(sandbox, "closed", False):
        return None  # released already (by the trial itself): nothing to ask
    quick = _quick(sandbox)
    if quick is not NotImplemented:
        return quick
    try:
        done = sandbox.exec(["true"], timeout=PROBE_TIMEOUT_S)
    except InfrastructureError as exc:
        return str(exc)
    if done.exit_code != 0 and sandbox.spec.os == "linux":
        return f"`true` exited {done.exit_code}: {(done.stderr or done.stdout).strip()[:200]}"
    return None


def _quick(sandbox: Sandbox) -> str | NotImplementedType | None:
    """The same question without running a command, where the sandbox's own handle tells
    (the local trial folder, an engine's container): ``NotImplemented`` elsewhere."""
    local = sys.modules.get("pytest_ale.providers.local_sandbox")
    if local is not None and isinstance(sandbox, local.LocalSandbox):
        # the trial folder with this sandbox's marker, out of the agent's view (a folder
        # made again by a later step of the trial is not the sandbox)
        try:
            same = (sandbox.root / local.MARKER_FILE).read_text() == sandbox.marker
        except OSError:
            same = False
        return None if same else f"its folder {sandbox.root} was removed"
    docker = sys.modules.get("pytest_ale.providers.docker.sandbox")
    if docker is not None and isinstance(sandbox, docker.DockerSandbox):
        try:
            state = sandbox.api.inspect_container(sandbox.id).get("State") or {}
        except Exception as exc:  # NotFound, or an engine that no longer answers
            return f"container {sandbox.name}: {exc}"
        return None if state.get("Running") else f"container {sandbox.name} is {state.get('Status')}"
    return NotImplemented
