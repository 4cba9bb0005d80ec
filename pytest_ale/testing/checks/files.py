"""Conformance: files. A staging round trip (modes, symlinks, nested folders, binary data),
a file read while something rewrites it, names past tar's old length limits; the edges:
empty files and folders, a folder or a missing file read (a clear error), new nested
folders and relative paths, writing over a read-only file or a folder, a file the agent
made unreadable, large and UTF-8 files."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import tempfile
from pathlib import Path

import pytest

from ...sandbox import Sandbox

LONG_NAME = "n" * 196 + ".txt"  # 200 characters: past tar's 100-character name field
LONG_PATH = "/".join(["d" * 120, "e" * 120, "f" * 76 + ".txt"])  # 318 characters: past 255


def _tree(src: str) -> dict[str, tuple[bytes, int]]:
    """Write a small tree of files of several modes under host folder ``src``."""
    os.makedirs(os.path.join(src, "nested", "deeper"))
    files = {
        "run.sh": (b"#!/bin/sh\necho ran\n", 0o755),
        "secret.txt": (b"only me\n", 0o600),
        "nested/deeper/blob.bin": (bytes(range(256)) * 64, 0o644),
        "name with spaces.txt": (b"spaces\n", 0o644),
    }
    for rel, (data, mode) in files.items():
        with open(os.path.join(src, rel), "wb") as fh:
            fh.write(data)
        os.chmod(os.path.join(src, rel), mode)
    os.symlink("deeper/blob.bin", os.path.join(src, "nested", "link"))
    return files


def test_staging_round_trip(ale_conformance_sandbox: Sandbox) -> None:
    sandbox = ale_conformance_sandbox
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        files = _tree(src)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for entry in sorted(os.listdir(src)):
                tar.add(os.path.join(src, entry), arcname=entry)
    dest = sandbox.path("in")
    sandbox.put_archive(dest, buf.getvalue())
    assert sandbox.exec([sandbox.path("in", "run.sh")]).stdout == "ran\n"
    with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive(dest))) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        for rel, (data, mode) in files.items():
            assert members[rel].isfile(), rel
            assert members[rel].mode & 0o777 == mode, rel
            extracted = tar.extractfile(members[rel])
            assert extracted is not None and extracted.read() == data
        assert members["nested/link"].issym()
        assert members["nested/link"].linkname == "deeper/blob.bin"
        assert members["nested/deeper"].isdir()
    blob = files["nested/deeper/blob.bin"][0]
    assert sandbox.read_bytes(sandbox.path("in", "nested", "deeper", "blob.bin")) == blob
    sandbox.write_bytes(sandbox.path("out", "x.bin"), b"\x00\xff")
    assert sandbox.read_bytes(sandbox.path("out", "x.bin")) == b"\x00\xff"
    assert sandbox.exists(sandbox.path("in")) and sandbox.is_dir(sandbox.path("in"))
    assert sandbox.listdir(sandbox.path("out")) == ["x.bin"]
    with pytest.raises(FileNotFoundError):
        sandbox.get_archive(sandbox.path("absent"))


def test_reading_a_file_that_is_being_rewritten_succeeds(ale_conformance_sandbox: Sandbox) -> None:
    """A pull while something still writes (a grader reading a live log) gets the bytes as
    they were, not an error: GNU tar's "file changed as we read it" is not a failure."""
    sandbox = ale_conformance_sandbox
    busy = sandbox.path("busy", "log.bin")
    loop = f"mkdir -p {sandbox.path('busy')}; while :; do yes | head -c 1000000 > {busy}; done"
    assert sandbox.sh(f"setsid sh -c '{loop}' >/dev/null 2>&1 & sleep 0.3").ok
    try:
        for _ in range(15):
            assert len(sandbox.read_bytes(busy)) <= 1000000
            with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive(sandbox.path("busy")))) as tar:
                assert [m.name.removeprefix("./") for m in tar.getmembers()] == ["log.bin"]
    finally:
        sandbox.kill_all()


def _write_long_names(sandbox: Sandbox) -> None:
    out = sandbox.path("output")
    script = f'mkdir -p "{out}/{LONG_PATH.rpartition("/")[0]}" && cd "{out}" && '
    script += f'printf short > "{LONG_NAME}" && printf deep > "{LONG_PATH}"'
    assert sandbox.sh(script).ok


def test_long_names_survive_get_archive_and_collect(ale_conformance_sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox = ale_conformance_sandbox
    _write_long_names(sandbox)
    with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive(sandbox.path("output")))) as tar:
        files = {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert files == {LONG_NAME: b"short", LONG_PATH: b"deep"}
    sandbox.collect(sandbox.path("output"), tmp_path / "out")
    assert (tmp_path / "out" / LONG_NAME).read_text() == "short"
    assert (tmp_path / "out" / LONG_PATH).read_text() == "deep"


def test_zero_length_files_and_empty_folders(ale_conformance_sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox = ale_conformance_sandbox
    sandbox.write_bytes(sandbox.path("empty.bin"), b"")
    assert sandbox.read_bytes(sandbox.path("empty.bin")) == b""
    assert sandbox.exec(["touch", "touched"]).ok
    assert sandbox.read_text(sandbox.path("touched")) == ""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        folder = tarfile.TarInfo("hollow")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        tar.addfile(tarfile.TarInfo("hollow.txt"), io.BytesIO(b""))
    sandbox.put_archive(sandbox.path("output"), buf.getvalue())
    assert (
        sandbox.is_dir(sandbox.path("output", "hollow"))
        and sandbox.listdir(sandbox.path("output", "hollow")) == []
    )
    with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive(sandbox.path("output", "hollow.txt")))) as tar:
        assert [(m.name, m.size) for m in tar.getmembers()] == [("hollow.txt", 0)]
    sandbox.collect(sandbox.path("output"), tmp_path / "out")
    assert (tmp_path / "out" / "hollow").is_dir() and (tmp_path / "out" / "hollow.txt").read_bytes() == b""


