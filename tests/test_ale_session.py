"""The ALE adapter's parts, in process: the session on a real local sandbox, the
``cua_bench`` stand-in, and the isolated import of task trees."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_ale.card import load_card
from pytest_ale.compat import AleTask, SandboxSession
from pytest_ale.compat.session import CommandFailedError, ScreenshotUnavailableError
from pytest_ale.compat.shim import build_module, ensure_cua_bench, is_shim
from pytest_ale.providers.local import LocalIsolationWarning, LocalProvider
from pytest_ale.sandbox import SandboxSpec

DATA = Path(__file__).parent / "data" / "ale"
WORKDIR = "/media/user/data/agenthle/demo/session_check/base"
MODES = [
    pytest.param("bwrap", marks=pytest.mark.skipif(not shutil.which("bwrap"), reason="no bubblewrap")),
    "none",
]


def call(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(params=MODES)
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SandboxSession]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LocalIsolationWarning)  # isolation=none is the point here
        provider = LocalProvider({"isolation": request.param, "root": str(tmp_path)})
    sandbox = provider.acquire(SandboxSpec(run_id="unit", trial_id="session", workdir=WORKDIR))
    try:
        yield SandboxSession(sandbox)
    finally:
        provider.release(sandbox)


def test_files_and_folders(session: SandboxSession) -> None:
    work = session.sandbox.workdir
    call(session.write_file(f"{work}/notes.txt", "héllo"))
    assert call(session.file_exists(f"{work}/notes.txt"))
    assert not call(session.directory_exists(f"{work}/notes.txt"))
    assert call(session.directory_exists(work)) and not call(session.file_exists(work))
    assert call(session.exists(f"{work}/notes.txt")) and not call(session.exists(f"{work}/nope"))
    assert call(session.read_file(f"{work}/notes.txt")) == "héllo"
    payload = bytes(range(256))
    call(session.write_bytes(f"{work}/blob.bin", payload))
    assert call(session.read_bytes(f"{work}/blob.bin")) == payload
    call(session.write_text(f"{work}/t.txt", "text"))
    assert sorted(call(session.list_dir(work))) == ["blob.bin", "notes.txt", "t.txt"]


def test_errors_match_ale(session: SandboxSession) -> None:
    work = session.sandbox.workdir
    call(session.write_file(f"{work}/f.txt", "x"))
    with pytest.raises(NotADirectoryError, match="is a file"):
        call(session.list_dir(f"{work}/f.txt"))
    with pytest.raises(FileNotFoundError):
        call(session.list_dir(f"{work}/missing"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        call(session.write_file(f"{work}/a/b/c.txt", "x"))
    assert not call(session.directory_exists(f"{work}/a"))  # no parent was created
    with pytest.raises(FileNotFoundError):
        call(session.read_bytes(f"{work}/missing.txt"))
    with pytest.raises(TypeError):
        call(session.write_file(f"{work}/f.txt", b"bytes"))  # type: ignore[arg-type]


def test_folders_through_the_interface(session: SandboxSession) -> None:
    deep = f"{session.sandbox.workdir}/x/y/z"
    call(session.interface.create_dir(deep))
    assert call(session.directory_exists(deep))
    assert session.computer.interface is session.interface
    call(session.interface.delete_dir(f"{session.sandbox.workdir}/x"))
    assert not call(session.directory_exists(f"{session.sandbox.workdir}/x"))


def test_run_command_result_is_a_dict_with_attributes(session: SandboxSession) -> None:
    result = call(session.run_command("printf out; printf err >&2"))
    assert result == {"success": True, "stdout": "out", "stderr": "err", "return_code": 0}
    assert result.get("stdout") == result.stdout == "out"
    assert result.returncode == result.return_code == result["return_code"] == 0
    assert result.success and result["success"]
    failed = call(session.run_command("exit 7", check=False))
    assert (failed.returncode, failed["success"]) == (7, False)
    with pytest.raises(CommandFailedError, match="return code 7") as info:
        call(session.run_command("exit 7"))
    assert isinstance(info.value, RuntimeError)  # what cua-bench raises
    slow = call(session.run_command("sleep 5", check=False, timeout=0.3))
    assert slow.timed_out and not slow.success
    with pytest.raises(CommandFailedError, match="timed out"):
        call(session.run_command("sleep 5", timeout=0.3))
    # a bare `python` is on the sandbox's PATH, and commands start in the variant folder
    assert call(session.run_command("python -c 'print(6*7)'")).stdout.strip() == "42"
    assert call(session.run_command("pwd")).stdout.strip() == session.sandbox.workdir


def test_screenshot_without_display_says_so(session: SandboxSession) -> None:
    with pytest.raises(ScreenshotUnavailableError, match="display") as info:
        call(session.screenshot())
    assert isinstance(info.value, NotImplementedError)


# -- the cua_bench stand-in ----------------------------------------------------------------
def test_stand_in_decorators_tag_without_wrapping() -> None:
    cb = build_module()

    @cb.tasks_config(split="train")
    def load() -> list[Any]:
        return [cb.Task(description="d", metadata={"k": 1}, computer={})]

    @cb.setup_task("train")
    async def start(task_cfg: Any, session: Any) -> None:
        return None

    @cb.evaluate_task
    async def evaluate(task_cfg: Any, session: Any) -> list[float]:
        return [1.0]

    assert (load._td_type, start._td_type, evaluate._td_type) == (
        "tasks_config",
        "setup_task",
        "evaluate_task",
    )
    assert inspect.iscoroutinefunction(start) and inspect.iscoroutinefunction(evaluate)
    assert load()[0].metadata == {"k": 1}
    with pytest.raises(AttributeError, match="stand-in"):
        cb.launch_window  # noqa: B018


def test_unusable_cua_bench_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    placeholder = types.ModuleType("cua_bench")
    placeholder.__version__ = "0.1.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cua_bench", placeholder)
    module = ensure_cua_bench()
    assert is_shim(module) and sys.modules["cua_bench"] is module
    assert ensure_cua_bench() is module  # idempotent


# -- loading task trees -------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(DATA / "tree", tmp_path / "ale")
    return tmp_path / "ale" / "tasks"


def ale_task(folder: Path, data_root: Path | None = None) -> AleTask:
    return AleTask(folder, load_card(folder / "task_card.json"), data_root)


def test_tasks_load_in_isolation(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_ROOT_DIR", "/host/value")
    path_before = list(sys.path)
    census = ale_task(tree / "textops" / "word_census")
    ledger = ale_task(tree / "ledger" / "column_total")
    # each task kept its own bare-named helper
    assert census.collected.module.score_outputs.TASK == "word_census"
    assert ledger.collected.module.score_outputs.TASK == "column_total"
    # nothing leaked: helpers, the tasks package, sys.path entries, environment
    leaked = [n for n in sys.modules if n == "score_outputs" or n == "tasks" or n.startswith("tasks.")]
    assert leaked == []
    assert sys.path == path_before
    assert os.environ["REMOTE_ROOT_DIR"] == "/host/value"
    # the helpers saw the data root pytest-ale set, not the host's
    assert census.workdir("base") == "/media/user/data/agenthle/textops/word_census/base"


def test_variants_paths_and_card_facts(tree: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    ledger = ale_task(tree / "ledger" / "column_total", data)
    assert ledger.variants() == ["q1", "q2"]
    assert ledger.workdir("q2") == "/media/user/data/agenthle/ledger/column_total/q2"
    assert ledger.data_dir("q2") == data / "ledger" / "column_total" / "q2"
    assert ledger.card.timeout_s == 240  # vm.timeout_s
    assert "q2" in ledger.instruction("q2")
    assert {"linux", "ledger"} <= set(ledger.markers())
    assert ale_task(tree / "textops" / "word_census").card.timeout_s == 300  # vm.timeout
    mosaic = ale_task(tree / "gis" / "raster_mosaic", data)
    assert mosaic.workdir("base") == "E:\\agenthle\\gis\\raster_mosaic\\base"
    assert mosaic.data_dir("base") == data / "gis" / "raster_mosaic" / "base"
    assert {"windows", "licensed"} <= set(mosaic.markers())
    assert "gpu" in ale_task(tree / "vision" / "segment_cells").markers()


def test_a_tasks_package_elsewhere_does_not_win(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoy = tmp_path / "decoy" / "tasks"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("WHO = 'decoy'\n")
    (decoy / "linux_runtime.py").write_text("raise ImportError('the decoy was imported')\n")
    monkeypatch.syspath_prepend(str(decoy.parent))
    import tasks  # the decoy, imported before the ALE tree loads

    task = ale_task(tree / "sysadmin" / "permission_audit")
    assert task.variants() == ["base"]
    assert sys.modules["tasks"] is tasks and tasks.WHO == "decoy"  # restored afterwards
    monkeypatch.delitem(sys.modules, "tasks")


def test_plain_function_names_are_found(tmp_path: Path) -> None:
    folder = tmp_path / "tasks" / "demo" / "plain"
    folder.mkdir(parents=True)
    (folder / "task_card.json").write_text("{}")
    (folder / "main.py").write_text(
        "# a cua_bench-style task written without the decorators\n"
        "from types import SimpleNamespace\n\n"
        "def load():\n"
        "    return [SimpleNamespace(description='Do it.', metadata={'variant_name': 'v1'})]\n\n"
        "async def evaluate(task_cfg, session):\n"
        "    return [1.0]\n"
    )
    task = ale_task(folder)
    assert task.variants() == ["v1"]
    assert task.collected.functions.start is None
    assert task.collected.functions.evaluate.__name__ == "evaluate"


# -- one trial's attempt ------------------------------------------------------------------
TWICE_MAIN = """
import os
import uuid
import cua_bench as cb

