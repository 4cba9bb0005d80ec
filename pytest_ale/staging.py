"""Moving task data as tar streams: folders in, output out, reference at grading time.

Every transfer is one archive each way. Extraction on the host is defensive: absolute
names, ``..``, links that point outside the destination, device files and archives over
the size cap are refused member by member, each refusal reported, never fatal to the rest.
"""

from __future__ import annotations

import io
import os
import queue
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import tarsafe
from .errors import OutputOverCap, StagingError

DEFAULT_MAX_OUTPUT_BYTES = 2 * 1024**3
#: files (and folders, links) ``output/`` may hold
DEFAULT_MAX_OUTPUT_FILES = 100_000


class SteadyTarFile(tarfile.TarFile):
    """A ``TarFile`` whose ``add`` survives a file changing size while it is read (an agent's
    log still being written): as GNU tar does, the member keeps the size it had when it was
    looked at, cut short or padded with zeros, instead of the stdlib's ``OSError``."""

    def addfile(self, tarinfo: tarfile.TarInfo, fileobj=None) -> None:  # type: ignore[override]
        if fileobj is not None and tarinfo.isreg():
            fileobj = _Exactly(fileobj, tarinfo.size)
        super().addfile(tarinfo, fileobj)


class _Exactly:
    """Reads exactly ``size`` bytes of ``raw``: what it holds, then zeros."""

    def __init__(self, raw, size: int) -> None:
        self.raw, self.left = raw, size

    def read(self, n: int = -1) -> bytes:
        want = self.left if n is None or n < 0 else min(n, self.left)
        data = self.raw.read(want) if want else b""
        if len(data) < want:  # the file shrank: pad, as GNU tar does
            data += bytes(want - len(data))
        self.left -= want
        return data


def tar_folders(folders: Mapping[str, Path], exclude: Iterable[str] = ()) -> bytes:
    """One tar stream holding each host folder under its name (``{"input": path}``).

    Modes and symlinks are kept as they are (links are not followed); folders that do
    not exist are skipped. ``exclude`` names top-level entries of the folders to leave out.
    """
    skipped = set(exclude)
    buf = io.BytesIO()
    with SteadyTarFile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname, folder in folders.items():
            folder = Path(folder)
            if not folder.is_dir():
                continue
            tar.add(
                folder,
                arcname=arcname,
                recursive=True,
                filter=lambda info: None if _top(info.name) in skipped else _normalize(info),
            )
    return buf.getvalue()


def tar_of_file(name: str, data: bytes, mode: int = 0o644) -> bytes:
    """A tar stream holding one regular file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_directory_contents(folder: Path) -> bytes:
    """A tar stream of the contents of ``folder`` (member names relative to it)."""
    buf = io.BytesIO()
    with SteadyTarFile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(folder.iterdir()):
            tar.add(entry, arcname=entry.name, recursive=True, filter=_normalize)
    return buf.getvalue()


def stream_folders(
    folders: Mapping[str, Path],
    *,
    uid: int | None = None,
    gid: int | None = None,
    chunk_size: int = 1 << 20,
    max_bytes: int | None = None,
) -> Iterator[bytes]:
    """Like ``tar_folders`` but streamed: chunks of about ``chunk_size`` bytes, produced by a
    thread as they are consumed, so 1 GiB of input never sits in memory. ``uid``/``gid``
    set the owner recorded for every member (default: 0, as ``tar_folders``); past
    ``max_bytes`` of file content the stream stops with a ``StagingError``."""
    total = 0

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        nonlocal total
        total += info.size if info.isfile() else 0
        if max_bytes is not None and total > max_bytes:
            raise StagingError(
                f"the folders to stage ({', '.join(map(str, folders.values()))}) exceed the "
                f"{max_bytes // 1024**2} MiB cap (max_input_mb in the provider preset)"
            )
        info = _normalize(info)
        info.uid, info.gid = uid or 0, gid or 0
        return info

    def produce(tar: tarfile.TarFile) -> None:
        for arcname, folder in folders.items():
            if Path(folder).is_dir():
                tar.add(folder, arcname=arcname, recursive=True, filter=owned)

    return tar_stream(produce, chunk_size=chunk_size)


def tar_stream(produce: Callable[[tarfile.TarFile], None], *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """A tar stream written by ``produce(tar)`` in a thread, read as chunks as it is written."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def run() -> None:
        writer = _ChunkWriter(chunks, chunk_size, stop)
        try:
            with SteadyTarFile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                produce(tar)
            writer.flush()
            _put(chunks, None, stop)
        except BaseException as exc:  # handed to the consumer, raised there
            if not stop.is_set():
                _put(chunks, exc, stop)

    threading.Thread(target=run, name="ale-tar-stream", daemon=True).start()
    try:
        while (item := chunks.get()) is not None:
            if isinstance(item, StagingError):
                raise item
            if isinstance(item, BaseException):
                raise StagingError(f"could not write the tar stream: {item}") from item
            yield item
    finally:
        stop.set()


