"""``AleTask``: an ALE (``cua_bench``) task folder driven through pytest-ale's trial.

The order is ALE's, with the reference held back until the agent is gone:

1. collection: import ``main.py`` (with the default data root), call ``load()``; one
   variant per returned ``cb.Task`` (named by ``metadata["variant_name"]``, else its index);
2. the trial stages ``input/`` and ``software/`` into ``<root>/<domain>/<task>/<variant>``;
3. ``begin``: the trial's own ``AleAttempt`` imports ``main.py`` afresh (its helpers
   re-read ``REMOTE_ROOT_DIR``, set to where this sandbox really keeps the variant
   folder); its ``setup`` calls ``load()``, then ``start(task_cfg, session)``;
4. the agent runs on that ``load()``'s ``description``; the trial fences it (kills all it
   started);
5. ``grade``: stage ``reference/`` (only now), ``load()`` again, ``evaluate(task_cfg,
   session)``; the score is its first element / scalar / ``score`` key. ``evaluate``
   raising is a grader error, never a zero. ``close`` drops the attempt's import.

All task code runs contained (``taskguard``): the imports and ``load()`` within the card's
``import_timeout``, ``start()`` and ``evaluate()`` each within its ``grader_timeout``.

Task data lives on the host at ``--ale-data``/``<domain>/<task>/<variant>/``
(``input/``, ``software/``, ``reference/``; the references at ``--ale-reference`` instead
when given), the folder named as ALE's runner names it, by the metadata's ``domain_name``,
``task_name`` and ``variant_name`` (never by ``task_dir``), and staged in the sandbox where
ALE stages it, ``REMOTE_ROOT_DIR/<domain>/<task>/<variant>``; a task whose folder is
missing is skipped naming the folders it looked for.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..card import TaskCard
from ..datastore import DataStore, LocalStore
from ..errors import AleError, ConfigError, GraderError, StagingError, TaskDefinitionError
from ..sandbox import Sandbox
from ..scoring import Grade, to_grade
from ..task import TaskAttempt, TaskData, TaskDefinition
from .hints import setup_hint
from .modules import Scope, TaskModule, tasks_package_dir
from .session import SandboxSession

if TYPE_CHECKING:
    from ..session import AleSession

#: ALE's default data roots (``REMOTE_ROOT_DIR``); the local sandbox honours the Linux one
LINUX_ROOT = "/media/user/data/agenthle"
WINDOWS_ROOT = "E:\\agenthle"
OUTPUT_DIR_NAME = "output"
SOLUTION_ENTRYPOINTS = ("solve.sh", "solve.py")


@dataclass(frozen=True)
class Variant:
    """One ``cb.Task`` of the collection-time ``load()``."""

    name: str
    index: int
    description: str
    metadata: dict[str, Any]
    #: the variant folder relative to the data root, e.g. ``("finance", "ledger", "base")``
    rel: tuple[str, ...]
    #: where the task expects the variant folder inside the sandbox
    workdir: str


class AleTask(TaskDefinition):
    """An ALE task file, run unmodified."""

    format = "ale"
    extra_env: dict[str, str] = {}  # the code's: AGENTHLE_CREDENTIALS_DIR (``credentials.py``)

    def __init__(
        self,
        folder: Path,
        card: TaskCard,
        data_root: DataStore | Path | None,
        reference_root: DataStore | Path | None = None,
    ) -> None:
        super().__init__(folder, card)
        self.main_py = folder / "main.py"
        #: ``--ale-data``: inputs and software, and the references unless ``reference_root``
        self.data_root = _store(data_root)
        #: ``--ale-reference``: the references, published apart from the inputs
        self.reference_root = _store(reference_root)
        self.remote_root = WINDOWS_ROOT if card.os == "windows" else LINUX_ROOT
        self.collected = TaskModule(self.main_py, self.scope_at(self.remote_root), card.import_timeout_s)
        self._variants = self._read_variants(self._load(self.collected))

    # -- collection ----------------------------------------------------------------------
    def scope_at(self, remote_root: str) -> Scope:
        env = {"REMOTE_ROOT_DIR": remote_root, "REMOTE_OUTPUT_DIR": OUTPUT_DIR_NAME, "OS_TYPE": self.card.os}
        return Scope(self.folder, {**env, **self.extra_env})

    def _load(self, module: TaskModule) -> list[Any]:
        try:
            tasks = module.call(
                module.functions.load,
                what="load()",
                fault=TaskDefinitionError,
                limit_s=self.card.import_timeout_s,
                limit_key="import_timeout",
            )
        except AleError:
            raise
        except Exception as exc:
            raise TaskDefinitionError(
                f"{self.main_py}: load() raised {type(exc).__name__}: {exc}\n"
                f"{self.frames(exc)}fix the task's @cb.tasks_config function"
            ) from None
        if not isinstance(tasks, list | tuple) or not tasks:
            raise TaskDefinitionError(
                f"{self.main_py}: load() must return a non-empty list of cb.Task, got {tasks!r}"
            )
        for task in tasks:
            description = getattr(task, "description", None)
            metadata = getattr(task, "metadata", None)
            if not isinstance(description, str) or not isinstance(metadata, dict | None):
                raise TaskDefinitionError(
                    f"{self.main_py}: load() returned {task!r}; each item must be a "
                    "cb.Task(description=str, metadata=dict, computer=dict)"
                )
        return list(tasks)

    def _read_variants(self, tasks: list[Any]) -> dict[str, Variant]:
        variants: dict[str, Variant] = {}
        for index, task in enumerate(tasks):
            meta = dict(task.metadata or {})
            name = _variant_name(meta, index)
            if name in variants:
                name = f"{name}-{index}"
            rel = self._relative_dir(meta, name)
            variants[name] = Variant(name, index, task.description, meta, rel, self._workdir(rel))
        return variants

    def _relative_dir(self, meta: dict[str, Any], variant: str) -> tuple[str, ...]:
        """``<domain_name>/<task_name>/<variant_name>``, as ALE's runner finds the data (never
        from ``task_dir``, which may name another, visible workspace); the folder names stand
        in for what the metadata lacks."""
        domain = str(meta.get("domain_name") or "").strip() or self.folder.parent.name
        task = str(meta.get("task_name") or "").strip() or self.folder.name
        return (domain, task, str(meta.get("variant_name") or "").strip() or variant)

    def _workdir(self, rel: tuple[str, ...]) -> str:
        """Where ALE stages the variant folder: ``REMOTE_ROOT_DIR/<domain>/<task>/<variant>``."""
        sep = "\\" if self.card.os == "windows" else "/"
        return sep.join([self.remote_root, *rel])

    def variant_named(self, name: str) -> Variant:
        try:
            return self._variants[name]
        except KeyError:
            raise TaskDefinitionError(f"{self.main_py}: load() returns no variant named {name!r}") from None

    # -- TaskDefinition ------------------------------------------------------------------
    def variants(self) -> list[str]:
        return list(self._variants)

    def workdir(self, variant: str) -> str:
        return self.variant_named(variant).workdir

    def data_dir(self, variant: str) -> Path | None:
        """The host folder holding this variant's ``input/`` and ``software/`` (and its
        ``reference/`` without ``--ale-reference``), fetched into the host cache first when
        ``--ale-data`` is remote."""
        if self.data_root is None:
            return None
        return self.data_root.folder(self.variant_named(variant).rel)

    def reference_dir(self, variant: str) -> Path | None:
        """This variant's ``reference/`` on the host: from ``--ale-reference`` when given."""
        root = self.reference_root or self.data_root
        base = root.folder(self.variant_named(variant).rel) if root else None
        return _subdir(base, "reference")

    def skip_reason(self, variant: str) -> str | None:
        v = self.variant_named(variant)
        if v.metadata.get("requires_task_data") is False:
            return None
        layout = "/".join(v.rel) + "/{input,software,reference}"
        if self.data_root is None:
            return (
                f"ALE task data needed: pass --ale-data DIR holding {layout} "
                "(or a .tar.gz of it, an hf://, s3:// or gs:// URL)"
            )
        missing = [
            f"no folder {root.where(v.rel)} ({option} must hold {layout})"
            for root, option in ((self.data_root, "--ale-data"), (self.reference_root, "--ale-reference"))
            if root is not None and not root.has(v.rel)
        ]
        if not missing:
            return None
        task_dir = v.metadata.get("task_dir")
        named = (
            f"; ALE finds a variant's data by its domain_name/task_name/variant_name, "
            f"not its task_dir {task_dir}"
            if isinstance(task_dir, str) and task_dir.rstrip("/\\") != v.workdir
            else ""
        )
        return "task data not found: " + "; ".join(missing) + named

    def data(self, variant: str) -> TaskData:
        base = self.data_dir(variant)
        return TaskData(
            input=_subdir(base, "input"),
            software=_subdir(base, "software"),
            reference=self.reference_dir(variant),
            solution=self._solution(variant),
        )

    def _solution(self, variant: str) -> Path | None:
        for folder in (self.folder / "solution" / variant, self.folder / "solution"):
            if any((folder / entry).is_file() for entry in SOLUTION_ENTRYPOINTS):
                return folder
        return None

    def solution_missing(self, variant: str) -> str | None:
        if self._solution(variant) is not None:
            return None
        return (
            f"no solution/solve.sh or solution/solve.py in {self.folder}: the oracle cannot "
            "run this ALE task (most ship none); pass --ale-agent NAME to run an agent on it"
        )

    def instruction(self, variant: str) -> str:
        """The collection-time description (a trial's own ``load()`` may give another)."""
        return _described(self.variant_named(variant).description, self.main_py, variant)

    def begin(self, sandbox: Sandbox, variant: str) -> AleAttempt:
        return AleAttempt(self, sandbox, variant)

    # -- one trial -----------------------------------------------------------------------
    def sandbox_root(self, sandbox: Sandbox, v: Variant) -> str:
        """``REMOTE_ROOT_DIR`` as this sandbox sees it.

        Bubblewrap (and VMs) put the variant folder at the path asked for; a sandbox without
        namespaces keeps it below its own folder (``<trial>/fs/<path>``), so the root moves.
        """
        wanted, actual = v.workdir.rstrip("/"), sandbox.workdir.rstrip("/")
        if actual == wanted:
            return self.remote_root
        if wanted.startswith("/") and actual.endswith(wanted):
            return actual[: -len(wanted)] + self.remote_root
        tail = "/" + "/".join(v.rel)
        if actual.endswith(tail):
            return actual[: -len(tail)]
        raise ConfigError(
            f"{self.main_py}: the sandbox put the workspace at {actual}, but this ALE task "
            f"expects it at {wanted}; use a provider that honours the requested workdir"
        )

    def task_for(self, module: TaskModule, variant: str) -> Any:
        v = self.variant_named(variant)
        tasks = self._load(module)
        for index, task in enumerate(tasks):
            if _variant_name(dict(task.metadata or {}), index) == v.name:
                return task
        if v.index < len(tasks):
            return tasks[v.index]
        raise TaskDefinitionError(f"{self.main_py}: load() no longer returns variant {variant!r}")

    def frames(self, exc: BaseException) -> str:
        """Traceback lines pointing into the task's tree (its main.py, scripts, helpers)."""
        tree = tasks_package_dir(self.folder) or self.folder
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if Path(f.filename).resolve().is_relative_to(tree.resolve())
        ]
        return "".join(traceback.format_list(frames))


