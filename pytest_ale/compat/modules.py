"""Importing and calling ALE task code in a deliberate, isolated Python context.

ALE's shared helpers (``tasks/common_config.py``, ``tasks/linux_runtime.py``) read
``REMOTE_ROOT_DIR``, ``REMOTE_OUTPUT_DIR`` and ``OS_TYPE`` once, when first imported, and
tasks import bare-named helpers (31 of them a module called ``score_outputs``) from their
own ``scripts/`` folder. ``task_scope`` makes every import and call of one task see:

- the environment variables set to the values this trial needs;
- ``sys.path`` starting with the folder holding ``tasks/``, the task's ``scripts/`` and
  the task folder (restored afterwards, so a task's own ``sys.path.insert`` does not leak);
- ``tasks`` pinned to this tree's ``tasks/`` folder, and no module left over from another
  task: modules loaded from the tree are dropped when the scope ends, so the next scope
  imports them afresh (with its own environment) and ``score_outputs`` never collides.

``TaskModule`` imports a ``main.py`` inside such a scope and finds its three functions;
the import and every call run contained (``taskguard``: exits, forks, leftover processes
and hangs become the task's error).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import importlib.machinery
import inspect
import itertools
import os
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..card import DEFAULT_IMPORT_TIMEOUT_S
from ..errors import AleError, TaskDefinitionError
from ..loader import import_task_module, module_name_for
from ..taskguard import run_task_code
from .shim import TAG, ensure_cua_bench

_counter = itertools.count(1)
#: names of imported task modules; ``TaskModule.discard`` removes them, scopes leave them
MODULE_PREFIX = "ale_compat_"


def tasks_package_dir(folder: Path) -> Path | None:
    """The ``tasks/`` folder a task lives under (``<root>/tasks/<domain>/<task>``), if any."""
    for parent in folder.resolve().parents:
        if parent.name == "tasks":
            return parent
    return None


@dataclass(frozen=True)
class Scope:
    """What one task's code may see: its tree, its folder and its environment."""

    folder: Path
    env: Mapping[str, str]

    @property
    def tasks_dir(self) -> Path | None:
        return tasks_package_dir(self.folder)

    def roots(self) -> list[Path]:
        """Folders whose modules belong to the task (dropped when a scope ends)."""
        tasks_dir = self.tasks_dir
        return [tasks_dir] if tasks_dir else [self.folder.resolve()]

    def path_entries(self) -> list[str]:
        entries = []
        if self.tasks_dir:
            entries.append(str(self.tasks_dir.parent))
        scripts = self.folder / "scripts"
        if scripts.is_dir():
            entries.append(str(scripts.resolve()))
        entries.append(str(self.folder.resolve()))
        return entries


@contextlib.contextmanager
def task_scope(scope: Scope, keep: str | None = None) -> Iterator[None]:
    """Run the body with the task's environment, ``sys.path`` and a clean module table.

    ``keep`` names a module (the task's own) that survives the scope.
    """
    ensure_cua_bench()
    saved_env = {name: os.environ.get(name) for name in scope.env}
    saved_path = list(sys.path)
    roots = [str(r.resolve()) for r in scope.roots()]
    displaced = {name: sys.modules.pop(name) for name in list(sys.modules) if _is_tasks_module(name)}
    _drop_modules_under(roots, keep, list(sys.modules), resolve=False)
    before = set(sys.modules)
    os.environ.update(scope.env)
    sys.path[:0] = scope.path_entries()
    if scope.tasks_dir and not (scope.tasks_dir / "__init__.py").is_file():
        sys.modules["tasks"] = _namespace_package("tasks", scope.tasks_dir)
    try:
        yield
    finally:
        for name in [n for n in sys.modules if _is_tasks_module(n)]:
            del sys.modules[name]
        _drop_modules_under(roots, keep, [n for n in sys.modules if n not in before], resolve=True)
        sys.modules.update(displaced)
        sys.path[:] = saved_path
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _is_tasks_module(name: str) -> bool:
    return name == "tasks" or name.startswith("tasks.")


def _namespace_package(name: str, folder: Path) -> types.ModuleType:
    """A package module whose submodules come from ``folder`` only (ALE's ``tasks/`` has no
    ``__init__.py``; a ``tasks`` package elsewhere on ``sys.path`` must not win)."""
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    module = types.ModuleType(name)
    module.__spec__ = spec
    module.__path__ = [str(folder)]
    module.__package__ = name
    return module


