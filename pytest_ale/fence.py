"""The fence: after the agent, nothing it started may still run (one module, every provider).

Each provider supplies two primitives (``Sandbox.kill_all``: kill every process of the
agent by something a process cannot leave; ``Sandbox.agent_processes``: how many are
alive). ``fence`` loops over them until the sandbox is verifiably empty, within a
deadline; ``verify`` checks again right before grading, so a process that slipped through
(or a sandbox that lies) is caught before the grader reads a single file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import InfrastructureError
from .sandbox import Sandbox

#: how long the fence may take before the trial is an infrastructure error
FENCE_DEADLINE_S = 60.0


@dataclass
class FenceReport:
    """What one fence did."""

    killed: int = 0
    rounds: int = 0


class FenceBreached(InfrastructureError):
    """The sandbox still runs agent processes after the fence: never graded."""


def fence(sandbox: Sandbox, deadline_s: float = FENCE_DEADLINE_S) -> FenceReport:
    """Kill every agent process, repeatedly, until ``agent_processes`` reports none."""
    report = FenceReport()
    stop = time.monotonic() + deadline_s
    while True:
        report.rounds += 1
        report.killed += sandbox.kill_all()
        left = sandbox.agent_processes()
        if left == 0:
            return report
        if time.monotonic() > stop:
            raise FenceBreached(
                f"fence: {left} agent process(es) still alive after {report.rounds} rounds "
                f"of killing in {deadline_s:.0f} s; the trial is not graded"
            )
        time.sleep(min(0.05 * report.rounds, 0.5))


def verify(sandbox: Sandbox) -> int:
    """Right before grading: 0 when still empty; else fence again and say how many were
    found (a breach is the provider's fault, reported as a warning, and then re-fenced)."""
    left = sandbox.agent_processes()
    if left:
        fence(sandbox)
    return left
