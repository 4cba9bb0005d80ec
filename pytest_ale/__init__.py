"""pytest-ale: evaluate AI agent harnesses on long-horizon tasks, each task a pytest test.

The names a task author or a third-party provider/harness needs are importable from here.
"""

from .agents.base import Agent, AgentContext, AgentResult, Usage
from .errors import (
    AleError,
    ConfigError,
    GraderError,
    InfrastructureError,
    SandboxGoneError,
    StagingError,
    TaskDefinitionError,
)
from .sandbox import ExecResult, Provider, Sandbox, SandboxSpec

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentContext",
    "AgentResult",
    "AleError",
    "ConfigError",
    "ExecResult",
    "GraderError",
    "InfrastructureError",
    "Provider",
    "Sandbox",
    "SandboxGoneError",
    "SandboxSpec",
    "StagingError",
    "TaskDefinitionError",
    "Usage",
]
