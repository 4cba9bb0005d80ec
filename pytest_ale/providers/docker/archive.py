"""Tar streams to and from Docker's archive API, made safe and shaped as ``Sandbox`` wants.

In: every member is checked with the standard library's ``data`` filter (no absolute
names, no ``..``, no links leaving the folder, no devices) and given the owner it should
have inside the container (the agent's uid for its workspace), in one pass.

Out: Docker returns folder ``src`` as ``src/name`` members plus a ``src`` entry; the
``Sandbox`` interface promises the folder's contents with plain relative names, under a
size cap: ``contents`` in memory, ``stripped`` as a stream (collecting ``output/`` to disk).

A renamed member must lose the PAX ``path`` / ``linkpath`` records it was read with (Docker
writes them for names over 100 characters): ``tarfile`` writes a member's old PAX records
in preference to its new name, which put long names back under ``src/``.
"""

from __future__ import annotations

import copy
import io
import tarfile
from collections.abc import Iterable, Iterator

from ... import tarsafe
from ...errors import StagingError
from ...staging import tar_stream

#: PAX records that name or own a member: dropped when a member is renamed or re-owned
_NAME_KEYS = frozenset({"path", "linkpath"})
_OWNER_KEYS = frozenset({"uid", "gid", "uname", "gname"})

#: where member names are resolved while checking them (never touched on the host)
_CHECK_ROOT = "/nonexistent-ale-check-root"
#: archives bigger than this are re-written while they are sent
STREAM_ABOVE = 32 * 1024**2


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (an HTTP body, say)."""

    def __init__(self, chunks: Iterable[bytes], limit: int | None = None) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""
        self.limit = limit
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self.total += len(chunk)
            if self.limit is not None and self.total > self.limit:
                raise StagingError(f"the archive exceeds the {self.limit // 1024**2} MiB cap")
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def restamp(
    data: bytes,
    *,
    uid: int,
    gid: int,
    own_root: bool = False,
    max_bytes: int | None = None,
) -> tuple[bytes | Iterator[bytes], list[str]]:
    """``data`` with every member owned by ``uid:gid``, and the members it refused.

    Unsafe members (``"name: why"``) are left out. Small archives come back as bytes; big
    ones as a stream re-written while it is sent, never a second copy in memory. ``own_root``
    adds a ``.`` entry so the destination folder itself becomes ``uid``'s too.
    """
    refused: list[str] = []
    bad: set[int] = set()
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as src:
        for member in src:
            reason = tarsafe.refusal(member, _CHECK_ROOT)
            if reason:
                refused.append(f"{member.name}: {reason}")
                bad.add(member.offset)
                continue
            total += member.size if member.isfile() else 0
    if max_bytes is not None and total > max_bytes:
        raise StagingError(
            f"the staged data ({total // 1024**2} MiB) exceeds the {max_bytes // 1024**2} MiB cap"
        )

    def produce(dst: tarfile.TarFile) -> None:
        if own_root:
            dst.addfile(_owned(tarfile.TarInfo("."), uid, gid, tarfile.DIRTYPE, 0o755))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as src:
            for member in src:
                if member.offset in bad:
                    continue
                info = tarsafe.sanitized(member, uid=uid, gid=gid)
                info.pax_headers = _without(member.pax_headers, _OWNER_KEYS)
                info.mode = member.mode & 0o777
                dst.addfile(info, src.extractfile(member) if member.isfile() else None)

    if len(data) > STREAM_ABOVE:
        return tar_stream(produce), refused
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        produce(dst)
    return out.getvalue(), refused


def _owned(info: tarfile.TarInfo, uid: int, gid: int, kind: bytes, mode: int) -> tarfile.TarInfo:
    info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
    return info


def contents(chunks: Iterable[bytes], *, top: str, max_bytes: int) -> bytes:
    """Docker's archive of folder ``top`` with that folder stripped: its contents only."""
    out = io.BytesIO()
    reader = io.BufferedReader(ChunkReader(chunks, limit=max_bytes + 64 * 1024**2), 1 << 20)
    with (
        tarfile.open(fileobj=reader, mode="r|") as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst,
    ):
        _strip_all(src, dst, top)
    return out.getvalue()


def stripped(chunks: Iterable[bytes], *, top: str) -> Iterator[bytes]:
    """Like ``contents``, as a stream rewritten while it is read (constant memory); the
    caller caps it (``safe_extract`` counts bytes and members as it extracts)."""

    def produce(dst: tarfile.TarFile) -> None:
        reader = io.BufferedReader(ChunkReader(chunks), 1 << 20)
        with tarfile.open(fileobj=reader, mode="r|") as src:
            _strip_all(src, dst, top)

    return tar_stream(produce)


def _strip_all(src: tarfile.TarFile, dst: tarfile.TarFile, top: str) -> None:
    for member in src:
        name = _strip(member.name, top)
        if not name:
            continue
        info = copy.copy(member)  # TarInfo.replace is 3.11.4+
        info.name = name
        info.pax_headers = _without(member.pax_headers, _NAME_KEYS)
        if member.islnk():
            info.linkname = _strip(member.linkname, top)
        dst.addfile(info, src.extractfile(member) if member.isfile() else None)


def _without(pax: dict[str, str], keys: frozenset[str]) -> dict[str, str]:
    return {k: v for k, v in pax.items() if k not in keys}


def _strip(name: str, top: str) -> str:
    name = name.lstrip("/")
    if name == top or name == top + "/":
        return ""
    return name[len(top) + 1 :] if name.startswith(top + "/") else name


def one_file(name: str, data: bytes, uid: int, gid: int) -> bytes:
    """A tar archive of one file ``name`` (mode 0600, owned by ``uid``:``gid``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), 0o600, uid, gid
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