def _drop_modules_under(roots: list[str], keep: str | None, names: list[str], resolve: bool) -> None:
    """Remove the modules among ``names`` whose file lies under one of ``roots``."""
    prefixes = tuple(root.rstrip(os.sep) + os.sep for root in roots)
    for name in names:
        module = sys.modules.get(name)
        if name == keep or module is None or name.startswith(MODULE_PREFIX):
            continue
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):
            continue
        path = os.path.realpath(file) if resolve else os.path.abspath(file)
        if path.startswith(prefixes):
            del sys.modules[name]


@dataclass
class TaskFunctions:
    load: Callable[..., Any]
    start: Callable[..., Any] | None
    evaluate: Callable[..., Any]


class TaskModule:
    """One import of an ALE ``main.py`` under a given scope (environment and tree)."""

    def __init__(self, main_py: Path, scope: Scope, import_limit_s: float = DEFAULT_IMPORT_TIMEOUT_S) -> None:
        self.main_py = main_py
        self.scope = scope
        self.root = scope.tasks_dir or main_py.parent
        digest = hashlib.sha1(repr(sorted(scope.env.items())).encode()).hexdigest()[:8]
        prefix = f"{MODULE_PREFIX}{next(_counter)}_{digest}"
        self.name = module_name_for(main_py, prefix)
        with task_scope(scope, keep=self.name):
            self.module = import_task_module(main_py, prefix=prefix, limit_s=import_limit_s, root=self.root)
        self.functions = find_functions(self.module, main_py)

    @contextlib.contextmanager
    def scoped(self) -> Iterator[None]:
        with task_scope(self.scope, keep=self.name):
            yield

    def call(
        self,
        func: Callable[..., Any],
        *args: Any,
        what: str,
        fault: type[AleError],
        limit_s: float,
        limit_key: str,
        worker: bool = False,
    ) -> Any:
        """Call one of the task's functions (sync or async) inside its scope, contained:
        ``what`` names it in errors, ``fault`` is the error kind, ``limit_s`` its time (the
        card's ``limit_key``); with ``worker`` it runs in a worker thread (graders)."""
        with self.scoped():
            return run_task_code(
                run_maybe_async,
                func,
                *args,
                main_py=self.main_py,
                what=what,
                fault=fault,
                limit_s=limit_s,
                limit_key=limit_key,
                worker=worker,
                root=self.root,
            )

    def discard(self) -> None:
        """Forget this import (its module leaves ``sys.modules``)."""
        if sys.modules.get(self.name) is self.module:
            del sys.modules[self.name]


def find_functions(module: types.ModuleType, main_py: Path) -> TaskFunctions:
    """The functions the cua-bench decorators tagged, else ``load``/``start``/``evaluate``."""
    tagged: dict[str, Callable[..., Any]] = {}
    for value in vars(module).values():
        kind = getattr(value, TAG, None) if callable(value) else None
        if isinstance(kind, str) and kind not in tagged:
            tagged[kind] = value
    names = {"tasks_config": "load", "setup_task": "start", "evaluate_task": "evaluate"}
    found: dict[str, Callable[..., Any] | None] = {}
    for kind, name in names.items():
        func = tagged.get(kind) or getattr(module, name, None)
        found[kind] = func if callable(func) else None
    for kind in ("tasks_config", "evaluate_task"):
        if found[kind] is None:
            raise TaskDefinitionError(
                f'{main_py}: no @cb.{kind}(split="train") function (nor one named '
                f"{names[kind]}()); an ALE task defines load(), start() and evaluate()"
            )
    assert found["tasks_config"] is not None and found["evaluate_task"] is not None
    return TaskFunctions(found["tasks_config"], found["setup_task"], found["evaluate_task"])


def run_maybe_async(func: Callable[..., Any], *args: Any) -> Any:
    """Call ``func``; when it returns an awaitable, run it to completion on a private loop."""
    result = func(*args)
    if not inspect.isawaitable(result):
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(result))
    # already inside an event loop (an async test runner): use a thread with its own loop
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _await(result)).result()


async def _await(awaitable: Any) -> Any:
    return await awaitable
