"""What every source of ALE task data shares: ``DataStore`` (folders by relative parts),
the local folder, the host cache and its helpers (one writer per folder, names kept inside
their folder). The kinds of source are in ``datastore.py`` (buckets, and the dispatch on
``--ale-data``), ``archive_store.py`` (a ``.tar.gz``) and ``hub_store.py`` (Hugging Face).
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import os
import posixpath
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import InfrastructureError

MANIFEST = ".ale-manifest.json"


class DataStore(abc.ABC):
    """The root of the task data: folders by relative parts (``domain, task, variant``)."""

    url: str

    @abc.abstractmethod
    def has(self, rel: Sequence[str]) -> bool:
        """Whether the variant folder ``rel`` exists (cheap: collection asks it per variant)."""

    @abc.abstractmethod
    def folder(self, rel: Sequence[str]) -> Path:
        """The variant folder on this host (fetched first when the store is remote)."""

    def where(self, rel: Sequence[str]) -> str:
        return "/".join([self.url.rstrip("/"), *rel])


class LocalStore(DataStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def has(self, rel: Sequence[str]) -> bool:
        return self.root.joinpath(*rel).is_dir()

    def folder(self, rel: Sequence[str]) -> Path:
        return self.root.joinpath(*rel)


def cache_root() -> Path:
    """The host cache of fetched task data: ``$ALE_DATA_CACHE``, else ``~/.cache/pytest-ale/data``."""
    override = os.environ.get("ALE_DATA_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "pytest-ale" / "data"


def inside(folder: Path, name: str, where: str) -> Path:
    """``folder/name``, refusing a name that leads out of ``folder`` (or is the manifest)."""
    clean = posixpath.normpath(name)
    if clean.startswith(("/", "../")) or clean in ("..", ".", MANIFEST):
        raise InfrastructureError(f"task data at {where}: refusing object {name!r} (outside its folder)")
    return folder / clean


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One writer of a cache folder at a time, across xdist workers (an ``flock`` on ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
