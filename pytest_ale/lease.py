"""A sandbox on lease from the run's provider: the one acquire and release path, shared
by trial items (``trial.py``) and the public fixtures (``fixtures.py``).

A lease labels its sandbox with the run (``RUN@gwN`` on an xdist worker, so the
controller can sweep what a dead worker held) and the test id, and its release is
``Provider.release``, the one teardown path (which removes the grader's scratch folder
too, unless the sandbox is kept for debugging, ``--ale-keep``). Releasing twice releases
once.
"""

from __future__ import annotations

from .sandbox import Provider, Sandbox, SandboxSpec


class Lease:
    def __init__(self, provider: Provider, spec: SandboxSpec, *, keep: bool = False) -> None:
        spec.labels.setdefault("ale-run-id", spec.run_id)
        spec.labels.setdefault("ale-test-id", spec.trial_id[:200])
        self.provider = provider
        self.spec = spec
        self.keep = keep
        self.sandbox: Sandbox | None = None

    def acquire(self) -> Sandbox:
        """A fresh sandbox for ``spec`` (``InfrastructureError`` when the provider fails)."""
        self.sandbox = self.provider.acquire(self.spec)
        return self.sandbox

    def release(self) -> None:
        """Hand the sandbox back to the provider (no-op when none is held)."""
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is None:
            return
        self.provider.release(sandbox)
