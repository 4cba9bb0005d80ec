"""Safe extraction judges members the same with or without the standard library's
extraction filters (Python 3.11.4+; Debian 12 ships 3.11.2, which lacks them)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pytest_ale.staging import SteadyTarFile, safe_extract


def member(tar: tarfile.TarFile, name: str, *, data: bytes = b"x", **fields) -> None:
    info = tarfile.TarInfo(name)
    for key, value in fields.items():
        setattr(info, key, value)
    if info.isfile():
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def hostile_archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member(tar, "ok.txt", data=b"fine\n", mode=0o644, uid=4242, gid=4242, uname="nobody")
        member(tar, "tool.sh", data=b"#!/bin/sh\n", mode=0o6777)
        member(tar, "/etc/evil", data=b"abs")
        member(tar, "../escape.txt", data=b"up")
        member(tar, "sub/../../escape2.txt", data=b"up")
        member(tar, "to-etc", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        member(tar, "up", type=tarfile.SYMTYPE, linkname="../..")
        member(tar, "inside", type=tarfile.SYMTYPE, linkname="ok.txt")
        member(tar, "hard", type=tarfile.LNKTYPE, linkname="../outside")
        member(tar, "dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        member(tar, "fifo", type=tarfile.FIFOTYPE)
    return buf.getvalue()


@pytest.fixture(params=["stdlib filters", "no stdlib filters"])
def interpreter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no stdlib filters":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


def test_hostile_members_are_refused_and_the_rest_extracted(tmp_path: Path, interpreter: str) -> None:
    dest = tmp_path / "out"
    report = safe_extract(hostile_archive(), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["inside", "ok.txt", "tool.sh"]
    refused = {line.split(":", 1)[0] for line in report.refused}
    assert refused == {
        "/etc/evil",
        "../escape.txt",
        "sub/../../escape2.txt",
        "to-etc",
        "up",
        "hard",
        "dev",
        "fifo",
    }, report.refused
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "escape2.txt").exists()
    assert (dest / "ok.txt").read_text() == "fine\n" and os.readlink(dest / "inside") == "ok.txt"
    owner = (dest / "ok.txt").stat()
    assert (owner.st_uid, owner.st_gid) == (os.geteuid(), os.getegid())  # not the archive's 4242
    mode = stat.S_IMODE((dest / "tool.sh").stat().st_mode)
    assert mode == 0o755  # no setuid/setgid, no group/other write
    assert report.files == 2


def test_writing_through_a_link_extracted_earlier_is_refused(tmp_path: Path, interpreter: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "door").symlink_to(outside)  # left by an earlier step, say
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        member(tar, "door/planted.txt", data=b"gotcha")
    report = safe_extract(buf.getvalue(), dest)
    assert list(outside.iterdir()) == []
    assert [line.split(":", 1)[0] for line in report.refused] == ["door/planted.txt"]


@pytest.mark.parametrize("now", [10, 200], ids=["shrank", "grew"])
def test_a_file_changing_size_while_archived_keeps_its_looked_at_size(tmp_path: Path, now: int) -> None:
    """What GNU tar does (the stdlib raises ``OSError: unexpected end of data`` on a shrink):
    the member keeps the size the file had when stat'd, cut short or padded with zeros."""
    path = tmp_path / "log.txt"
    path.write_bytes(b"x" * 100)
    buf = io.BytesIO()
    with SteadyTarFile.open(fileobj=buf, mode="w") as tar:
        info = tar.gettarinfo(str(path), arcname="log.txt")
        path.write_bytes(b"y" * now)  # the writer went on between stat and read
        with path.open("rb") as fh:
            tar.addfile(info, fh)
        tar.add(tmp_path / "log.txt", arcname="after.txt")  # the archive goes on, intact
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        changed = tar.extractfile("log.txt")
        after = tar.extractfile("after.txt")
        assert changed is not None and after is not None
        assert changed.read() == (b"y" * 10 + bytes(90) if now == 10 else b"y" * 100)
        assert after.read() == b"y" * now
