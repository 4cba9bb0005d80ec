"""``DockerSandbox``: one trial's container, driven through the Docker SDK's exec and
archive APIs (see ``provider.py`` for the provider that makes, holds and removes them).

Commands run as the agent user (uid 1000, no capabilities) with an environment marker so
a timeout can kill their whole tree; the fence kills every process of the agent's uid
(``fence_shell``) and counts what is left; grading runs as root after ``prepare_grading``
quarantined the agent's temporary files. Tar streams in are checked and re-owned (the
agent's inside its own area until grading starts, root's elsewhere and after); tar streams
out are stripped to the folder's contents and capped; ``collect`` streams to disk.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...errors import InfrastructureError, StagingError
from ...network import relay_argv
from ...sandbox import ExecResult, Sandbox, SandboxSpec
from ...staging import ExtractReport, larger_than, stream_folders
from ..fence_shell import COUNT_UID, KILL_UID, QUARANTINE, quarantine_name
from ..tar_shell import archive_result, archive_script
from .archive import contents, one_file, restamp
from .client import ContainerDiedError
from .collect import collect_output
from .commands import FENCE_ALL, KILL_MARKED, MARKER, MAX_OUTPUT_BYTES, OOM_KILLS, run_exec
from .folders import Folders

#: where the network relay lies in a ``proxy`` trial's container (root's, read-only to the agent)
RELAY_DIR = "/ale/bin"
#: staged folders bigger than this are streamed from disk; smaller ones go in memory
STREAM_FROM_BYTES = 32 * 1024**2
#: engine archive requests tried before tar in the container makes the archive
ENGINE_ARCHIVE_ATTEMPTS = 3

# $1 owner, $2 how many folders follow, then the folders, then the command to exec
MKDIRS_THEN_EXEC = (
    'o=$1; n=$2; shift 2; while [ "$n" -gt 0 ]; do mkdir -p "$1" && chown "$o" "$1"; '
    'n=$((n-1)); shift; done; exec "$@"'
)


class DockerSandbox(Folders, Sandbox):
    """One trial's container."""

    grader_user = "root"

    def __init__(self, spec: SandboxSpec, api: Any, opts: Any, container_id: str, name: str) -> None:
        """``api``: the engine's low-level client; ``opts``: the provider's ``DockerOptions``."""
        super().__init__(spec, spec.workdir, scratch="/tmp")
        #: the engine's low-level API client (the provider's; ``close`` drops this handle)
        self.api: Any = api
        self.id = container_id
        self.name = name
        self.user, self.uid, self.gid = opts.user, opts.uid, opts.gid
        self.home = "/root" if self.user == "root" else f"/home/{self.user}"
        self.max_input = opts.max_input_mb * 1024**2
        self.max_output = opts.max_output_bytes
        self.max_archive = self.max_output + 1024**2  # an archive out: the cap plus tar headers
        self.max_output_bytes = self.max_output
        self.max_output_files = opts.max_output_files
        #: the agent is root (``unsafe_root_agent``): fenced by scanning, not by its uid
        self.root_agent = self.user in ("root", "0") or self.uid == 0
        #: set by ``prepare_grading``: from then on whatever is staged in is root's
        self.grading = False
        self.closed = False
        self._oom_seen = 0
        #: folders ``mkdir`` was asked for, made by the next command that needs them
        #: (inside that exec, saving a round trip of the engine per trial)
        self._pending_dirs: list[str] = []

    # -- commands ----------------------------------------------------------------------
    def exec(self, cmd, *, timeout=None, env=None, cwd=None, user=None, stdin=None) -> ExecResult:
        if self.closed:
            raise InfrastructureError(f"the docker sandbox {self.name} was already released")
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        if self.spec.proxy:  # egress only through the run's proxy (network.py)
            argv = relay_argv("python3", RELAY_DIR, self.socket_paths[self.spec.proxy], argv)
        user = user or self.user
        marker = uuid.uuid4().hex
        if stdin is not None:
            path = f"/tmp/.ale-stdin-{marker}"
            self.put_archive("/tmp", one_file(path[5:], stdin, self.uid, self.gid))
            argv = ["/bin/sh", "-c", 'exec "$@" < "$0"', path, *argv]
        if cwd:
            cwd = self.abspath(cwd)
            self._flush_dirs(cwd)
        if self._pending_dirs and user in (self.user, "root", "0"):
            dirs, self._pending_dirs = self._pending_dirs, []
            owner = f"{self.uid}:{self.gid}"
            argv = ["/bin/sh", "-c", MKDIRS_THEN_EXEC, "ale", owner, str(len(dirs)), *dirs, *argv]
        else:
            self._flush_dirs()
        environment = {
            "HOME": "/root" if user in ("root", "0") else self.home,
            "TERM": "dumb",
            **{k: str(v) for k, v in (env or {}).items()},
            MARKER: marker,
        }
        outcome = self._run(argv, user, environment, cwd or self.workdir, timeout, marker)
        oom = outcome.exit_code == 137 and self._oom_happened()
        stdout, stderr = outcome.stdout.decode("utf-8", "replace"), outcome.stderr.decode("utf-8", "replace")
        code = outcome.exit_code
        if code == 126 and stdout.startswith(("OCI runtime exec failed", "unable to find user")):  # never ran
            stdout, stderr = "", stdout.strip() + "\n"
            code = 127 if "not found" in stderr or "no such file" in stderr else code
        elif code == 126 and not (stdout or stderr):  # the engine's reason did not come through
            stderr = f"exit 126: the engine did not run the command (has the image a user {user!r}?)\n"
        return ExecResult(
            exit_code=code,
            stdout=stdout,
            stderr=stderr,
            timed_out=outcome.timed_out,
            duration_s=outcome.duration_s,
            oom_killed=oom,
        )

    def _run(self, argv, user, environment, workdir, timeout, marker=None, max_stdout=MAX_OUTPUT_BYTES, **kw):
        from docker.errors import APIError

        try:
            return run_exec(
                self.api,
                self.id,
                argv,
                user=user,
                env=environment,
                workdir=workdir,
                timeout=timeout,
                # as the command's own user: root without CAP_SYS_PTRACE cannot read
                # another user's /proc/PID/environ, where the marker is
                on_timeout=lambda: self._sh_as(user, KILL_MARKED, marker or "-"),
                max_stdout=max_stdout,
                **kw,
            )
        except APIError as exc:
            raise self._gone(exc) from exc

    def _root_sh(self, script: str, *args: str) -> str:
        return self._sh_as("root", script, *args)

    def _sh_as(self, user: str, script: str, *args: str) -> str:
        outcome = self._run(["/bin/sh", "-c", script, "ale", *args], user, {}, "/", 120)
        return outcome.stdout.decode("utf-8", "replace").strip()

    def _oom_happened(self) -> bool:
        """Did the kernel's OOM killer strike in this container since the last look?"""
        if not self._running():
            return bool(self._state().get("OOMKilled"))
        try:
            count = int(self._root_sh(OOM_KILLS) or 0)
        except (ValueError, InfrastructureError):
            return False
        seen, self._oom_seen = self._oom_seen, count
        return count > seen

    def kill_all(self) -> int:
        """The fence: ``kill -9 -1`` as the agent's uid (nothing of that uid survives it, not
        even a fork loop); how many processes it had."""
        if self.closed or not self._running():
            return 0
        if self.root_agent:
            return self._count(self._root_sh(FENCE_ALL))
        return self._count(self._sh_as(str(self.uid), KILL_UID, str(self.uid)))

    def agent_processes(self) -> int:
        """Live processes of the agent's uid (counted as root, so the count is not one)."""
        if self.closed or not self._running():
            return 0
        if self.root_agent:  # everything but docker-init and the keep-alive is the agent's
            top = self.api.top(self.id, ps_args="-eo pid,stat").get("Processes") or []
            return max(0, sum(1 for row in top if not str(row[-1]).startswith("Z")) - 2)
        return self._count(self._root_sh(COUNT_UID, str(self.uid)), strict=True)

    def _count(self, said: str, strict: bool = False) -> int:
        try:
            return int(said.split()[-1])
        except (ValueError, IndexError):
            if strict:
                raise InfrastructureError(f"{self.name}: cannot count agent processes: {said}") from None
            return 0

    def prepare_grading(self) -> None:
        """After the fence: move every entry the agent owns in ``/tmp``, ``/var/tmp`` and
        ``/dev/shm`` into a root-only quarantine folder there; stage root-owned from now on."""
        self.grading = True
        self._flush_dirs()
        script = ["/bin/sh", "-c", QUARANTINE, "ale", str(self.uid), quarantine_name(self.id)]
        done = self._run(script, "root", {}, "/", 600)
        if done.exit_code != 0:
            raise InfrastructureError(
                f"{self.name}: could not quarantine the agent's temporary files (exit {done.exit_code}): "
                + done.stderr.decode("utf-8", "replace").strip()
            )

    # -- data --------------------------------------------------------------------------
    def put_archive(self, dest: str, data: bytes | Iterable[bytes]) -> None:
        """Extract a tar stream into ``dest``: bytes are checked member by member and owned
        by the agent inside its workspace (big ones re-written while sent); an iterator of
        chunks (``staging.stream_folders``) is sent as it is, owned as its headers say."""
        if self.closed:
            raise InfrastructureError(f"the docker sandbox {self.name} was already released")
        dest = self.abspath(dest)
        self._flush_dirs(dest)
        ours = self._agent_area(dest)
        body: bytes | Iterable[bytes]
        if isinstance(data, bytes | bytearray):
            body, refused = restamp(
                bytes(data),
                uid=self.uid if ours else 0,
                gid=self.gid if ours else 0,
                own_root=dest == posixpath.normpath(self.workdir),
                max_bytes=self.max_input,
            )
            if refused:
                raise StagingError("refused while staging in: " + "; ".join(refused))
        else:
            body = data
        if not isinstance(body, bytes):  # a stream cannot be sent twice: make the folder first
            self._ensure_dir(dest, ours)
        from docker.errors import APIError, NotFound

        try:
            self._engine_put(dest, body)
        except NotFound:
            if not isinstance(body, bytes):
                raise
            self._ensure_dir(dest, ours)
            self._engine_put(dest, body)
        except APIError as exc:
            raise self._gone(exc) from exc

    def stage(self, dest: str, folders: Mapping[str, Path]) -> None:
        """Host folders into ``dest`` as one tar archive, owned by the agent inside its own
        area, capped. Big ones are streamed, read while the engine extracts them (constant
        memory); small ones go in memory, which spares the engine round trip a stream needs
        to make its folder first."""
        if not larger_than(folders, STREAM_FROM_BYTES):
            return super().stage(dest, folders)
        dest = self.abspath(dest)
        ours = self._agent_area(dest)
        uid, gid = (self.uid, self.gid) if ours else (0, 0)
        self.put_archive(dest, stream_folders(folders, uid=uid, gid=gid, max_bytes=self.max_input))

    def get_archive(self, src: str) -> bytes:
        """The engine's archive of ``src``; when a file changed size while the engine read it
        (its stream is then torn), asked again, and at last made by tar in the container."""
        src = self.abspath(src)
        self._flush_dirs(src)
        for _ in range(ENGINE_ARCHIVE_ATTEMPTS):
            try:
                return self._engine_archive(src)
            except (tarfile.ReadError, tarfile.StreamError):
                continue
        script = ["/bin/sh", "-c", archive_script(src)]
        done = self._run(script, "root", {}, "/", 3600, max_stdout=self.max_archive + 1)
        return self._capped(src, archive_result(self.name, src, done.exit_code, done.stdout, done.stderr))

    def collect(self, src: str, dest: Path) -> ExtractReport:
        """``src`` (``output/``) into host folder ``dest`` as a stream, never whole in memory,
        within ``max_output_mb`` and ``max_output_files`` (see ``collect``)."""
        src = self.abspath(src)
        self._flush_dirs(src)
        return collect_output(self, src, dest)

    def tar_to_file(self, src: str, spool: Any, limit: int) -> Any:
        """GNU tar of ``src``, run as root in the container, streamed into the host file
        ``spool`` up to ``limit`` bytes (what ``collect`` falls back to); what the exec did."""
        script = ["/bin/sh", "-c", archive_script(src)]
        return self._run(script, "root", {}, "/", 3600, max_stdout=limit, stdout_file=spool)

    def _capped(self, src: str, data: bytes) -> bytes:
        if len(data) > self.max_archive:
            raise StagingError(f"{src} exceeds the {self.max_output // 1024**2} MiB cap")
        return data

    def engine_stream(self, src: str) -> tuple[Iterator[bytes], str | None]:
        """The engine's archive of ``src`` as chunks, and the name of its top entry to strip
        when ``src`` is a folder (``None`` for a file)."""
        from docker.errors import APIError, NotFound

        try:
            chunks, stat = self.api.get_archive(self.id, src, chunk_size=1 << 20)
        except NotFound as exc:
            raise FileNotFoundError(src) from exc
        except APIError as exc:
            raise self._gone(exc) from exc
        folder = int(stat.get("mode", 0)) & (1 << 31)  # Go's os.ModeDir
        return chunks, (stat["name"] if folder else None)

    def _engine_archive(self, src: str) -> bytes:
        chunks, top = self.engine_stream(src)
        if top is not None:  # a folder: strip the folder itself
            return contents(chunks, top=top, max_bytes=self.max_output)
        data = self._capped(src, b"".join(chunks))
        with tarfile.open(fileobj=io.BytesIO(data)) as whole:
            whole.getmembers()  # a torn stream raises ReadError here
        return data

    def read_bytes(self, path: str) -> bytes:
        """One file in one engine request (no ``is_file`` first); a torn stream (the file
        changed while read) is read again the base class's way."""
        path = self.abspath(path)
        self._flush_dirs(path)
        chunks, top = self.engine_stream(path)
        if top is not None:
            raise IsADirectoryError(path)
        try:
            with tarfile.open(fileobj=io.BytesIO(self._capped(path, b"".join(chunks)))) as tar:
                member = tar.next()
                extracted = tar.extractfile(member) if member is not None and member.isfile() else None
                if extracted is not None:
                    return extracted.read()
        except (tarfile.ReadError, tarfile.StreamError):
            return super().read_bytes(path)
        raise FileNotFoundError(path)

    # -- state -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        try:
            return self.api.inspect_container(self.id).get("State") or {}
        except Exception:
            return {}

    def _running(self) -> bool:
        return bool(self._state().get("Running"))

    def _gone(self, exc: Exception) -> InfrastructureError:
        state = self._state()
        if state and not state.get("Running"):
            why = "killed for memory (OOM)" if state.get("OOMKilled") else f"exit {state.get('ExitCode')}"
            return ContainerDiedError(
                f"container {self.name} stopped ({why}, {state.get('Error') or 'no error'}); "
                f"the trial cannot go on ({exc})"
            )
        return InfrastructureError(f"docker engine error on container {self.name}: {exc}")

    def close(self) -> None:
        """Drop the engine handle: every call fails from now on. The container stays until
        ``DockerProvider.release`` removes it."""
        if self.closed:
            return
        self.closed = True
        self.api = _Released(self.name)

    def describe(self) -> str:
        return f"docker container {self.name}: enter it with `docker exec -it {self.id[:12]} bash`"


class _Released:
    """What a closed sandbox holds instead of the engine's API: every call is refused."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        raise InfrastructureError(f"the docker sandbox {self.name} was already released")
