"""Making folders in a docker sandbox, and sending tar streams into it (``Folders``, a part
of ``DockerSandbox``).

Folders the agent's area needs (its workspace, scratch and home, until grading starts) are
the agent's; ``mkdir`` there is put off until the next command or transfer near it (made
inside that exec, saving a round trip of the engine). A folder made as root inside that
area, and every folder above it there, is handed to the agent (``mkdir -p`` alone would
leave the parents root's and the agent unable to write in them). An upload of bytes never
replaces a folder with a file, nor a file with a folder (``noOverwriteDirNonDir``).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from typing import TYPE_CHECKING, Any


class Folders:
    api: Any
    id: str
    uid: int
    gid: int
    workdir: str
    scratch: str
    home: str
    root_agent: bool
    grading: bool
    _pending_dirs: list[str]

    if TYPE_CHECKING:  # DockerSandbox's (and Sandbox's)

        def abspath(self, path: str) -> str: ...

        def _root_sh(self, script: str, *args: str) -> str: ...

    def mkdir(self, path: str) -> None:
        path = self.abspath(path)
        ours = self._agent_area(path)
        if ours and path not in self._pending_dirs:
            self._pending_dirs.append(path)  # made by the next command or transfer near it
        elif not ours:
            self._mkdir_now(path, ours)

    def _flush_dirs(self, near: str | None = None) -> None:
        """Make pending folders now: all of them, or those related to path ``near``."""
        if not self._pending_dirs:
            return
        near = self.abspath(near) if near else None
        for path in list(self._pending_dirs):
            if near is None or _related(path, near):
                self._pending_dirs.remove(path)
                self._mkdir_now(path, True)

    def _mkdir_now(self, path: str, ours: bool) -> None:
        parent, name = posixpath.split(path)
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        info.uid, info.gid = (self.uid, self.gid) if ours else (0, 0)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.addfile(info)
        from docker.errors import NotFound

        try:
            self._engine_put(parent, buf.getvalue())
        except NotFound:
            self._ensure_dir(path, ours)

    def _ensure_dir(self, path: str, ours: bool) -> None:
        """Make ``path`` as root: the agent's, with every folder above it in its area."""
        dirs = [path]
        area = self._area(path) if ours else None
        while area is not None and len(posixpath.dirname(dirs[-1])) > len(area):
            dirs.append(posixpath.dirname(dirs[-1]))
        owner = f"{self.uid}:{self.gid}" if ours else "0:0"
        self._root_sh('o=$1; shift; mkdir -p "$1" && chown "$o" "$@"', owner, *dirs)

    def _area(self, path: str) -> str | None:
        """The root of the agent's area that holds ``path`` (until grading), or ``None``."""
        if self.root_agent or self.grading:
            return None
        for root in (self.workdir.rstrip("/"), self.scratch.rstrip("/"), self.home.rstrip("/")):
            if path == root or path.startswith(root + "/"):
                return root
        return None

    def _agent_area(self, path: str) -> bool:
        return self._area(path) is not None

    def _engine_put(self, dest: str, body: Any) -> None:
        """The engine's archive upload into folder ``dest``; bytes never replace a folder
        with a file or a file with a folder (the engine refuses: ``APIError``).

        Through the SDK's request helpers rather than ``APIClient.put_archive``, which has no
        way to pass the engine's ``noOverwriteDirNonDir`` parameter."""
        params = {"path": dest}
        if isinstance(body, bytes | bytearray):
            params["noOverwriteDirNonDir"] = "true"
        reply = self.api._put(self.api._url("/containers/{0}/archive", self.id), params=params, data=body)
        self.api._raise_for_status(reply)


def _related(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)
