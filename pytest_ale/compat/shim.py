"""The task-facing surface of ``cua_bench``, for when the real package is not usable.

ALE task files do ``import cua_bench as cb`` and use ``cb.tasks_config``,
``cb.setup_task``, ``cb.evaluate_task`` (decorators taking ``split=``), ``cb.Task`` and
``cb.DesktopSession`` (as a type). The real package (0.2+) needs Python >= 3.12 and a
remote desktop server; on Python 3.11 only an empty 0.1.0 placeholder installs.

``ensure_cua_bench()`` leaves a usable real package alone (its decorators tag functions the
same way these do, with ``_td_type``) and otherwise puts this stand-in into
``sys.modules["cua_bench"]``. pytest-ale always drives tasks with its own session.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .session import SandboxSession

#: the attribute both the real decorators and these set on a decorated function
TAG = "_td_type"
KINDS = ("tasks_config", "setup_task", "evaluate_task", "solve_task")
REQUIRED = ("tasks_config", "setup_task", "evaluate_task", "Task")


@dataclass
class Task:
    """One runnable variant: the instruction, its metadata and the machine it needs."""

    description: str
    task_id: str | None = None
    metadata: dict[str, Any] | None = None
    computer: dict[str, Any] | None = None


def _decorator(kind: str) -> Callable[..., Any]:
    """``@cb.<kind>``, ``@cb.<kind>("train")`` and ``@cb.<kind>(split="train")``."""

    def tag(func: Callable[..., Any], split: str) -> Callable[..., Any]:
        # tag the function itself (no wrapper): coroutine functions stay coroutine functions
        setattr(func, TAG, kind)
        func._td_split = split  # type: ignore[attr-defined]
        return func

    def decorator(arg: Any = None, /, *args: Any, split: str = "train", **kwargs: Any) -> Any:
        if callable(arg):
            return tag(arg, split)
        if arg is not None and not isinstance(arg, str):
            raise TypeError(f"@cb.{kind}: the first argument must be a split name, not {arg!r}")
        return functools.partial(tag, split=arg or split)

    decorator.__name__ = kind
    decorator.__doc__ = f"Mark the task's {kind.replace('_', ' ')} function (pytest-ale stand-in)."
    return decorator


def build_module() -> types.ModuleType:
    """A fresh ``cua_bench`` stand-in module."""
    module = types.ModuleType("cua_bench", __doc__)
    module.__version__ = "0+pytest-ale"  # type: ignore[attr-defined]
    module.__pytest_ale_shim__ = True  # type: ignore[attr-defined]
    module.Task = Task  # type: ignore[attr-defined]
    module.DesktopSession = SandboxSession  # type: ignore[attr-defined]
    for kind in KINDS:
        setattr(module, kind, _decorator(kind))

    def __getattr__(name: str) -> Any:
        raise AttributeError(
            f"cua_bench.{name} is not provided by pytest-ale's cua_bench stand-in (only "
            f"{', '.join((*REQUIRED, 'DesktopSession', 'solve_task'))}); install the real "
            "cua-bench (Python >= 3.12) if the task needs it"
        )

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


def usable(module: types.ModuleType | None) -> bool:
    """Whether ``module`` offers what task files use (the 0.1.0 placeholder does not)."""
    return module is not None and all(callable(getattr(module, name, None)) for name in REQUIRED)


def ensure_cua_bench() -> types.ModuleType:
    """Make ``import cua_bench`` give a usable module; return it."""
    current = sys.modules.get("cua_bench")
    if usable(current):
        assert current is not None
        return current
    if current is None and _findable():
        try:
            real = importlib.import_module("cua_bench")
        except Exception:  # a broken or incompatible install: fall back to the stand-in
            real = None
        if usable(real):
            assert real is not None
            return real
    shim = build_module()
    sys.modules["cua_bench"] = shim
    return shim


def _findable() -> bool:
    try:
        return importlib.util.find_spec("cua_bench") is not None
    except (ImportError, ValueError):
        return False


def is_shim(module: types.ModuleType | None) -> bool:
    return bool(getattr(module, "__pytest_ale_shim__", False))
