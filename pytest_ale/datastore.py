"""Where ALE task data comes from: a local folder, an S3 bucket or a GCS bucket.

``--ale-data`` takes ``DIR``, ``s3://BUCKET/PREFIX`` or ``gs://BUCKET/PREFIX``, laid out
``<domain>/<task>/<variant>/{input,software,reference}``. A bucket's variant folder is
downloaded to a cache on the host (``$ALE_DATA_CACHE``, default
``~/.cache/pytest-ale/data``) when a trial first needs it, and kept in step with the
bucket on every later use (new and changed objects fetched, removed ones deleted). The
reference is fetched to the host like the rest: it reaches a sandbox only when the grader
needs it there, after the agent is gone.

Credentials are the clients' own: boto3's chain (``AWS_PROFILE``, ``AWS_ENDPOINT_URL``,
...) and Google's Application Default Credentials (``STORAGE_EMULATOR_HOST`` for an
emulator).
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, InfrastructureError

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


@dataclass(frozen=True)
class Blob:
    key: str
    size: int
    version: str  # ETag / md5 / generation: changes when the content does


class BucketStore(DataStore):
    """A bucket of objects, mirrored per variant folder into the host cache."""

    scheme = ""

    def __init__(self, bucket: str, prefix: str, cache: Path) -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url = f"{self.scheme}://{bucket}/{self.prefix}".rstrip("/")
        self.cache = cache / self.scheme / bucket / self.prefix

    @abc.abstractmethod
    def blobs(self, prefix: str, limit: int | None = None) -> Iterator[Blob]:
        """Objects whose key starts with ``prefix``."""

    @abc.abstractmethod
    def download(self, key: str, dest: Path) -> None: ...

    def _key(self, rel: Sequence[str]) -> str:
        return "/".join(p for p in (self.prefix, *rel) if p) + "/"

    def has(self, rel: Sequence[str]) -> bool:
        return self._guard(lambda: next(iter(self.blobs(self._key(rel), limit=1)), None)) is not None

    def folder(self, rel: Sequence[str]) -> Path:
        key = self._key(rel)
        local = self.cache.joinpath(*rel)
        local.mkdir(parents=True, exist_ok=True)
        with _locked(local.parent / f".{local.name}.lock"):
            wanted = {
                blob.key[len(key) :]: blob
                for blob in self._guard(lambda: list(self.blobs(key)))
                if not blob.key.endswith("/")
            }
            have = _read_manifest(local)
            for name, blob in sorted(wanted.items()):
                target = _inside(local, name, self.where(rel))
                if have.get(name) == blob.version and target.is_file():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                self._guard(lambda b=blob, p=partial: self.download(b.key, p))
                os.replace(partial, target)
            for name in set(have) - set(wanted):
                with contextlib.suppress(FileNotFoundError):
                    _inside(local, name, self.where(rel)).unlink()
            (local / MANIFEST).write_text(json.dumps({n: b.version for n, b in wanted.items()}))
        return local

    def _guard(self, call: Any) -> Any:
        try:
            return call()
        except (ConfigError, InfrastructureError):
            raise
        except Exception as exc:
            raise InfrastructureError(f"task data at {self.url}: {type(exc).__name__}: {exc}") from exc


class S3Store(BucketStore):
    scheme = "s3"

    def __init__(self, bucket: str, prefix: str, cache: Path) -> None:
        super().__init__(bucket, prefix, cache)
        try:
            import boto3
        except ImportError as exc:
            raise ConfigError(f"--ale-data {self.url} needs boto3: pip install 'pytest-ale[aws]'") from exc
        self.client = boto3.client("s3")  # region, keys and AWS_ENDPOINT_URL from the AWS chain

    def blobs(self, prefix: str, limit: int | None = None) -> Iterator[Blob]:
        paginator = self.client.get_paginator("list_objects_v2")
        config = {"MaxItems": limit} if limit else {}
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, PaginationConfig=config):
            for item in page.get("Contents", []):
                yield Blob(item["Key"], int(item["Size"]), str(item.get("ETag", item["Size"])))

    def download(self, key: str, dest: Path) -> None:
        self.client.download_file(self.bucket, key, str(dest))


class GcsStore(BucketStore):
    scheme = "gs"

    def __init__(self, bucket: str, prefix: str, cache: Path) -> None:
        super().__init__(bucket, prefix, cache)
        try:
            from google.cloud import storage
        except ImportError as exc:
            raise ConfigError(
                f"--ale-data {self.url} needs google-cloud-storage: pip install 'pytest-ale[gcp]'"
            ) from exc
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            project = os.environ.get("GOOGLE_CLOUD_PROJECT", "ale-emulator")
            self.client = storage.Client(project=project, credentials=AnonymousCredentials())
        else:
            self.client = storage.Client()

    def blobs(self, prefix: str, limit: int | None = None) -> Iterator[Blob]:
        for blob in self.client.list_blobs(self.bucket, prefix=prefix, max_results=limit):
            yield Blob(blob.name, int(blob.size or 0), str(blob.md5_hash or blob.generation or blob.size))

    def download(self, key: str, dest: Path) -> None:
        self.client.bucket(self.bucket).blob(key).download_to_filename(str(dest))


def open_store(value: str | Path | None, rootdir: Path) -> DataStore | None:
    """The store ``--ale-data`` names: a folder (relative to the rootdir), s3:// or gs://."""
    if value in (None, ""):
        return None
    text = str(value)
    for scheme, kind in (("s3://", S3Store), ("gs://", GcsStore)):
        if text.startswith(scheme):
            bucket, _, prefix = text[len(scheme) :].partition("/")
            if not bucket:
                raise ConfigError(f"--ale-data {text!r}: name a bucket, e.g. {scheme}my-bucket/ale-data")
            return kind(bucket, prefix, cache_root())
    path = Path(text).expanduser()
    return LocalStore(path if path.is_absolute() else rootdir / path)


def cache_root() -> Path:
    override = os.environ.get("ALE_DATA_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "pytest-ale" / "data"


def _inside(folder: Path, name: str, where: str) -> Path:
    clean = posixpath.normpath(name)
    if clean.startswith(("/", "../")) or clean in ("..", ".", MANIFEST):
        raise InfrastructureError(f"task data at {where}: refusing object {name!r} (outside its folder)")
    return folder / clean


def _read_manifest(folder: Path) -> dict[str, str]:
    try:
        return dict(json.loads((folder / MANIFEST).read_text()))
    except (OSError, ValueError, TypeError):
        return {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One downloader per folder at a time, across xdist workers."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