TOKEN = uuid.uuid4().hex  # one per import: each attempt imports the task afresh
FILE = os.environ["REMOTE_ROOT_DIR"] + "/demo/twice/0/token.txt"  # this sandbox's variant folder


@cb.tasks_config(split="train")
def load():
    return [cb.Task(description=f"Write {TOKEN}.", metadata={"requires_task_data": False}, computer={})]


@cb.setup_task(split="train")
async def start(task_cfg, session):
    await session.write_file(FILE, TOKEN)


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session):
    seen = await session.read_file(FILE)
    return [1.0 if seen == TOKEN and TOKEN in task_cfg.description else 0.0]
"""


def test_two_attempts_of_one_variant_share_nothing(tmp_path: Path) -> None:
    """Two trials of the same task and variant (two threads of one worker, say) each get
    their own import, session and description; closing one leaves the other whole."""
    folder = tmp_path / "tasks" / "demo" / "twice"
    folder.mkdir(parents=True)
    (folder / "task_card.json").write_text("{}")
    (folder / "main.py").write_text(TWICE_MAIN)
    task = ale_task(folder)
    (variant,) = task.variants()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LocalIsolationWarning)
        provider = LocalProvider({"isolation": "none", "root": str(tmp_path / "root")})
    sandboxes = [
        provider.acquire(SandboxSpec(run_id="unit", trial_id=t, workdir=task.workdir(variant))) for t in "ab"
    ]
    try:
        first, second = (task.begin(sandbox, variant) for sandbox in sandboxes)
        first.setup()
        second.setup()
        assert first.instruction != second.instruction  # each trial's own load()
        assert first.instruction != task.instruction(variant)  # not the collection's either
        first.close()
        output = tmp_path / "output"
        output.mkdir()
        assert second.grade(output).score == 1.0
        second.close()
    finally:
        for sandbox in sandboxes:
            provider.release(sandbox)
