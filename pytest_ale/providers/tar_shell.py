"""Archiving a path with the machine's own GNU tar, for providers that read files by
running a command (SSH machines; Docker when the engine's archive was torn).

The shapes match ``Sandbox.get_archive``: a folder gives its contents (names relative to
it, sorted), one file gives a single member named after it.
"""

from __future__ import annotations

import shlex

from ..errors import StagingError

#: the script's exit code when the path does not exist
MISSING = 44
#: GNU tar -c: "some files differ" (one changed or shrank while it was read). The archive is
#: whole and holds the bytes as they were read, so this is not a failure.
FILES_CHANGED = 1


def archive_script(src: str) -> str:
    """A ``sh`` script writing the tar stream of ``src`` to stdout."""
    path = shlex.quote(src.rstrip("/") or "/")
    return (
        f"if [ -d {path} ] && [ ! -L {path} ]; then cd {path} && "
        "find . -mindepth 1 -maxdepth 1 -printf '%P\\0' | LC_ALL=C sort -z | "
        "tar --null -T - -cf -; "
        f'elif [ -e {path} ] || [ -L {path} ]; then cd "$(dirname {path})" && '
        f'tar -cf - "$(basename {path})"; else exit {MISSING}; fi'
    )


def archive_result(where: str, src: str, exit_code: int | None, stdout: bytes, stderr: bytes) -> bytes:
    """The archive from a run of ``archive_script``, or the error its exit code means."""
    if exit_code == MISSING:
        raise FileNotFoundError(src)
    if exit_code not in (0, FILES_CHANGED):
        said = stderr.decode("utf-8", "replace").strip() or f"tar exited {exit_code}"
        raise StagingError(f"{where}: archiving {src} failed: {said}")
    return stdout
