"""The docker provider's tar handling, without an engine: streaming, re-owning, checking,
and stripping Docker's folder entry."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pytest_ale.errors import StagingError
from pytest_ale.providers.docker.archive import STREAM_ABOVE, contents, restamp, stripped
from pytest_ale.staging import stream_folders, tar_folders, tar_stream


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar}


def tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.sh").write_text("#!/bin/sh\n")
    (root / "sub" / "b.sh").chmod(0o755)
    (root / "link").symlink_to("a.txt")
    return root


def test_stream_folders_equals_tar_folders_with_the_owner_asked_for(tmp_path: Path) -> None:
    folder = tree(tmp_path / "in")
    streamed = members(b"".join(stream_folders({"input": folder}, uid=1000, gid=1001, chunk_size=64)))
    whole = members(tar_folders({"input": folder}))
    assert (
        sorted(streamed)
        == sorted(whole)
        == ["input", "input/a.txt", "input/link", "input/sub", "input/sub/b.sh"]
    )
    assert {(m.uid, m.gid) for m in streamed.values()} == {(1000, 1001)}
    assert streamed["input/sub/b.sh"].mode & 0o777 == 0o755
    assert streamed["input/link"].linkname == "a.txt"


def test_a_failing_producer_surfaces_as_a_staging_error() -> None:
    def produce(tar: tarfile.TarFile) -> None:
        raise OSError("disk on fire")

    with pytest.raises(StagingError, match="disk on fire"):
        b"".join(tar_stream(produce))


def test_restamp_re_owns_and_refuses_escapes(tmp_path: Path) -> None:
    data = tar_folders({"input": tree(tmp_path / "in")})
    body, refused = restamp(data, uid=1000, gid=1000, own_root=True)
    assert isinstance(body, bytes) and refused == []
    got = members(body)
    assert got["."].isdir() and (got["."].uid, got["input/a.txt"].uid) == (1000, 1000)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, link in (("../up", tarfile.REGTYPE, ""), ("abs", tarfile.SYMTYPE, "/etc/passwd")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            tar.addfile(info, io.BytesIO(b""))
        tar.addfile(tarfile.TarInfo("fine"), io.BytesIO(b""))
    body, refused = restamp(buf.getvalue(), uid=0, gid=0)
    assert [r.split(":")[0] for r in refused] == ["../up", "abs"]
    assert list(members(body)) == ["fine"]


def test_restamp_caps_and_streams_big_archives(tmp_path: Path) -> None:
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "blob").write_bytes(b"x" * (STREAM_ABOVE + 1))
    data = tar_folders({"big": tmp_path / "big"})
    with pytest.raises(StagingError, match="cap"):
        restamp(data, uid=0, gid=0, max_bytes=1024)
    body, _ = restamp(data, uid=7, gid=7)
    assert not isinstance(body, bytes)
    got = members(b"".join(body))
    assert got["big/blob"].size == STREAM_ABOVE + 1 and got["big/blob"].uid == 7


def test_contents_strips_the_folder_docker_puts_on_top(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tree(tmp_path / "output"), arcname="output")
        hard = tarfile.TarInfo("output/hard")
        hard.type, hard.linkname = tarfile.LNKTYPE, "output/a.txt"
        tar.addfile(hard)
    raw = buf.getvalue()
    stripped = members(
        contents([raw[i : i + 100] for i in range(0, len(raw), 100)], top="output", max_bytes=10**6)
    )
    assert sorted(stripped) == ["a.txt", "hard", "link", "sub", "sub/b.sh"]
    assert stripped["hard"].linkname == "a.txt"
    big = tarfile.TarInfo("output/big")
    big.size = 100 * 1024**2
    with pytest.raises(StagingError, match="cap"):  # read lazily: refused while streaming
        contents([big.tobuf(), *([b"\0" * 1024**2] * 100)], top="output", max_bytes=1)


def test_long_names_lose_the_folder_docker_puts_on_top(tmp_path: Path) -> None:
    """Docker writes names over 100 characters as PAX ``path`` records; a renamed member
    must not keep the old record (it put them back under ``output/``)."""
    long_name, long_path = "n" * 200, "/".join(["d" * 120, "e" * 120, "f" * 70])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((long_name, b"a"), (long_path, b"b")):
            info = tarfile.TarInfo(f"output/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("output/hard")
        link.type, link.linkname = tarfile.LNKTYPE, f"output/{long_path}"
        tar.addfile(link)
    raw = buf.getvalue()
    for data in (
        contents([raw], top="output", max_bytes=10**6),
        b"".join(stripped([raw[i : i + 700] for i in range(0, len(raw), 700)], top="output")),
    ):
        got = members(data)
        assert sorted(got) == sorted([long_name, long_path, "hard"])
        assert got["hard"].linkname == long_path
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert tar.extractfile(long_path).read() == b"b"  # type: ignore[union-attr]
