"""Importing a task's ``main.py`` safely: one module per task, helpers isolated.

A task module is registered in ``sys.modules`` before it runs (dataclasses need that),
its own folder is importable while it loads, and helper modules it imported from its own
folder are dropped afterwards, so two tasks' ``helpers.py`` never collide. The module runs
contained (``taskguard``): ``os._exit``, ``sys.exit``, a fork or a hang at import is that
task's ``TaskDefinitionError``, never the end of the run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from .card import DEFAULT_IMPORT_TIMEOUT_S
from .errors import TaskDefinitionError
from .taskguard import run_task_code


def module_name_for(path: Path, prefix: str = "ale_task") -> str:
    digest = hashlib.sha1(os.path.realpath(path).encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in path.parent.name)
    return f"{prefix}_{stem}_{digest}"


def import_task_module(
    main_py: Path,
    *,
    extra_paths: Iterable[Path] = (),
    isolate: Iterable[Path] = (),
    prefix: str = "ale_task",
    limit_s: float = DEFAULT_IMPORT_TIMEOUT_S,
    root: Path | None = None,
) -> ModuleType:
    """Execute ``main_py`` as a fresh module; errors name the file, line and fix.

    ``extra_paths`` go on ``sys.path`` for good (shared helper packages); the task's own
    folder and ``isolate`` folders are on it only while the module loads, and modules
    loaded from them are removed from ``sys.modules`` afterwards. The import may take
    ``limit_s`` seconds (the card's ``import_timeout``); ``root`` holds the task's files.
    """
    name = module_name_for(main_py, prefix)
    if name in sys.modules:
        return sys.modules[name]
    folder = main_py.parent
    temporary = [os.path.realpath(p) for p in (folder, *isolate)]
    for extra in extra_paths:
        if str(extra) not in sys.path:
            sys.path.insert(0, str(extra))
    spec = importlib.util.spec_from_file_location(name, main_py)
    if spec is None or spec.loader is None:
        raise TaskDefinitionError(f"{main_py}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    before = set(sys.modules)  # a set copy of a dict's keys: about 20 us for 1,000 modules
    sys.modules[name] = module
    sys.path[:0] = temporary
    try:
        run_task_code(
            spec.loader.exec_module,
            module,
            main_py=main_py,
            what="importing it",
            fault=TaskDefinitionError,
            limit_s=limit_s,
            limit_key="import_timeout",
            root=root,
        )
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise TaskDefinitionError(
            f"{exc.filename or main_py}:{exc.lineno}: syntax error: {exc.msg}; fix the Python syntax"
        ) from None
    except TaskDefinitionError:  # the guard's: an exit, a fork or a hang
        sys.modules.pop(name, None)
        raise
    except Exception as exc:
        sys.modules.pop(name, None)
        raise TaskDefinitionError(
            f"{main_py}: importing it raised {type(exc).__name__}: {exc}\n"
            f"{_user_traceback(exc, main_py)}fix the error above (imports run at collection)"
        ) from None
    except BaseException:  # a real Ctrl-C: the run stops, without a half-imported module
        sys.modules.pop(name, None)
        raise
    finally:
        for entry in temporary:
            if entry in sys.path:
                sys.path.remove(entry)
        _drop_local_modules(before, temporary, keep=name)
    return module


def _drop_local_modules(before: set[str], roots: list[str], keep: str) -> None:
    prefixes = tuple(root.rstrip(os.sep) + os.sep for root in roots)
    for mod_name in sys.modules.keys() - before:
        if mod_name == keep:
            continue
        file = getattr(sys.modules[mod_name], "__file__", None)
        if file and os.path.realpath(file).startswith(prefixes):
            del sys.modules[mod_name]


def _user_traceback(exc: BaseException, main_py: Path) -> str:
    """The traceback lines that point into the task's own files."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if Path(f.filename).resolve().is_relative_to(main_py.parent.resolve())
    ]
    return "".join(traceback.format_list(frames))
