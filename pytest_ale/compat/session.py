"""``SandboxSession``: ALE's ``cb.DesktopSession`` API on top of a pytest-ale ``Sandbox``.

Every method is async, as in cua-bench, and maps onto the sandbox's few primitives:

===============================  ==========================================================
``file_exists(path)``            a regular file (``test -f``)
``directory_exists(path)``       a folder
``exists(path)``                 either (some tasks use it)
``read_bytes`` / ``read_file``   a file's content (``FileNotFoundError`` when missing)
``write_file`` / ``write_text``  write text; the parent folder must exist (as in ALE)
``write_bytes``                  write bytes; same rule
``list_dir(path)``               entry names; ``NotADirectoryError`` on a file
``run_command(cmd, check=True)`` a shell command; a ``CommandResult`` (dict *and* attributes)
``makedirs`` / ``interface.create_dir``  ``mkdir -p``
``interface.delete_dir``         ``rm -rf``
``screenshot()``                 PNG bytes from a sandbox with a display, else an error
===============================  ==========================================================

The session holds no event loop of its own: the sandbox calls block, which is what the
ALE graders (one coroutine at a time) expect.
"""

from __future__ import annotations

import posixpath
import shlex
from types import SimpleNamespace
from typing import Any

from ..errors import StagingError
from ..sandbox import Sandbox

#: a grader's command may not hang a run forever (the real session has no limit at all)
DEFAULT_COMMAND_TIMEOUT_S = 3600.0


class CommandResult(dict):  # type: ignore[type-arg]
    """``{success, stdout, stderr, return_code}``, also readable as attributes
    (``.stdout``, ``.stderr``, ``.returncode``, ``.return_code``, ``.success``)."""

    def __init__(self, return_code: int, stdout: str, stderr: str, timed_out: bool = False) -> None:
        super().__init__(
            success=return_code == 0 and not timed_out,
            stdout=stdout,
            stderr=stderr,
            return_code=return_code,
        )
        self.timed_out = timed_out

    @property
    def stdout(self) -> str:
        return str(self["stdout"])

    @property
    def stderr(self) -> str:
        return str(self["stderr"])

    @property
    def return_code(self) -> int:
        return int(self["return_code"])

    returncode = return_code

    @property
    def success(self) -> bool:
        return bool(self["success"])


class CommandFailedError(RuntimeError):
    """``run_command(..., check=True)`` saw a non-zero exit (cua-bench raises RuntimeError)."""


class ScreenshotUnavailableError(NotImplementedError):
    """The sandbox has no display; the task needs a GUI-capable provider."""


class SandboxInterface:
    """``session.interface``: the computer-interface calls ALE tasks make directly."""

    def __init__(self, session: SandboxSession) -> None:
        self._session = session

    async def create_dir(self, path: str) -> None:
        await self._session.makedirs(path)

    async def delete_dir(self, path: str) -> None:
        await self._session.run_command(f"rm -rf -- {shlex.quote(path)}", check=True)

    async def file_exists(self, path: str) -> bool:
        return await self._session.file_exists(path)

    async def directory_exists(self, path: str) -> bool:
        return await self._session.directory_exists(path)

    async def read_bytes(self, path: str) -> bytes:
        return await self._session.read_bytes(path)

    async def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return await self._session.read_file(path, encoding)

    async def write_bytes(self, path: str, data: bytes) -> None:
        await self._session.write_bytes(path, data)

    async def write_text(self, path: str, text: str, encoding: str = "utf-8") -> None:
        await self._session.write_text(path, text, encoding)

    async def list_dir(self, path: str) -> list[str]:
        return await self._session.list_dir(path)

    async def run_command(self, command: str, timeout: float | None = None) -> CommandResult:
        return await self._session.run_command(command, check=False, timeout=timeout)

    async def screenshot(self) -> bytes:
        return await self._session.screenshot()


