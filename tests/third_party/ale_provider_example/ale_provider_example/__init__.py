"""``example``: a pytest-ale provider from outside the package, built on its public
interface only (``pytest_ale.sandbox``, ``pytest_ale.staging``, ``pytest_ale.errors``):
each sandbox is a folder on this host, its commands host processes in it.

It shares the host's filesystem, so it is no isolation for a hostile agent; it shows what
a provider owes the harness, and passes the conformance suite::

    pytest -p pytest_ale.testing --ale-conformance=example

As root each sandbox's agent runs under a uid of its own (``setpriv``: no groups, no
capabilities, ``no_new_privs``); the fence is ``kill -9 -1`` as that uid. Grader commands
run as the host's account. A sandbox folder's ``owner.json`` (run id, expiry) is what
``sweep`` reads. Options (``ExampleOptions``): ``root`` (where sandbox folders go),
``max_output_mb``, ``max_output_files``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pytest_ale.errors import InfrastructureError
from pytest_ale.sandbox import Provider, Sandbox, SandboxSpec, expired, run_id_matches
from pytest_ale.typed_options import OutputCaps

from .sandbox import OWNER, ExampleSandbox, remove

__all__ = ["ExampleProvider", "ExampleSandbox"]

#: the uids given to agents when pytest runs as root, one per live sandbox
AGENT_UIDS = range(1_500_000, 1_600_000)


class ExampleOptions(OutputCaps):
    """``max_output_mb`` and ``max_output_files`` (``OutputCaps``), and where folders go."""

    root: str = os.path.join(tempfile.gettempdir(), "ale-example")


class ExampleProvider(Provider):
    name = "example"
    capabilities: ClassVar[frozenset[str]] = frozenset({"linux"})
    Options = ExampleOptions
    options: ExampleOptions
    sandbox_class: ClassVar[type[ExampleSandbox]] = ExampleSandbox

    def __init__(self, options: ExampleOptions | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.base = Path(self.options.root)
        (self.base / "uids").mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)  # the agents' uids reach their own folders below

    def acquire(self, spec: SandboxSpec) -> ExampleSandbox:
        root = Path(tempfile.mkdtemp(prefix="sbx-", dir=self.base))
        root.chmod(0o755)
        try:
            uid = self._claim_uid(root) if os.geteuid() == 0 else None
            sandbox = self.sandbox_class(spec, root, uid, self.options)
        except OSError as exc:
            remove(root)
            raise InfrastructureError(f"example provider: cannot make a sandbox in {root}: {exc}") from exc
        self.held[sandbox] = root
        return sandbox

    def release(self, sandbox: Sandbox) -> None:
        """The one teardown path: kill what the agent still runs, remove what its uid left in
        the host's temporary folders, the grader's scratch folder and the sandbox's folder,
        free its uid. Twice, after ``close`` or after a sweep: harmless."""
        root = self.held.pop(sandbox, None)
        sandbox.close()
        if root is None or self.options.keep:
            return
        if sandbox.grader_scratch_made is not None:  # in this host's /tmp
            shutil.rmtree(sandbox.grader_scratch_made, ignore_errors=True)
        remove(root)

    def _claim_uid(self, root: Path) -> int:
        for uid in random.sample(AGENT_UIDS, 50):
            try:
                with open(self.base / "uids" / str(uid), "x") as claim:
                    claim.write(str(root))
                return uid
            except FileExistsError:
                continue
        raise InfrastructureError("example provider: no free agent uid")

    def sweep(self, run_id: str | None = None) -> list[str]:
        removed = []
        for folder in sorted(self.base.glob("sbx-*")):
            try:
                owner = json.loads((folder / OWNER).read_text())
            except (OSError, ValueError):
                continue
            if run_id is not None:
                doomed = run_id_matches(owner.get("run_id"), run_id)
            else:
                doomed = expired(str(owner.get("expires")))
            if doomed:
                remove(folder)
                removed.append(str(folder))
        return removed
