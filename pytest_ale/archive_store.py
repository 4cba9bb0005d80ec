"""ALE task data from one archive: ``--ale-data ale-tasks-data.tar.gz``.

ALE publishes its task data as one archive laid out
``<domain>/<task>/<variant>/{input,software,reference}``. The archive is extracted once into
the host cache, ``archive/<name>-<key>/`` under ``$ALE_DATA_CACHE``, the key a hash of the
archive's real path, size and modification time: an unchanged archive is never extracted
again (the workers of an ``-n N`` run wait for the first), a changed one is extracted afresh
and its old extraction removed. Every member is checked by ``tarsafe`` before it is written
(no absolute names, no ``..``, no links leading out, no devices or pipes; modes trimmed):
one refused member refuses the archive, naming it and the member.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path

from . import tarsafe
from .errors import ConfigError
from .store_base import DataStore, locked

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
DONE = ".ale-extracted"


class ArchiveStore(DataStore):
    """A ``.tar.gz`` of the data, served from its extraction in the host cache."""

    def __init__(self, archive: Path, cache: Path, option: str = "--ale-data") -> None:
        self.archive, self.option, self.url = archive, option, str(archive)
        if not archive.is_file():
            raise ConfigError(
                f"{option} {archive}: no such archive (name a .tar.gz laid out "
                "<domain>/<task>/<variant>/{input,software,reference}, or a folder)"
            )
        stat = archive.stat()
        self.identity = {
            "archive": str(archive.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
        key = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:16]
        self.stem = next(archive.name[: -len(s)] for s in ARCHIVE_SUFFIXES if archive.name.endswith(s))
        self.root = cache / "archive" / f"{self.stem}-{key}"
        self._extract()

    def has(self, rel: Sequence[str]) -> bool:
        return self.root.joinpath(*rel).is_dir()

    def folder(self, rel: Sequence[str]) -> Path:
        return self.root.joinpath(*rel)

    def where(self, rel: Sequence[str]) -> str:
        return f"{'/'.join(rel)} in {self.url}"

    def _extract(self) -> None:
        if (self.root / DONE).is_file():
            return
        with locked(self.root.parent / f".{self.root.name}.lock"):
            if (self.root / DONE).is_file():
                return  # another worker extracted it while this one waited
            partial = self.root.with_name(self.root.name + ".part")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(self.root, ignore_errors=True)
            partial.mkdir(parents=True)
            try:
                self._unpack(partial)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
            (partial / DONE).write_text(json.dumps(self.identity))
            os.replace(partial, self.root)
        self._drop_stale()

    def _unpack(self, dest: Path) -> None:
        where = f"{self.option} {self.archive}"
        try:
            with tarfile.open(self.archive, "r:*") as tar:
                for member in tar:
                    reason = tarsafe.refusal(member, dest)
                    if reason:
                        raise ConfigError(f"{where}: refusing member {member.name!r}: {reason.split(';')[0]}")
                    if member.isdir():  # its files still go in, whatever mode it names
                        member = copy.copy(member)
                        member.mode |= 0o700
                    tarsafe.extract(tar, member, dest)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ConfigError(f"{where}: not a readable tar archive ({type(exc).__name__}: {exc})") from None

    def _drop_stale(self) -> None:
        """Remove earlier extractions of this same archive path (it changed since)."""
        for other in self.root.parent.glob(f"{self.stem}-*"):
            if other == self.root or not other.is_dir():
                continue
            try:
                seen = json.loads((other / DONE).read_text())
            except (OSError, ValueError):
                continue
            if seen.get("archive") == self.identity["archive"]:
                shutil.rmtree(other, ignore_errors=True)