def test_reading_a_folder_is_a_clear_error(ale_conformance_sandbox: Sandbox) -> None:
    """``read_bytes`` of a folder raises ``IsADirectoryError`` naming it, even one holding a
    single file (whose bytes it must not return instead)."""
    sandbox = ale_conformance_sandbox
    sandbox.write_text(sandbox.path("one", "only.txt"), "inside")
    for folder in (sandbox.path("one"), sandbox.workdir, "/etc"):
        with pytest.raises(IsADirectoryError, match=re.escape(folder)):
            sandbox.read_bytes(folder)


def test_a_missing_file_is_file_not_found_naming_it(ale_conformance_sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox = ale_conformance_sandbox
    for path in (sandbox.path("absent.txt"), sandbox.path("https:/en.wikipedia.org/wiki/Bart%C5%82omiej")):
        with pytest.raises(FileNotFoundError, match=re.escape(path)):
            sandbox.read_bytes(path)
        with pytest.raises(FileNotFoundError, match=re.escape(path)):
            sandbox.get_archive(path)
        assert not sandbox.exists(path) and not sandbox.is_file(path) and not sandbox.is_dir(path)
    with pytest.raises(FileNotFoundError):
        sandbox.listdir(sandbox.path("absent"))
    with pytest.raises(FileNotFoundError):
        sandbox.collect(sandbox.path("absent"), tmp_path / "out")


def test_writing_makes_new_nested_folders_and_takes_relative_paths(ale_conformance_sandbox: Sandbox) -> None:
    """Paths not starting with ``/`` are under the workspace, for files as for ``cwd``."""
    sandbox = ale_conformance_sandbox
    deep = sandbox.path("new", "a", "b c", "d", "file.txt")
    sandbox.write_text(deep, "deep")
    assert sandbox.read_text(deep) == "deep"
    assert sandbox.exec(["cat", "new/a/b c/d/file.txt"]).stdout == "deep"
    sandbox.write_text("rel/dir/r.txt", "relative")
    assert sandbox.read_text(sandbox.path("rel", "dir", "r.txt")) == "relative"
    assert sandbox.read_text("rel/dir/r.txt") == "relative"
    assert sandbox.is_file("rel/dir/r.txt") and sandbox.is_dir("rel") and sandbox.exists("rel/dir")
    assert sandbox.listdir("rel/dir") == ["r.txt"]
    sandbox.mkdir("rel/made")
    assert sandbox.is_dir(sandbox.path("rel", "made"))
    with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive("rel"))) as tar:
        assert sorted(m.name.removeprefix("./") for m in tar.getmembers()) == ["dir", "dir/r.txt", "made"]


def test_writing_replaces_a_file_even_read_only_but_never_a_folder(ale_conformance_sandbox: Sandbox) -> None:
    sandbox = ale_conformance_sandbox
    assert sandbox.sh("printf agent > ro.txt && chmod 444 ro.txt").ok
    sandbox.write_text(sandbox.path("ro.txt"), "replaced")
    assert sandbox.read_text(sandbox.path("ro.txt")) == "replaced"
    sandbox.write_text(sandbox.path("box", "kept.txt"), "kept")
    with pytest.raises(IsADirectoryError, match=re.escape(sandbox.path("box"))):
        sandbox.write_text(sandbox.path("box"), "not into a folder")
    assert sandbox.read_text(sandbox.path("box", "kept.txt")) == "kept"


def test_a_file_the_agent_made_unreadable_is_read_or_a_clear_error(ale_conformance_sandbox: Sandbox) -> None:
    """The harness reads what the agent closed to everyone (``chmod 000``): its bytes, or
    ``PermissionError`` naming it where the provider's own account cannot."""
    sandbox = ale_conformance_sandbox
    assert sandbox.sh("printf hidden > closed.txt && chmod 000 closed.txt").ok
    try:
        assert sandbox.read_bytes(sandbox.path("closed.txt")) == b"hidden"
    except PermissionError as exc:
        assert sandbox.path("closed.txt") in str(exc)


def test_large_binary_and_utf8_files_round_trip(ale_conformance_sandbox: Sandbox) -> None:
    sandbox = ale_conformance_sandbox
    big = hashlib.sha256(b"ale").digest() * (8 * 1024**2 // 32) + b"\xc3\x28"  # 8 MiB, not UTF-8
    sandbox.write_bytes(sandbox.path("big.bin"), big)
    assert sandbox.read_bytes(sandbox.path("big.bin")) == big
    assert sandbox.exec(["wc", "-c", "big.bin"]).stdout.split()[0] == str(len(big))
    text = "✨ café ☽︎ 🚀\nsecond line"
    sandbox.write_text(sandbox.path("utf8.txt"), text)
    assert sandbox.read_text(sandbox.path("utf8.txt")) == text
    assert sandbox.exec(["cat", "utf8.txt"]).stdout == text
