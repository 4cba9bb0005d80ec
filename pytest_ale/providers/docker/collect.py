"""Collecting a container's ``output/`` to disk as a stream, capped (``DockerSandbox.collect``).

The engine's archive of the folder is stripped of its top entry while it is read
(``archive.stripped``) and extracted by ``staging.safe_extract``, which counts bytes
and members as it goes: past ``max_output_mb`` or ``max_output_files`` the agent's output is
refused (``OutputOverCap``, naming both options). A torn engine archive (a file still being
written) is asked for again; at last GNU tar in the container makes it, spooled to a
temporary file on the host, never held in memory.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from ...errors import OutputOverCap, StagingError
from ...staging import ExtractReport, safe_extract
from ..tar_shell import archive_result
from .archive import ChunkReader, stripped


class Container(Protocol):
    """What collecting needs of a ``DockerSandbox`` (a protocol: no import of it here)."""

    name: str
    max_output_bytes: int
    max_output_files: int

    def engine_stream(self, src: str) -> tuple[Iterator[bytes], str | None]: ...

    def tar_to_file(self, src: str, spool: Any, limit: int) -> Any: ...


#: engine archive requests tried before tar in the container makes the archive
ENGINE_ATTEMPTS = 3


def collect_output(sandbox: Container, src: str, dest: Path) -> ExtractReport:
    """Folder ``src`` of the container into host folder ``dest``, capped."""
    for _ in range(ENGINE_ATTEMPTS):
        try:
            return _from_engine(sandbox, src, dest)
        except OutputOverCap:
            raise
        except StagingError as exc:
            if not isinstance(exc.__cause__, tarfile.TarError):
                raise
        except tarfile.TarError:
            pass
        _empty(dest)
    # headers of every member allowed, generously, on top of the content cap
    limit = sandbox.max_output_bytes + (sandbox.max_output_files + 1) * 8192 + 64 * 1024**2
    with tempfile.TemporaryFile(prefix="ale-collect-") as spool:
        done = sandbox.tar_to_file(src, spool, limit)
        archive_result(sandbox.name, src, done.exit_code, b"", done.stderr)
        if spool.tell() >= limit:
            raise OutputOverCap(f"{src}: its archive exceeds {limit // 1024**2} MiB ({caps_named(sandbox)})")
        spool.seek(0)
        return _extract(sandbox, spool, dest)


def _from_engine(sandbox: Container, src: str, dest: Path) -> ExtractReport:
    chunks, top = sandbox.engine_stream(src)
    if top is not None:  # a folder: strip the folder itself
        chunks = stripped(chunks, top=top)
    return _extract(sandbox, io.BufferedReader(ChunkReader(chunks), 1 << 20), dest)


def _extract(sandbox: Container, stream: Any, dest: Path) -> ExtractReport:
    try:
        return safe_extract(
            stream, dest, max_bytes=sandbox.max_output_bytes, max_files=sandbox.max_output_files, strict=True
        )
    except OutputOverCap as exc:
        raise OutputOverCap(f"{exc} ({caps_named(sandbox)})") from exc


def caps_named(sandbox: Container) -> str:
    """The caps and the options that set them, for a message."""
    return (
        f"the docker provider's caps: max_output_mb={sandbox.max_output_bytes // 1024**2}, "
        f"max_output_files={sandbox.max_output_files}; raise them with --ale-provider-opt "
        "or in providers/docker.yaml"
    )


def _empty(folder: Path) -> None:
    """Remove what a failed attempt extracted into ``folder`` (the folder stays)."""
    for entry in Path(folder).iterdir() if Path(folder).is_dir() else ():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
