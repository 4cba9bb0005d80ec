"""Where ALE task data comes from, and the buckets among its sources.

``--ale-data`` (inputs, software and references) and ``--ale-reference`` (references only,
when they are published apart) each take one of:

- ``DIR``: a local folder laid out ``<domain>/<task>/<variant>/{input,software,reference}``;
- ``FILE.tar.gz`` (or ``.tgz``, ``.tar``): an archive of that layout, such as ALE's
  ``ale-tasks-data.tar.gz``, extracted once into the host cache (``archive_store.py``);
- ``hf://OWNER/NAME[@REVISION][/PREFIX]``: a Hugging Face dataset repository, each variant
  folder downloaded when first needed (``hub_store.py``);
- ``s3://BUCKET/PREFIX`` or ``gs://BUCKET/PREFIX``: a bucket, each variant folder mirrored
  into the host cache when a trial first needs it and kept in step with the bucket on every
  later use (new and changed objects fetched, removed ones deleted).

The host cache is ``$ALE_DATA_CACHE`` (default ``~/.cache/pytest-ale/data``). Every source's
reference is fetched to the host like the rest: it reaches a sandbox only when the grader
needs it there, after the agent is gone.

Credentials are the clients' own: boto3's chain (``AWS_PROFILE``, ``AWS_ENDPOINT_URL``,
...), Google's Application Default Credentials (``STORAGE_EMULATOR_HOST`` for an
emulator) and huggingface_hub's token (``HF_TOKEN`` or ``hf auth login``; ``HF_ENDPOINT``).
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .archive_store import ARCHIVE_SUFFIXES, ArchiveStore
from .errors import ConfigError, InfrastructureError
from .hub_store import HubStore
from .store_base import MANIFEST, DataStore, LocalStore, cache_root, inside, locked

__all__ = ["BucketStore", "DataStore", "GcsStore", "LocalStore", "S3Store", "cache_root", "open_store"]


@dataclass(frozen=True)
class Blob:
    key: str
    size: int
    version: str  # ETag / md5 / generation: changes when the content does


class BucketStore(DataStore):
    """A bucket of objects, mirrored per variant folder into the host cache."""

    scheme = ""

    def __init__(self, bucket: str, prefix: str, cache: Path, option: str = "--ale-data") -> None:
        self.bucket, self.prefix, self.option = bucket, prefix.strip("/"), option
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
        with locked(local.parent / f".{local.name}.lock"):
            wanted = {
                blob.key[len(key) :]: blob
                for blob in self._guard(lambda: list(self.blobs(key)))
                if not blob.key.endswith("/")
            }
            have = _read_manifest(local)
            for name, blob in sorted(wanted.items()):
                target = inside(local, name, self.where(rel))
                if have.get(name) == blob.version and target.is_file():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".part")
                self._guard(lambda b=blob, p=partial: self.download(b.key, p))
                os.replace(partial, target)
            for name in set(have) - set(wanted):
                with contextlib.suppress(FileNotFoundError):
                    inside(local, name, self.where(rel)).unlink()
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

    def __init__(self, bucket: str, prefix: str, cache: Path, option: str = "--ale-data") -> None:
        super().__init__(bucket, prefix, cache, option)
        try:
            import boto3
        except ImportError as exc:
            raise ConfigError(f"{option} {self.url} needs boto3: pip install 'pytest-ale[aws]'") from exc
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

    def __init__(self, bucket: str, prefix: str, cache: Path, option: str = "--ale-data") -> None:
        super().__init__(bucket, prefix, cache, option)
        try:
            from google.cloud import storage
        except ImportError as exc:
            raise ConfigError(
                f"{option} {self.url} needs google-cloud-storage: pip install 'pytest-ale[gcp]'"
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


def open_store(value: str | Path | None, rootdir: Path, option: str = "--ale-data") -> DataStore | None:
    """The store ``option`` names: a folder or an archive (relative to the rootdir),
    ``hf://``, ``s3://`` or ``gs://``."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.startswith("hf://"):
        return HubStore.from_url(text, cache_root(), option)
    for scheme, kind in (("s3://", S3Store), ("gs://", GcsStore)):
        if text.startswith(scheme):
            bucket, _, prefix = text[len(scheme) :].partition("/")
            if not bucket:
                raise ConfigError(f"{option} {text!r}: name a bucket, e.g. {scheme}my-bucket/ale-data")
            return kind(bucket, prefix, cache_root(), option)
    path = Path(text).expanduser()
    path = path if path.is_absolute() else rootdir / path
    if path.name.endswith(ARCHIVE_SUFFIXES) and not path.is_dir():
        return ArchiveStore(path, cache_root(), option)
    return LocalStore(path)


def _read_manifest(folder: Path) -> dict[str, str]:
    try:
        return dict(json.loads((folder / MANIFEST).read_text()))
    except (OSError, ValueError, TypeError):
        return {}
