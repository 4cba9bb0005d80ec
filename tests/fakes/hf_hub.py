"""A FAKE of the Hugging Face Hub's dataset endpoints, on loopback. Not Hugging Face's code.

The ``hf://`` task data source (``pytest_ale/hub_store.py``) is tested against this small
stand-in for exactly the calls ``huggingface_hub`` makes for it (read in its source:
``HfApi.dataset_info``, ``HfApi.list_repo_files`` / ``list_repo_tree`` and
``snapshot_download``, whose per-file ``hf_hub_download`` sends a HEAD, then a GET):

- ``GET /api/datasets/{owner}/{name}`` and ``.../revision/{rev}``: the repository's id and
  the commit ``sha`` the revision names;
- ``GET /api/datasets/{owner}/{name}/tree/{rev}[/{path}]`` (``recursive``): the files (and
  folders) under a path, with ``oid`` and ``size``, on one page;
- ``HEAD`` / ``GET /datasets/{owner}/{name}/resolve/{rev}/{path}``: a file, with the headers
  the library reads (``X-Repo-Commit``, ``ETag``, ``Content-Length``).

Like the hub it answers ``X-Error-Code: RepoNotFound`` (404) for an unknown repository,
``RevisionNotFound`` (404) for an unknown revision, 401 when a repository that needs a token
gets none and 403 when it gets the wrong one. Every request is kept in ``requests`` (method
and path) so tests can check what was downloaded.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

API = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
TREE = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


@dataclass
class Repo:
    """One dataset repository: its files at one commit, on branch ``main``."""

    files: dict[str, bytes]
    #: the token it needs (``Authorization: Bearer ...``), or ``None`` for an open one
    token: str | None = None
    commit: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1()
        for name in sorted(self.files):
            digest.update(name.encode() + b"\0" + self.files[name])
        self.commit = digest.hexdigest()

    @classmethod
    def from_folder(
        cls, folder: Path, kinds: tuple[str, ...], *, prefix: str = "", token: str | None = None
    ) -> Repo:
        """The files of ``folder`` (laid out ``<domain>/<task>/<variant>/<kind>/...``) whose
        kind is one of ``kinds``, each under ``prefix``."""
        files = {}
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and len(rel.parts) > 4 and rel.parts[3] in kinds:
                files["/".join(p for p in (prefix, rel.as_posix()) if p)] = path.read_bytes()
        return cls(files, token)


class FakeHub:
    """The fake hub on ``127.0.0.1``; ``endpoint`` is what ``HF_ENDPOINT`` takes."""

    def __init__(self, repos: dict[str, Repo]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub.answer(self, body=True)

            def do_HEAD(self) -> None:
                hub.answer(self, body=False)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def downloads(self) -> list[str]:
        """The files fetched with GET (``repo:path``), sorted, once for each time fetched."""
        found = []
        for method, path in self.requests:
            match = RESOLVE.match(path)
            if method == "GET" and match:
                found.append(f"{match['repo']}:{match['path']}")
        return sorted(found)

    # -- answering -------------------------------------------------------------------------
    def answer(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlparse(handler.path).path)
        self.requests.append((handler.command, path))
        for pattern, route in ((API, self._info), (TREE, self._tree), (RESOLVE, self._file)):
            match = pattern.match(path)
            if not match:
                continue
            repo = self.repos.get(match["repo"])
            if repo is None:
                return self._error(handler, 404, "RepoNotFound", "Repository not found")
            refused = self._refusal(repo, handler.headers.get("Authorization"))
            if refused:
                return self._error(handler, refused, None, "Invalid credentials or no access")
            rev = match.groupdict().get("rev") or "main"
            if rev not in ("main", repo.commit):
                return self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {rev}")
            status, headers, data = route(repo, match)
            return self._send(handler, status, headers, data, body=body)
        return self._error(handler, 404, None, "Not found")

    @staticmethod
    def _refusal(repo: Repo, authorization: str | None) -> int | None:
        if repo.token is None:
            return None
        if not authorization:
            return 401
        return None if authorization == f"Bearer {repo.token}" else 403

    def _info(self, repo: Repo, match: re.Match[str]) -> tuple[int, dict[str, str], bytes]:
        siblings = [{"rfilename": name} for name in sorted(repo.files)]
        private = repo.token is not None
        data = {"id": match["repo"], "sha": repo.commit, "private": private, "siblings": siblings}
        return 200, {"Content-Type": "application/json"}, json.dumps(data).encode()

    def _tree(self, repo: Repo, match: re.Match[str]) -> tuple[int, dict[str, str], bytes]:
        under = (match["path"] or "").strip("/")
        names = [n for n in sorted(repo.files) if not under or n.startswith(under + "/")]
        folders = sorted({"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)})
        entries: list[dict[str, Any]] = [
            {"type": "directory", "path": f, "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0}
            for f in folders
            if not under or f.startswith(under + "/")
        ]
        entries += [
            {"type": "file", "path": n, "oid": _oid(repo.files[n]), "size": len(repo.files[n])} for n in names
        ]
        return 200, {"Content-Type": "application/json"}, json.dumps(entries).encode()

    def _file(self, repo: Repo, match: re.Match[str]) -> tuple[int, dict[str, str], bytes]:
        data = repo.files.get(match["path"])
        if data is None:
            return 404, {"X-Error-Code": "EntryNotFound"}, b"Entry not found"
        headers = {
            "X-Repo-Commit": repo.commit,
            "ETag": f'"{_oid(data)}"',
            "Content-Type": "application/octet-stream",
        }
        return 200, headers, data

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes, *, body: bool
    ) -> None:
        """``Content-Length`` is the body's length, a HEAD's too (the library reads a file's
        size from it); only a GET gets the body."""
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body and data:
            handler.wfile.write(data)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str | None, message: str) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        data = json.dumps({"error": message}).encode()
        self._send(handler, status, headers, data, body=handler.command == "GET")


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
