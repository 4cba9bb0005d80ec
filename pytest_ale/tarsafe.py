"""Checking and extracting tar members safely, on every Python 3.11.

The standard library's extraction filters (``filter="data"``, ``tarfile.data_filter``,
``TarInfo.replace``) arrived in 3.11.4; Debian 12 ships 3.11.2. This module does the same
checks itself, so a member is judged the same way whatever the interpreter: no absolute
names, no ``..`` out of the destination, no links pointing outside it, no devices or
pipes; modes lose setuid/setgid/sticky and group/other write; files are owned by whoever
extracts them, never by the uid the archive names.
"""

from __future__ import annotations

import copy
import os
import tarfile
from pathlib import Path

#: the mode bits an extracted member keeps (no setuid/setgid/sticky, no group/other write)
KEPT_MODE = 0o755


def refusal(member: tarfile.TarInfo, dest: Path | str) -> str | None:
    """Why ``member`` must not be extracted into ``dest``, or ``None`` when it is safe."""
    root = os.path.realpath(dest)
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        return f"an absolute name ({name!r}); not extracted"
    target = os.path.realpath(os.path.join(root, name))
    if not _inside(target, root):
        return f"a name leading outside the folder ({name!r}); not extracted"
    if member.issym() or member.islnk():
        link = member.linkname
        base = os.path.dirname(target) if member.issym() else root
        resolved = os.path.realpath(os.path.join(base, link))
        if os.path.isabs(link) or not _inside(resolved, root):
            return (
                f"a link to {link!r}, outside the folder; not collected "
                "(write real files into output/, not links to elsewhere)"
            )
    if member.isdev() or member.isfifo():
        return "a device or pipe; not collected"
    return None


def sanitized(member: tarfile.TarInfo, *, uid: int | None = None, gid: int | None = None) -> tarfile.TarInfo:
    """A copy of ``member`` with its mode trimmed to ``KEPT_MODE`` and the owner given
    (default: this process's), names of owners dropped."""
    clean = copy.copy(member)
    clean.mode = member.mode & KEPT_MODE
    clean.uid = os.geteuid() if uid is None else uid
    clean.gid = os.getegid() if gid is None else gid
    clean.uname = clean.gname = ""
    return clean


def extract(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    """Extract one member already cleared by ``refusal`` (raises ``OSError`` on failure)."""
    clean = sanitized(member)
    if hasattr(tarfile, "data_filter"):  # 3.11.4+: the standard library's check on top
        try:
            tar.extract(clean, dest, numeric_owner=True, filter="data")
        except tarfile.FilterError as exc:
            raise OSError(str(exc)) from exc
        return
    tar.extract(clean, dest, numeric_owner=True)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
