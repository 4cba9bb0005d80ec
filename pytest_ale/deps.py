"""A task tree's grader dependencies: what its ``pyproject.toml`` declares, as pip commands.

ALE keeps the packages its graders import on the host in ``tasks/pyproject.toml``
(``[project] dependencies``; ``requires-python >= 3.12``). ``pytest-ale deps TREE``
(``cli.py``) prints the pip command that installs them into the running Python, and
``--install`` runs it, whatever the tree's ``requires-python`` says (a note says so):

- the file is the first ``pyproject.toml`` found from ``TREE`` upward;
- the requirements are ``[project] dependencies`` plus every group of
  ``[project.optional-dependencies]`` and ``[dependency-groups]`` (``--group`` picks some);
- a local path is written ``name @ file:relative/path`` or with hatch's ``{root:uri}``,
  both resolved against the file's folder;
- torch (and torchvision, torchaudio) is never installed by accident: a plain ``torch``
  from PyPI is a CUDA build of several GB on Linux x86_64, so a tree asking for it needs
  ``--torch=cpu`` (with ``--torch-index``: a CPU wheel index URL, or a folder of ``+cpu``
  wheels, pinned to the newest one the requirement admits), ``--torch=default`` (as the
  default index serves it) or ``--torch=skip``.

``missing_module_message`` is what task code that cannot import a package says instead of
a traceback: the module and the ``pytest-ale deps`` command (``taskguard`` uses it).
"""

from __future__ import annotations

import shlex
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from .errors import ConfigError

#: the packages whose default build on PyPI is a CUDA one (on Linux x86_64)
TORCH_NAMES = frozenset({"torch", "torchvision", "torchaudio"})
TORCH_CHOICES = ("cpu", "default", "skip")


