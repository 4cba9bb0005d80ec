"""A deliberately broken provider, for the conformance suite to catch: its ``exec``
ignores ``cwd`` (every command runs in the workspace)."""

from __future__ import annotations

from typing import Any

from pytest_ale.sandbox import ExecResult

from . import ExampleProvider, ExampleSandbox


class BrokenSandbox(ExampleSandbox):
    def exec(self, cmd: Any, *, cwd: str | None = None, **kwargs: Any) -> ExecResult:
        return super().exec(cmd, **kwargs)


class BrokenProvider(ExampleProvider):
    name = "example-broken"
    sandbox_class = BrokenSandbox
