"""The native task format: a synchronous, typed ``main.py``.

A native ``main.py`` defines::

    INSTRUCTION = "Read input/loans.csv ... write output/schedule.csv"   # or instruction(variant)
    VARIANTS = ["base"]                                # optional

    def setup(sandbox: Sandbox) -> None: ...           # optional; runs after input/ is staged

    def evaluate(output_dir: Path, reference_dir: Path, sandbox: Sandbox) -> float | tuple[float, str]:
        ...                                            # score in [0, 1], optionally with why

``evaluate`` runs on the host: ``output_dir`` is the agent's collected ``output/``,
``reference_dir`` the task's hidden ``reference/`` (which never enters the sandbox).
All of the module's code runs contained (``taskguard``): the import within the card's
``import_timeout``, ``setup`` and ``evaluate`` each within its ``grader_timeout``.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .card import TaskCard
from .errors import GraderError, TaskDefinitionError
from .loader import import_task_module
from .sandbox import Sandbox
from .scoring import Grade, to_grade
from .task import TaskAttempt, TaskData, TaskDefinition
from .taskguard import run_task_code


class NativeTask(TaskDefinition):
    """A task written against pytest-ale's own API."""

    format = "native"

    def __init__(self, folder: Path, card: TaskCard, module: ModuleType) -> None:
        super().__init__(folder, card)
        self.module = module
        self.main_py = folder / "main.py"
        self._evaluate = self._required_callable("evaluate", "(output_dir, reference_dir, sandbox)")
        self._setup: Callable[..., Any] | None = getattr(module, "setup", None)
        if self._setup is not None and not callable(self._setup):
            raise TaskDefinitionError(f"{self.main_py}: setup must be a function setup(sandbox)")
        self._variants = self._read_variants()
        for variant in self._variants:
            self.instruction(variant)  # validate early: an empty instruction is a task bug

    @classmethod
    def load(cls, folder: Path, card: TaskCard) -> NativeTask:
        return cls(folder, card, import_task_module(folder / "main.py", limit_s=card.import_timeout_s))

    def _required_callable(self, name: str, signature: str) -> Callable[..., Any]:
        func = getattr(self.module, name, None)
        if not callable(func):
            raise TaskDefinitionError(
                f"{self.main_py}: defines no {name}{signature}; add one that returns a "
                "score in [0, 1] (optionally with an explanation)"
            )
        return func

    def _read_variants(self) -> list[str]:
        variants = getattr(self.module, "VARIANTS", ["base"])
        if (
            not isinstance(variants, list | tuple)
            or not variants
            or not all(isinstance(v, str) and v for v in variants)
        ):
            raise TaskDefinitionError(
                f"{self.main_py}: VARIANTS must be a non-empty list of names, got {variants!r}"
            )
        return list(variants)

    def variants(self) -> list[str]:
        return self._variants

    def instruction(self, variant: str) -> str:
        source = getattr(self.module, "instruction", None) or getattr(self.module, "INSTRUCTION", None)
        text = source
        if callable(source):
            try:
                text = self._run(source, *[variant][: _arity(source)], what="instruction()")
            except TaskDefinitionError:
                raise
            except Exception as exc:
                raise TaskDefinitionError(
                    f"{self.main_py}: instruction() raised {type(exc).__name__}: {exc}\n"
                    f"{_task_frames(exc, self.folder)}fix the task's instruction function"
                ) from None
        if not isinstance(text, str) or not text.strip():
            raise TaskDefinitionError(
                f"{self.main_py}: the instruction is empty or missing; set INSTRUCTION = "
                "'what the agent must do' (or define instruction(variant) -> str)"
            )
        return text.strip()

    def data(self, variant: str) -> TaskData:
        def folder(name: str) -> Path | None:
            variant_path = self.folder / variant / name
            path = variant_path if variant_path.is_dir() else self.folder / name
            return path if path.is_dir() else None

        return TaskData(
            input=folder("input"),
            software=folder("software"),
            reference=folder("reference"),
            solution=folder("solution"),
        )

    def begin(self, sandbox: Sandbox, variant: str) -> NativeAttempt:
        return NativeAttempt(self, sandbox, variant)

    def setup(self, sandbox: Sandbox) -> None:
        """Run the task's ``setup(sandbox)``, if it has one, contained."""
        if self._setup is None:
            return
        try:
            self._run(self._setup, sandbox, what="setup()")
        except TaskDefinitionError:
            raise
        except Exception as exc:
            raise TaskDefinitionError(
                f"{self.main_py}: setup() raised {type(exc).__name__}: {exc}\n"
                f"{_task_frames(exc, self.folder)}fix the task's setup"
            ) from exc

    def evaluate(self, sandbox: Sandbox, variant: str, output_dir: Path) -> Grade:
        """Run the task's ``evaluate`` on the collected ``output_dir``, contained."""
        reference = self.data(variant).reference or self.folder / "reference"
        args: list[Any] = [output_dir, reference, sandbox]
        try:
            value = self._run(self._evaluate, *args[: _arity(self._evaluate, 3)], what="evaluate()")
        except GraderError:
            raise
        except Exception as exc:
            raise GraderError(
                f"{self.main_py}: evaluate() raised {type(exc).__name__}: {exc}\n"
                f"{_task_frames(exc, self.folder)}a grader must return a score, not raise, "
                "when the output is wrong or missing (return 0.0 with an explanation)"
            ) from exc
        return to_grade(value, where=f"{self.main_py}: evaluate()")

    def _run(self, func: Callable[..., Any], *args: Any, what: str) -> Any:
        """Call the task's ``func`` contained: ``evaluate()`` in a worker thread and ``setup()``
        here, each within the card's ``grader_timeout``; ``instruction()`` within ``import_timeout``."""
        grading, quick = what == "evaluate()", what == "instruction()"
        return run_task_code(
            func,
            *args,
            main_py=self.main_py,
            what=what,
            fault=GraderError if grading else TaskDefinitionError,
            limit_s=self.card.import_timeout_s if quick else self.card.grader_timeout_s,
            limit_key="import_timeout" if quick else "grader_timeout",
            worker=grading,
        )


class NativeAttempt(TaskAttempt):
    """One trial of a native task: the module is shared (it holds no trial's state), the
    instruction is read once for this trial, ``sandbox.state`` carries what setup made."""

    def __init__(self, task: NativeTask, sandbox: Sandbox, variant: str) -> None:
        super().__init__(sandbox, variant)
        self.task = task
        self._instruction = task.instruction(variant)

    @property
    def instruction(self) -> str:
        return self._instruction

    def setup(self) -> None:
        self.sandbox.state.setdefault("variant", self.variant)
        self.task.setup(self.sandbox)

    def grade(self, output_dir: Path) -> Grade:
        return self.task.evaluate(self.sandbox, self.variant, output_dir)


def _arity(func: Callable[..., Any], most: int = 1) -> int:
    """How many positional arguments ``func`` takes, capped at ``most``."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return most
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return most
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return min(len(positional), most)


def _task_frames(exc: BaseException, folder: Path) -> str:
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if Path(f.filename).resolve().is_relative_to(folder.resolve())
    ]
    return "".join(traceback.format_list(frames))