class SandboxSession:
    """A ``cb.DesktopSession`` for ALE task code, backed by one trial's sandbox."""

    def __init__(self, sandbox: Sandbox, os_type: str = "linux") -> None:
        self.sandbox = sandbox
        self.os_type = os_type
        #: set once the agent is fenced: from then on every command is the grader's
        #: (``Sandbox.grader_exec``: another user, a clean environment, a fresh folder)
        self.grading = False
        self.interface = SandboxInterface(self)
        #: some tasks reach the interface as ``session.computer.interface``
        self.computer = SimpleNamespace(interface=self.interface, os_type=os_type)

    # -- queries -----------------------------------------------------------------------
    async def file_exists(self, path: str) -> bool:
        return self.sandbox.is_file(path)

    async def directory_exists(self, path: str) -> bool:
        return self.sandbox.is_dir(path)

    async def exists(self, path: str) -> bool:
        return self.sandbox.exists(path)

    async def list_dir(self, path: str) -> list[str]:
        if not self.sandbox.is_dir(path):
            if self.sandbox.exists(path):
                raise NotADirectoryError(f"list_dir: {path} is a file, not a folder")
            raise FileNotFoundError(f"list_dir: {path} does not exist")
        return self.sandbox.listdir(path)

    # -- reading -----------------------------------------------------------------------
    async def read_bytes(self, path: str) -> bytes:
        try:
            return self.sandbox.read_bytes(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"read_bytes: no file at {path}") from None

    async def read_file(self, path: str, encoding: str = "utf-8") -> str:
        return (await self.read_bytes(path)).decode(encoding)

    read_text = read_file

    # -- writing -----------------------------------------------------------------------
    async def write_bytes(self, path: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write_bytes: data must be bytes, not {type(data).__name__}")
        parent = posixpath.dirname(path.rstrip("/")) or "/"
        if not self.sandbox.is_dir(parent):
            raise FileNotFoundError(
                f"cannot write {path}: folder {parent} does not exist (create it first with "
                "interface.create_dir)"
            )
        if self.sandbox.is_dir(path):
            raise IsADirectoryError(f"cannot write {path}: it is a folder")
        payload = bytes(data)
        try:
            self.sandbox.write_bytes(path, payload)
        except StagingError:
            # not a writable mount of a local sandbox: let the shell in the sandbox decide
            argv = ["/bin/sh", "-c", 'cat > "$1"', "sh", path]
            if self.grading:
                result = self.sandbox.grader_exec(argv, stdin=payload)
            else:
                result = self.sandbox.exec(argv, stdin=payload)
            if result.exit_code != 0:
                raise PermissionError(f"cannot write {path}: {result.stderr.strip()}") from None

    async def write_file(self, path: str, content: str, encoding: str = "utf-8") -> None:
        if not isinstance(content, str):
            raise TypeError(f"write_file: content must be str, not {type(content).__name__}")
        await self.write_bytes(path, content.encode(encoding))

    write_text = write_file

    async def makedirs(self, path: str) -> None:
        await self.run_command(f"mkdir -p -- {shlex.quote(path)}", check=True)

    # -- commands ----------------------------------------------------------------------
    async def run_command(
        self, command: str, check: bool = True, timeout: float | None = None, **_: Any
    ) -> CommandResult:
        """Run ``command`` with ``/bin/sh`` in the sandbox: during setup as the agent's user
        in the variant folder; while grading as the grader (``Sandbox.grader_exec``), so
        nothing the agent planted on a path, an import path or a working folder runs."""
        limit = float(timeout) if timeout else DEFAULT_COMMAND_TIMEOUT_S
        if self.grading:
            done = self.sandbox.grader_exec(["/bin/sh", "-c", command], timeout=limit)
        else:
            done = self.sandbox.exec(["/bin/sh", "-c", command], timeout=limit)
        result = CommandResult(done.exit_code, done.stdout, done.stderr, done.timed_out)
        if check and not result.success:
            why = f"timed out after {limit:g}s" if done.timed_out else f"return code {done.exit_code}"
            raise CommandFailedError(
                f"Command failed with {why}.\nCommand: {command}\n"
                f"Stdout: {done.stdout[-2000:]}\nStderr: {done.stderr[-2000:]}"
            )
        return result

    shell_command = run_command

    # -- display -----------------------------------------------------------------------
    async def screenshot(self) -> bytes:
        try:
            return self.sandbox.screenshot()
        except NotImplementedError as exc:
            raise ScreenshotUnavailableError(
                f"screenshot(): {exc}; this task needs a sandbox with a display "
                "(run it on a GUI-capable provider)"
            ) from None

    # -- lifecycle (cua-bench API; nothing to do here) ----------------------------------
    async def __aenter__(self) -> SandboxSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def close(self) -> None:
        return None
