"""ALE task data from a Hugging Face dataset repository: ``hf://OWNER/NAME[@REVISION][/PREFIX]``.

ALE publishes its task data on Hugging Face: an open repository of the inputs and a gated
one of the references, both laid out ``<domain>/<task>/<variant>/...`` (``--ale-data`` names
the first, ``--ale-reference`` the second). The revision (default ``main``) is resolved to
its commit once per process; the repository's file list at that commit is kept in the host
cache (``hf/OWNER/NAME/<commit>.files.json`` under ``$ALE_DATA_CACHE``), so collection asks
no more than that. A variant folder is downloaded when a trial first needs it, that folder
alone (``snapshot_download`` with ``allow_patterns``), into ``hf/OWNER/NAME/<commit>/``: a
commit never changes, so a folder once there is not fetched again.

Everything goes through the ``huggingface_hub`` library (``pip install
'pytest-ale[huggingface]'``): ``HF_ENDPOINT`` names the server, the token is the library's
(``HF_TOKEN``, or the one ``hf auth login`` saved). Errors say what to fix: a missing
library names the pip command, 401/403 the token, 404 the repository or revision.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, InfrastructureError
from .store_base import DataStore, locked

T = TypeVar("T")
TOKEN_FIX = "set HF_TOKEN to a token with access (or run `hf auth login`)"


class HubStore(DataStore):
    """A dataset repository on a Hugging Face hub, fetched per variant folder."""

    def __init__(
        self, repo: str, revision: str, prefix: str, cache: Path, option: str = "--ale-data"
    ) -> None:
        self.repo, self.revision, self.prefix, self.option = repo, revision, prefix.strip("/"), option
        self.url = f"hf://{repo}@{revision}" + (f"/{self.prefix}" if self.prefix else "")
        try:
            import huggingface_hub
        except ImportError:
            raise ConfigError(
                f"{option} {self.url} needs huggingface_hub: pip install 'pytest-ale[huggingface]'"
            ) from None
        self.hub = huggingface_hub
        #: read now, not at the library's import: the token is the library's own choice
        self.endpoint = os.environ.get("HF_ENDPOINT") or None
        self.api = huggingface_hub.HfApi(endpoint=self.endpoint)
        self.commit: str = self._guard(lambda: str(self.api.dataset_info(repo, revision=revision).sha))
        self.cache = cache / "hf" / repo
        self.local = self.cache / self.commit
        self._files: list[str] | None = None
        self._fetched: set[tuple[str, ...]] = set()

    @classmethod
    def from_url(cls, url: str, cache: Path, option: str = "--ale-data") -> HubStore:
        rest = url[len("hf://") :].strip("/")
        rest = rest[len("datasets/") :] if rest.startswith("datasets/") else rest
        owner, _, tail = rest.partition("/")
        name_rev, _, prefix = tail.partition("/")
        name, _, revision = name_rev.partition("@")
        if not owner or not name:
            raise ConfigError(
                f"{option} {url!r}: name a dataset repository, hf://OWNER/NAME[@REVISION][/PREFIX]"
            )
        return cls(f"{owner}/{name}", revision or "main", prefix, cache, option)

    def where(self, rel: Sequence[str]) -> str:
        return f"{self._key(rel)} in {self.url}"

    def _key(self, rel: Sequence[str]) -> str:
        return "/".join(p for p in (self.prefix, *rel) if p) + "/"

    def has(self, rel: Sequence[str]) -> bool:
        key = self._key(rel)
        return any(name.startswith(key) for name in self._listing())

    def folder(self, rel: Sequence[str]) -> Path:
        rel = tuple(rel)
        target = self.local.joinpath(*self._key(rel).split("/"))
        if rel in self._fetched:
            return target
        with locked(self.cache / f".{self.commit}-{'-'.join(rel)}.lock"):
            self._guard(
                lambda: self.hub.snapshot_download(
                    self.repo,
                    repo_type="dataset",
                    revision=self.commit,
                    local_dir=self.local,
                    allow_patterns=[self._key(rel) + "*"],
                    endpoint=self.endpoint,
                )
            )
        self._fetched.add(rel)
        return target

    def _listing(self) -> list[str]:
        if self._files is not None:
            return self._files
        saved = self.cache / f"{self.commit}.files.json"
        try:
            self._files = list(json.loads(saved.read_text()))
            return self._files
        except (OSError, ValueError, TypeError):
            pass
        files = self._guard(
            lambda: self.api.list_repo_files(self.repo, repo_type="dataset", revision=self.commit)
        )
        self._files = [str(name) for name in files]
        saved.parent.mkdir(parents=True, exist_ok=True)
        partial = saved.with_name(f"{saved.name}.{os.getpid()}.part")
        partial.write_text(json.dumps(self._files))
        os.replace(partial, saved)
        return self._files

    def _guard(self, call: Callable[[], T]) -> T:
        """``call()``, its hub errors turned into ours, each saying what to fix."""
        errors = self.hub.errors
        where = f"{self.option} {self.url}"
        try:
            return call()
        except errors.GatedRepoError:
            raise ConfigError(
                f"{where}: {self.repo} is gated: accept its terms on its page on the hub, then {TOKEN_FIX}"
            ) from None
        except errors.RevisionNotFoundError:
            raise ConfigError(
                f"{where}: {self.repo} has no revision {self.revision!r}: "
                "name a branch, tag or commit after @"
            ) from None
        except errors.HfHubHTTPError as exc:
            raise self._http_error(where, exc) from None
        except (ConfigError, InfrastructureError):
            raise
        except Exception as exc:
            server = self.endpoint or self.hub.constants.ENDPOINT
            raise InfrastructureError(
                f"task data at {self.url} (hub {server}): {type(exc).__name__}: {exc}"
            ) from exc

    def _http_error(self, where: str, exc: Any) -> Exception:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        server = self.endpoint or self.hub.constants.ENDPOINT
        if status in (401, 403):
            said = "refused this token" if self.hub.get_token() else "needs a token"
            return ConfigError(f"{where}: {server} {said} ({status}) for {self.repo}: {TOKEN_FIX}")
        if status == 404 or isinstance(exc, self.hub.errors.RepositoryNotFoundError):
            return ConfigError(
                f"{where}: {server} has no dataset repository {self.repo!r} (404): check the name, "
                "hf://OWNER/NAME (a private one also needs HF_TOKEN)"
            )
        return InfrastructureError(f"task data at {self.url}: {type(exc).__name__}: {exc}")