class AleAttempt(TaskAttempt):
    """One trial of an ALE task: its own import of ``main.py`` (rooted where this sandbox
    keeps the variant folder), its ``SandboxSession`` and the description its ``load()``
    gave; discarded when the trial closes it."""

    def __init__(self, task: AleTask, sandbox: Sandbox, variant: str) -> None:
        super().__init__(sandbox, variant)
        self.task = task
        root = task.sandbox_root(sandbox, task.variant_named(variant))
        self.module = TaskModule(task.main_py, task.scope_at(root), task.card.import_timeout_s)
        self.session = SandboxSession(sandbox, os_type=task.card.os)
        self._description: str | None = None

    @property
    def instruction(self) -> str:
        if self._description is None:
            return self.task.instruction(self.variant)
        return _described(self._description, self.task.main_py, self.variant)

    def setup(self) -> None:
        start = self.module.functions.start
        task_cfg = self.task.task_for(self.module, self.variant)
        self._description = task_cfg.description
        if start is None:
            return
        self._call(start, task_cfg, what="start()", fault=TaskDefinitionError, fix=self._setup_hint)

    def _setup_hint(self, exc: BaseException) -> str:
        root, rel = self.task.data_root, self.task.variant_named(self.variant).rel
        return setup_hint(exc, root.where(rel) if root is not None else None)

    def grade(self, output_dir: Path) -> Grade:
        self._replace_output(output_dir)
        self._stage_reference()
        self.session.grading = True
        task_cfg = self.task.task_for(self.module, self.variant)  # ALE calls load() again
        fix = (
            "an ALE grader returns [0.0] for wrong or missing output "
            "and raises only on an infrastructure fault"
        )
        evaluate = self.module.functions.evaluate
        value = self._call(evaluate, task_cfg, what="evaluate()", fault=GraderError, fix=fix, worker=True)
        return to_grade(value, where=f"{self.task.main_py}: evaluate()")

    def close(self) -> None:
        self.module.discard()

    def _call(
        self,
        fn: Any,
        task_cfg: Any,
        *,
        what: str,
        fault: type[AleError],
        fix: str | Callable[[BaseException], str],
        worker: bool = False,
    ) -> Any:
        """``fn(task_cfg, session)``, contained within the card's ``grader_timeout``; an
        exception of the task's own becomes ``fault``, naming the file, the frames and ``fix``."""
        task = self.task
        try:
            return self.module.call(
                fn, task_cfg, self.session, what=what, fault=fault,
                limit_s=task.card.grader_timeout_s, limit_key="grader_timeout", worker=worker,
            )  # fmt: skip
        except AleError:
            raise
        except Exception as exc:
            hint = fix(exc) if callable(fix) else fix
            raise fault(
                f"{task.main_py}: {what} raised {type(exc).__name__}: {exc}\n{task.frames(exc)}{hint}"
            ) from None

    def _replace_output(self, output_dir: Path) -> None:
        """The grader reads the collected copy of ``output/``, put back in its place: what
        the collection refused (a link to ``../reference/...``, staged a moment later, or to
        any file outside ``output/``) is not there to be followed."""
        sandbox = self.sandbox
        target = sandbox.path("output")
        cleared = sandbox.exec(["rm", "-rf", "--", target], user=sandbox.grader_user)
        if cleared.exit_code != 0:
            raise StagingError(f"could not clear {target} before grading: {cleared.stderr}")
        sandbox.stage(sandbox.workdir, {"output": output_dir})
        if not sandbox.is_dir(target):
            sandbox.mkdir(target)

    def _stage_reference(self) -> None:
        """Put ``reference/`` into the variant folder: only now, after the fence. Whatever
        the agent left under that name is removed first, so it cannot plant an answer key."""
        sandbox = self.sandbox
        target = sandbox.path("reference")
        cleared = sandbox.exec(["rm", "-rf", "--", target], user=sandbox.grader_user)
        if cleared.exit_code != 0:
            raise StagingError(f"could not clear {target} before staging the reference: {cleared.stderr}")
        reference = self.task.reference_dir(self.variant)
        if reference is not None:
            sandbox.stage(sandbox.workdir, {"reference": reference})


def _described(text: str, main_py: Path, variant: str) -> str:
    if not text.strip():
        raise TaskDefinitionError(f"{main_py}: load() gave variant {variant!r} an empty description")
    return text.strip()


def _store(root: DataStore | Path | None) -> DataStore | None:
    return LocalStore(root) if isinstance(root, Path) else root


def _subdir(base: Path | None, name: str) -> Path | None:
    path = base / name if base else None
    return path if path and path.is_dir() else None


def _variant_name(meta: dict[str, Any], index: int) -> str:
    name = meta.get("variant_name")
    return str(name) if isinstance(name, str) and name.strip() else str(index)


def load_ale_task(folder: Path, card: TaskCard, session: AleSession) -> AleTask:
    """Load the ALE task in ``folder`` (the core's ``collect.load_task`` dispatches here)."""
    task = AleTask(folder, card, session.data_store, session.reference_store)
    task.extra_env = session.credentials.env(card)  # where ALE's setup code reads the files
    return task