@dataclass(frozen=True)
class Declared:
    """What one ``pyproject.toml`` declares: its requirements by group, and its Python."""

    pyproject: Path
    dependencies: tuple[str, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    requires_python: str | None = None


def find_pyproject(tree: Path) -> Path | None:
    """The first ``pyproject.toml`` in ``tree`` or a folder above it."""
    start = tree.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def read_declared(tree: Path) -> Declared:
    """The grader dependencies the tree's ``pyproject.toml`` declares (``ConfigError`` if
    there is no such file, or it is not TOML)."""
    if not tree.exists():
        raise ConfigError(f"{tree}: no such file or folder; give a task tree or a folder inside one")
    pyproject = find_pyproject(tree)
    if pyproject is None:
        raise ConfigError(f"no pyproject.toml in {tree} or above it: the tree declares no dependencies")
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read it as TOML ({exc})") from None
    project = data.get("project") or {}
    groups = {str(k): tuple(v) for k, v in (project.get("optional-dependencies") or {}).items()}
    table = data.get("dependency-groups") or {}
    for name in table:
        groups.setdefault(str(name), tuple(_group(table, str(name), pyproject, ())))
    return Declared(
        pyproject,
        tuple(project.get("dependencies") or ()),
        groups,
        project.get("requires-python"),
    )


def _group(table: dict, name: str, pyproject: Path, seen: tuple[str, ...]) -> list[str]:
    """A PEP 735 dependency group, its ``{include-group = ...}`` entries expanded."""
    if name in seen:
        raise ConfigError(f"{pyproject}: [dependency-groups] {name!r} includes itself")
    if name not in table:
        raise ConfigError(f"{pyproject}: [dependency-groups] has no group {name!r} to include")
    found: list[str] = []
    for entry in table[name]:
        if isinstance(entry, dict) and "include-group" in entry:
            found += _group(table, str(entry["include-group"]), pyproject, (*seen, name))
        elif isinstance(entry, str):
            found.append(entry)
    return found


def requirements(declared: Declared, groups: Sequence[str] | None = None) -> list[Requirement]:
    """The tree's requirements: its dependencies and the ``groups`` named (all when None),
    local paths resolved against the file's folder, each once."""
    if groups is not None:
        unknown = sorted(set(groups) - set(declared.groups))
        if unknown:
            known = ", ".join(sorted(declared.groups)) or "none"
            raise ConfigError(f"{declared.pyproject}: no group {', '.join(unknown)} (its groups: {known})")
    chosen = list(declared.dependencies)
    for name in declared.groups if groups is None else groups:
        chosen += declared.groups[name]
    root = declared.pyproject.parent
    found: list[Requirement] = []
    for text in chosen:
        text = text.replace("{root:uri}", root.as_uri()).replace("{root}", str(root))
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise ConfigError(f"{declared.pyproject}: {text!r} is not a requirement ({exc})") from None
        if req.url and req.url.startswith("file:") and not req.url.startswith("file://"):
            req.url = (root / req.url.removeprefix("file:")).resolve().as_uri()
        if str(req) not in {str(r) for r in found}:
            found.append(req)
    return found


def pip_commands(
    reqs: Sequence[Requirement],
    *,
    torch: str | None = None,
    torch_index: str | None = None,
    python: str = sys.executable,
    where: Path | None = None,
) -> list[list[str]]:
    """The pip commands that install ``reqs`` into ``python``, torch as ``torch`` chooses
    (``TORCH_CHOICES``; ``None`` refuses a tree asking for torch, naming the choices)."""
    torches = [r for r in reqs if canonicalize_name(r.name) in TORCH_NAMES]
    rest = [str(r) for r in reqs if r not in torches]
    pip = [python, "-m", "pip", "install"]
    if torches and torch is None:
        asks = ", ".join(str(r) for r in torches)
        raise ConfigError(
            f"{where or 'the tree'} asks for {asks}: choose its build with --torch=cpu "
            "--torch-index URL|DIR (a CPU wheel index, or a folder of +cpu wheels), --torch=default "
            "(as the default index serves it: on Linux x86_64 PyPI's is a CUDA build of several GB) "
            "or --torch=skip (left out: its tasks say what they miss)"
        )
    if torch is not None and torch not in TORCH_CHOICES:
        raise ConfigError(f"--torch={torch}: choose one of {', '.join(TORCH_CHOICES)}")
    if torch == "cpu" and torches:
        if not torch_index:
            raise ConfigError("--torch=cpu needs --torch-index URL|DIR: a CPU wheel index or a wheel folder")
        folder = Path(torch_index)
        if folder.is_dir():
            pins = [_cpu_wheel_pin(r, folder) for r in torches]
            return [[*pip, "--find-links", str(folder.resolve()), *rest, *pins]]
        commands = [[*pip, "--index-url", torch_index, *(str(r) for r in torches)]]
        return commands + ([[*pip, *rest]] if rest else [])
    if torch == "default":
        rest = [str(r) for r in reqs]  # in the order declared
    return [[*pip, *rest]] if rest else []


def _cpu_wheel_pin(req: Requirement, folder: Path) -> str:
    """``name==VERSION+cpu`` for the newest CPU wheel in ``folder`` that ``req`` admits and
    this Python can install."""
    tags = set(sys_tags())
    best: Version | None = None
    for path in folder.glob("*.whl"):
        try:
            name, version, _, wheel_tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if name != canonicalize_name(req.name) or "cpu" not in (version.local or ""):
            continue
        if tags.isdisjoint(wheel_tags) or not req.specifier.contains(version, prereleases=True):
            continue
        best = version if best is None or version > best else best
    if best is None:
        raise ConfigError(
            f"--torch-index {folder}: no +cpu wheel of {req.name} there that {req} admits "
            f"for this Python ({sys.version.split()[0]})"
        )
    return f"{req.name}=={best}"


def python_note(declared: Declared) -> str | None:
    """A note when the running Python is not one the tree's ``requires-python`` admits."""
    if not declared.requires_python:
        return None
    here = Version(".".join(map(str, sys.version_info[:3])))
    if SpecifierSet(declared.requires_python).contains(here, prereleases=True):
        return None
    return (
        f"note: {declared.pyproject} asks for Python {declared.requires_python}; installing for "
        f"this one ({here}, {sys.executable}) all the same"
    )


def render(commands: Sequence[Sequence[str]]) -> str:
    return "\n".join(shlex.join(command) for command in commands)


def missing_module_message(exc: BaseException, main_py: Path, what: str, root: Path) -> str | None:
    """What task code that failed to import a package says (``None``: ``exc`` is no such
    failure, or the module is one of the tree's own files, a bug of the task)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    here, root = main_py.parent.resolve(), root.resolve()
    for folder in (here, *here.parents):
        if not folder.is_relative_to(root):
            break
        if (folder / f"{top}.py").exists() or (folder / top).is_dir():
            return None  # the task's own module: its own traceback says more
    pyproject = find_pyproject(here)
    tree = shlex.quote(str(pyproject.parent if pyproject else here))
    command = f"`pytest-ale deps {tree}` prints the pip command, `pytest-ale deps {tree} --install` runs it"
    start = f"{main_py}: {what} needs the Python module {top!r}, which is not installed for {sys.executable}"
    if pyproject is None or not _declares(pyproject, top):
        where = f"{pyproject} declares no package" if pyproject else "no pyproject.toml above it declares one"
        return f"{start}, and {where} providing it: declare the one that does, then {command}"
    return f"{start}; install the task tree's grader dependencies: {command}"


#: import names whose distribution is named otherwise (only to word the message above); a
#: name stands for its ``-suffixed`` ones too (``opencv-python-headless``)
DISTRIBUTIONS = {
    "PIL": ("pillow",),
    "cv2": ("opencv-python", "opencv-contrib-python"),
    "sklearn": ("scikit-learn",),
    "skimage": ("scikit-image",),
    "fitz": ("pymupdf",),
    "dotenv": ("python-dotenv",),
    "yaml": ("pyyaml",),
    "bs4": ("beautifulsoup4",),
    "docx": ("python-docx",),
    "pptx": ("python-pptx",),
}


def _declares(pyproject: Path, top: str) -> bool:
    """Whether ``pyproject`` declares a package that plausibly provides module ``top``
    (its name, a known other name, or a namespace: ``google`` from ``google-api-core``)."""
    try:
        names = {canonicalize_name(r.name) for r in requirements(read_declared(pyproject.parent))}
    except ConfigError:
        return True  # unreadable: ``pytest-ale deps`` says why
    wanted = [canonicalize_name(n) for n in DISTRIBUTIONS.get(top, (top,))]
    return any(n == w or n.startswith(f"{w}-") for n in names for w in wanted)
