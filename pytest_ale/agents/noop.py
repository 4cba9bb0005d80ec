"""``noop``: does nothing. A grader that gives it more than 0 is broken."""

from __future__ import annotations

from ..sandbox import Sandbox
from .base import Agent, AgentContext, AgentResult


class NoopAgent(Agent):
    name = "noop"

    def run(self, sandbox: Sandbox, context: AgentContext) -> AgentResult:
        return AgentResult(exit_code=0, log="noop: did nothing\n", version="builtin")
