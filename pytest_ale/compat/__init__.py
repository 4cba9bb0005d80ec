"""The ALE adapter: runs Agents' Last Exam (``cua_bench``-style) task files unmodified.

``load_ale_task`` is what the core calls for a ``main.py`` that mentions ``cua_bench``.
``shim`` provides ``cua_bench`` when the real package is absent or unusable, ``session``
maps ``cb.DesktopSession`` onto a ``Sandbox``, ``modules`` imports task code in an
isolated scope, and ``definition`` drives ALE's load / start / evaluate order.
"""

from .definition import AleTask, load_ale_task
from .session import CommandResult, SandboxSession
from .shim import ensure_cua_bench

__all__ = ["AleTask", "CommandResult", "SandboxSession", "ensure_cua_bench", "load_ale_task"]
