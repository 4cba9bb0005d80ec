"""``pytest-ale deps TREE``: the pip command for a task tree's declared grader dependencies,
``--install`` running it, torch only by choice; a task missing a module says so and names
the command instead of a traceback."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

import pytest_ale
from pytest_ale.cli import main
from pytest_ale.deps import missing_module_message

from .ale_tasks import write_ale_task
from .fakes.wheels import make_wheel

REPO = Path(__file__).resolve().parents[1]
TREE = Path(__file__).parent / "data" / "deps" / "tasks"
PIP = [sys.executable, "-m", "pip", "install"]
MAIN_DEPS = ["numpy>=2.4.4", "openpyxl>=3.1.5", "pillow>=12.2.0"]


def deps(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["deps", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_the_console_command_is_declared() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["pytest-ale"] == "pytest_ale.cli:main"


def test_prints_the_command_from_the_pyproject_above_the_tree(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = deps(capsys, str(TREE / "demo" / "needs_judge"), "--torch=skip")
    assert code == 0, err
    groups = ["openai>=2.8.0", "opencv-python-headless>=4.13.0.92", "pretty_midi>=0.2.11"]
    assert out == [shlex.join([*PIP, *MAIN_DEPS, *groups])]
    assert "leaves out torch>=2.11.0" in err
    if sys.version_info < (3, 12):  # the tree asks for >=3.12: installed here all the same
        assert f"asks for Python >=3.12,<3.14; installing for this one ({sys.version.split()[0]}" in err


def test_group_picks_groups_and_an_unknown_one_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = deps(capsys, str(TREE), "--torch=skip", "--group", "vision")
    assert code == 0
    assert out == [shlex.join([*PIP, *MAIN_DEPS, "opencv-python-headless>=4.13.0.92", "pretty_midi>=0.2.11"])]
    code, out, err = deps(capsys, str(TREE), "--torch=skip", "--group", "audio")
    assert (code, out) == (2, [])
    assert "no group audio (its groups: judge, media, vision)" in err


def test_torch_needs_a_choice(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = deps(capsys, str(TREE), "--install")
    assert (code, out) == (2, [])
    assert "asks for torch>=2.11.0: choose its build with --torch=cpu" in err
    assert "--torch=default" in err and "--torch=skip" in err
    code, _, err = deps(capsys, str(TREE), "--torch=cpu")
    assert code == 2 and "--torch=cpu needs --torch-index" in err


def test_torch_cpu_from_an_index_url_is_its_own_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = deps(capsys, str(TREE), "--torch=cpu", "--torch-index", "https://wheels.example.test/cpu")
    assert code == 0
    assert out[0] == shlex.join([*PIP, "--index-url", "https://wheels.example.test/cpu", "torch>=2.11.0"])
    assert out[1].startswith(shlex.join([*PIP, *MAIN_DEPS]))
    code, out, _ = deps(capsys, str(TREE), "--torch=default", "--group", "judge")
    assert out == [shlex.join([*PIP, *MAIN_DEPS, "torch>=2.11.0", "openai>=2.8.0"])]


def test_torch_cpu_from_a_folder_pins_its_newest_fitting_cpu_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "torch-2.13.0+cpu-py3-none-any.whl",
        "torch-2.12.0+cpu-py3-none-any.whl",
        "torch-2.14.0-py3-none-any.whl",  # not a CPU build
        "torch-2.15.0+cpu-cp27-cp27m-manylinux1_x86_64.whl",  # not for this Python
        "torch-2.10.0+cpu-py3-none-any.whl",  # below the tree's torch>=2.11.0
    ):
        (tmp_path / name).write_bytes(b"")
    code, out, _ = deps(capsys, str(TREE), "--torch=cpu", "--torch-index", str(tmp_path), "--group", "judge")
    assert code == 0
    pinned = [*MAIN_DEPS, "openai>=2.8.0", "torch==2.13.0+cpu"]
    assert out == [shlex.join([*PIP, "--find-links", str(tmp_path), *pinned])]
    (tmp_path / "torch-2.13.0+cpu-py3-none-any.whl").unlink()
    (tmp_path / "torch-2.12.0+cpu-py3-none-any.whl").unlink()
    code, _, err = deps(capsys, str(TREE), "--torch=cpu", "--torch-index", str(tmp_path))
    assert code == 2 and "no +cpu wheel of torch there that torch>=2.11.0 admits" in err


def test_no_pyproject_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = deps(capsys, str(TREE / "no-such-task"))
    assert code == 2 and "no-such-task: no such file or folder" in err
    if any((p / "pyproject.toml").is_file() for p in tmp_path.parents):
        pytest.skip("a pyproject.toml above the temporary folder")
    code, _, err = deps(capsys, str(tmp_path))
    assert code == 2 and f"no pyproject.toml in {tmp_path} or above it" in err


def probe_wheel(folder: Path) -> Path:
    """A pure-Python wheel of one module, ``ale_deps_probe``, made here (no build, no index)."""
    module = "VALUE = 'installed from a local wheel'\n"
    return make_wheel(folder, "ale_deps_probe", "0.1.0", module, dist_name="ale-deps-probe")


def test_install_runs_the_command_in_the_running_python(tmp_path: Path) -> None:
    tree = tmp_path / "tree" / "tasks"
    (tree / "wheels").mkdir(parents=True)
    wheel = probe_wheel(tree / "wheels")
    (tree / "pyproject.toml").write_text(
        '[project]\nname = "t"\nversion = "0"\nrequires-python = ">=99"\n'
        f'dependencies = ["ale-deps-probe @ file:wheels/{wheel.name}"]\n'
    )
    # a Python of its own, seeing this one's packages (pytest_ale, pip) but installing into itself
    env = tmp_path / "venv"
    venv.create(env, with_pip=False, symlinks=True)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    here = [str(Path(pytest_ale.__file__).resolve().parents[1]), sysconfig.get_paths()["purelib"]]
    (Path(purelib) / "parent.pth").write_text("\n".join(here) + "\n")
    done = subprocess.run(
        [python, "-m", "pytest_ale.cli", "deps", str(tree), "--install"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    command = shlex.split(done.stdout.splitlines()[0])
    assert command[:4] == [str(python), "-m", "pip", "install"]
    assert command[4].replace(" ", "") == f"ale-deps-probe@{wheel.resolve().as_uri()}"
    assert "asks for Python >=99; installing for this one" in done.stderr
    imported = subprocess.run(
        [python, "-c", "import ale_deps_probe; print(ale_deps_probe.VALUE, ale_deps_probe.__file__)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert imported.stdout.startswith("installed from a local wheel"), imported.stderr
    assert imported.stdout.split()[-1].startswith(purelib)
    assert subprocess.run([sys.executable, "-c", "import ale_deps_probe"], capture_output=True).returncode


def test_the_message_tells_a_declared_package_from_an_undeclared_one() -> None:
    main_py = TREE / "demo" / "needs_judge" / "main.py"

    def message(module: str) -> str:
        text = missing_module_message(ModuleNotFoundError(name=module), main_py, "evaluate()", TREE)
        assert text is not None and f"needs the Python module {module!r}" in text
        return text

    # PIL from pillow, cv2 from opencv-python-headless, openai from the judge group
    for module in ("PIL", "cv2", "openai", "numpy"):
        assert f"; install the task tree's grader dependencies: `pytest-ale deps {TREE}`" in message(module)
    assert "declares no package providing it" in message("sklearn")
    # not a missing package at all: no message of this kind
    assert missing_module_message(ValueError("x"), main_py, "evaluate()", TREE) is None


MISSING = (("ale_deps_missing_judge", "importing it"), ("ale_deps_missing_scorer", "evaluate()"))


def test_a_task_missing_a_module_names_it_and_the_command(pytester: pytest.Pytester) -> None:
    shutil.copytree(TREE, pytester.path / "deps" / "tasks")
    tree = pytester.path / "deps" / "tasks"
    # a grader importing a missing package when it runs; a task missing a module of its own
    write_ale_task(tree / "demo" / "late_import", evaluate="import ale_deps_missing_scorer")
    write_ale_task(tree / "demo" / "own_module", top="from scripts.gone import score")
    (tree / "demo" / "own_module" / "scripts").mkdir()
    result = pytester.runpytest("deps/tasks", "--ale-agent=noop", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=3)
    text = result.stdout.str()
    for module, what in MISSING:  # neither is declared: the message says so
        assert (
            f"{what} needs the Python module {module!r}, which is not installed for {sys.executable}, and "
            f"{tree / 'pyproject.toml'} declares no package providing it: declare the one that does, then "
            f"`pytest-ale deps {tree}` prints the pip command, `pytest-ale deps {tree} --install` runs it"
        ) in text
    # the task's own missing module is its bug: the usual message with its frames
    assert "importing it raised ModuleNotFoundError: No module named 'scripts.gone'" in text
    assert "needs the Python module 'scripts'" not in text