class _ChunkWriter(io.RawIOBase):
    """A write-only file that hands its bytes to a queue in chunks."""

    def __init__(self, chunks: queue.Queue, size: int, stop: threading.Event) -> None:
        self.chunks, self.size, self.stop, self.buf = chunks, size, stop, bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buf += data
        if len(self.buf) >= self.size:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            _put(self.chunks, bytes(self.buf), self.stop)
            self.buf.clear()


def _put(chunks: queue.Queue, item: object, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            chunks.put(item, timeout=0.2)
            return
        except queue.Full:
            continue
    raise StagingError("the consumer of the tar stream went away")


def _top(name: str) -> str:
    parts = name.split("/")
    return parts[1] if len(parts) > 1 else ""


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


@dataclass
class ExtractReport:
    """What ``safe_extract`` did: files written and members it refused, with reasons."""

    files: int = 0
    bytes: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.refused


def safe_extract(
    data: bytes | io.BufferedIOBase,
    dest: Path,
    *,
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    max_files: int | None = None,
    strict: bool = False,
    strip_prefix: str = "",
) -> ExtractReport:
    """Extract a tar stream into ``dest``, refusing anything that could escape it.

    Uses the standard library's ``data`` filter per member, so one bad member (a symlink
    to ``/etc/passwd``, say) is skipped and reported while the rest are extracted. Past
    ``max_bytes`` of content or ``max_files`` members, a ``strict`` extraction stops with
    ``OutputOverCap`` (collecting an agent's output); otherwise the rest is refused.
    """
    dest.mkdir(parents=True, exist_ok=True)
    report = ExtractReport()
    fileobj = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|*")  # noqa: SIM115 - closed by `with` below
    except tarfile.TarError as exc:
        raise StagingError(f"not a tar stream: {exc}") from exc
    members = 0
    with tar:
        for member in tar:
            name = member.name
            if strip_prefix:
                if name.rstrip("/") == strip_prefix.rstrip("/"):
                    continue
                if not name.startswith(strip_prefix):
                    continue
                member.name = name[len(strip_prefix) :]
            members += 1
            over = None
            if member.isfile() and report.bytes + member.size > max_bytes:
                over = f"exceeds the {max_bytes / 1024**2:g} MiB cap"
            elif max_files is not None and members > max_files:
                over = f"holds more than {max_files} files and folders (the cap)"
            if over and strict:
                raise OutputOverCap(f"output/ {over}: not graded, the trial scores 0")
            if over:
                report.refused.append(f"{member.name}: output {over}")
                continue
            reason = tarsafe.refusal(member, dest)
            if reason:
                report.refused.append(f"{member.name}: {reason}")
                continue
            try:
                tarsafe.extract(tar, member, dest)
            except OSError as exc:
                report.refused.append(f"{member.name}: {exc}")
                continue
            if member.isfile():
                report.files += 1
                report.bytes += member.size
    return report


def larger_than(folders: Mapping[str, Path], limit: int) -> bool:
    """Whether the files under ``folders`` add up to more than ``limit`` bytes (stops early)."""
    total = 0
    pending = [Path(f) for f in folders.values() if Path(f).is_dir()]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
                    if total > limit:
                        return True
    return False
