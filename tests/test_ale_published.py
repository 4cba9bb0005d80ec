"""ALE tasks with their data where ALE's runner puts it, from the sources ALE publishes.

``tests/data/ale/published`` holds ``contig_gc_v2``, shaped like ALE's
``life_sciences/rgi_mcr1_colistin_v2``: its ``task_dir`` names a visible workspace that is
not its data folder, and its grader reads the reference from the folder ALE names by
``domain_name/task_name/variant_name``. It runs beside the tree of ``tests/data/ale``, its
data from:

- a folder, and inputs and references from two folders (``--ale-reference``);
- the archive ALE publishes (``ale-tasks-data.tar.gz``), extracted once into the cache (by
  one of the processes of an ``-n 2`` run), again only when it changes; an archive with an
  unsafe member is refused, naming it;
- a Hugging Face hub (``tests/fakes/hf_hub.py``, a fake on loopback): inputs from an open
  repository, references from one that needs a token; only the task's own folders are
  downloaded, once; errors name the fix.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_ale.datastore import open_store
from pytest_ale.errors import ConfigError, InfrastructureError

from .conformance.sshd import free_port
from .conftest import results
from .fakes.hf_hub import FakeHub, Repo

DATA = Path(__file__).parent / "data" / "ale"
PUBLISHED = DATA / "published"
TASK = "ale/tasks/life_sciences/contig_gc_v2"
VARIANT = "life_sciences/contig_gc_v2/base"
WORKSPACE = "/media/user/data/agenthle/life_sciences/contig_gc_instance_1/base"
TOKEN = "hf_reference_reader"


@pytest.fixture
def tree(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The ALE tree with ``contig_gc_v2`` among its tasks, at ``ale/tasks``; the host cache
    in ``tmp_path/cache``."""
    monkeypatch.setenv("ALE_DATA_CACHE", str(tmp_path / "cache"))
    shutil.copytree(DATA / "tree", pytester.path / "ale")
    shutil.copytree(PUBLISHED / "tasks", pytester.path / "ale" / "tasks", dirs_exist_ok=True)
    return pytester.path


def all_data(dest: Path, kinds: tuple[str, ...] = ("input", "software", "reference")) -> Path:
    """Every test task's data in one root at ``dest``, only the folders of ``kinds``."""
    for source in (DATA / "data", PUBLISHED / "data"):
        for path in source.rglob("*"):
            rel = path.relative_to(source)
            if path.is_file() and rel.parts[3] in kinds:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest / rel)
    return dest


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        TASK, "--ale-agent=oracle", "--ale-agent=noop", "-p", "no:cacheprovider", "-rs", *args
    )


def assert_oracle_passes(pytester: pytest.Pytester, result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=1, failed=1)
    rows = {r["agent"]: r for r in results(pytester)}
    assert (rows["oracle"]["status"], rows["oracle"]["score"]) == ("passed", 1.0), rows["oracle"]
    assert (rows["noop"]["status"], rows["noop"]["score"]) == ("failed", 0.0), rows["noop"]


def test_data_is_found_by_its_names_not_its_task_dir(pytester: pytest.Pytester, tree: Path) -> None:
    data = all_data(tree / "ale-data")
    assert_oracle_passes(pytester, run(pytester, "--ale-data", "ale-data"))

    shutil.rmtree(data / "life_sciences")
    missing = run(pytester, "--ale-data", "ale-data")
    missing.assert_outcomes(skipped=2)
    missing.stdout.fnmatch_lines(
        [
            f"SKIPPED*contig_gc_v2/main.py: task data not found: no folder {data}/{VARIANT} "
            f"(--ale-data must hold {VARIANT}/{{input,software,reference}}); ALE finds a variant's "
            f"data by its domain_name/task_name/variant_name, not its task_dir {WORKSPACE}"
        ]
    )


def test_inputs_and_references_from_two_folders(pytester: pytest.Pytester, tree: Path) -> None:
    all_data(tree / "inputs", ("input", "software"))
    refs = all_data(tree / "refs", ("reference",))
    assert_oracle_passes(pytester, run(pytester, "--ale-data", "inputs", "--ale-reference", "refs"))

    shutil.rmtree(refs / "life_sciences")
    missing = run(pytester, "--ale-data", "inputs", "--ale-reference", "refs")
    missing.assert_outcomes(skipped=2)
    missing.stdout.fnmatch_lines(
        [f"SKIPPED*task data not found: no folder {refs}/{VARIANT} (--ale-reference*"]
    )


