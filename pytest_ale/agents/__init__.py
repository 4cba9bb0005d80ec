"""Harnesses: the ``Agent`` interface and the built-in agents (oracle, noop, command)."""

from .base import Agent, AgentContext, AgentResult, Usage

__all__ = ["Agent", "AgentContext", "AgentResult", "Usage"]