def make_archive(path: Path, root: Path, extra: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for child in sorted(root.iterdir()):
            tar.add(child, arcname=child.name)
        for name, data in (extra or {}).items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def test_the_published_archive(pytester: pytest.Pytester, tree: Path, tmp_path: Path) -> None:
    archive = make_archive(tree / "ale-tasks-data.tar.gz", all_data(tmp_path / "staged"))
    # two workers and the controller open it at once: one extracts, the others wait
    assert_oracle_passes(pytester, run(pytester, "--ale-data", "ale-tasks-data.tar.gz", "-n", "2"))
    extracted = list((tmp_path / "cache" / "archive").glob("ale-tasks-data-*"))
    assert len(extracted) == 1 and (extracted[0] / VARIANT / "reference" / "metadata").is_dir()
    marker = extracted[0] / ".ale-extracted"
    first = marker.stat().st_mtime_ns

    # unchanged: not extracted again
    assert_oracle_passes(pytester, run(pytester, "--ale-data", "ale-tasks-data.tar.gz"))
    assert marker.stat().st_mtime_ns == first

    # changed: extracted afresh, the old extraction gone
    os.utime(archive, ns=(first + 10**9, first + 10**9))
    assert_oracle_passes(pytester, run(pytester, "--ale-data", "ale-tasks-data.tar.gz"))
    again = list((tmp_path / "cache" / "archive").glob("ale-tasks-data-*"))
    assert len(again) == 1 and again != extracted


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/escape.txt"])
def test_an_unsafe_archive_is_refused(
    pytester: pytest.Pytester, tree: Path, tmp_path: Path, member: str
) -> None:
    staged = all_data(tmp_path / "staged")
    make_archive(tree / "evil.tar.gz", staged, {member: b"planted\n"})
    result = run(pytester, "--ale-data", "evil.tar.gz")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--ale-data {tree}/evil.tar.gz: refusing member {member!r}*"])
    assert not (tmp_path / "escape.txt").exists()
    assert not [p for p in (tmp_path / "cache" / "archive").iterdir() if not p.name.startswith(".")]

    no_file = run(pytester, "--ale-data", "nowhere.tar.gz")
    assert no_file.ret == pytest.ExitCode.USAGE_ERROR
    no_file.stderr.fnmatch_lines([f"*--ale-data {tree}/nowhere.tar.gz: no such archive*"])


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """The inputs in the open ``ale/ale-tasks-inputs`` (under ``v1/``), the references in
    ``ale/ale-tasks-references``, which needs ``TOKEN``."""
    pytest.importorskip("huggingface_hub")
    staged = all_data(tmp_path / "staged")
    repos = {
        "ale/ale-tasks-inputs": Repo.from_folder(staged, ("input", "software"), prefix="v1"),
        "ale/ale-tasks-references": Repo.from_folder(staged, ("reference",), token=TOKEN),
    }
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no saved login of the machine's
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("ALE_DATA_CACHE", str(tmp_path / "cache"))
    with FakeHub(repos) as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.endpoint)
        yield fake


def test_the_published_hub_repositories(pytester: pytest.Pytester, tree: Path, hub: FakeHub) -> None:
    args = (
        "--ale-data",
        "hf://ale/ale-tasks-inputs@main/v1",
        "--ale-reference",
        "hf://ale/ale-tasks-references",
    )
    # two workers fetch the same variant folder at once: one downloads, the other waits
    assert_oracle_passes(pytester, run(pytester, *args, "-n", "2"))
    assert hub.downloads() == [
        f"ale/ale-tasks-inputs:v1/{VARIANT}/input/contig.fasta",
        f"ale/ale-tasks-inputs:v1/{VARIANT}/software/README.txt",
        f"ale/ale-tasks-references:{VARIANT}/reference/metadata/targets.json",
    ]  # the task's own folders, each file once, nothing of the other tasks

    hub.requests.clear()
    assert_oracle_passes(pytester, run(pytester, *args))
    assert hub.downloads() == []  # cached: the commit did not change


def test_hub_errors_name_the_fix(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path("/nonexistent")
    refs = "hf://ale/ale-tasks-references"
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(
        ConfigError, match=r"needs a token \(401\) for ale/ale-tasks-references: set HF_TOKEN"
    ):
        open_store(refs, root, "--ale-reference")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(ConfigError, match=r"refused this token \(403\).*set HF_TOKEN"):
        open_store(refs, root, "--ale-reference")
    with pytest.raises(
        ConfigError, match=r"has no dataset repository 'ale/no-such-data' \(404\): check the name"
    ):
        open_store("hf://ale/no-such-data", root)
    with pytest.raises(ConfigError, match=r"has no revision 'v9'"):
        open_store("hf://ale/ale-tasks-inputs@v9", root)
    with pytest.raises(ConfigError, match=r"name a dataset repository, hf://OWNER/NAME"):
        open_store("hf://just-a-name", root)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens
    with pytest.raises(
        InfrastructureError, match=r"hf://ale/ale-tasks-inputs@main \(hub http://127\.0\.0\.1:\d+\)"
    ):
        open_store("hf://ale/ale-tasks-inputs", root)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(ConfigError, match=r"needs huggingface_hub: pip install 'pytest-ale\[huggingface\]'"):
        open_store("hf://ale/ale-tasks-inputs", root)
