"""``SshSandbox``: the Sandbox interface over one SSH session, shared by every VM provider.

Two accounts on the machine: the *login user* (SSH; root, or with passwordless sudo) does
staging, fencing and grading; the *agent user* (``agent_user``: unprivileged, no sudo)
runs every command by default, switched to with ``setpriv`` (root) or ``sudo -u`` and
always with ``no_new_privs``, so setuid binaries give it nothing. Its ``HOME`` is a fresh
folder in the trial's scratch. Commands run as ``exec SWITCH env -i VARS... sh -c 'cd CWD
&& exec ARGV'`` (nothing of the login's environment: a system PATH, HOME, LANG, the
command's ``env``); every process inherits ``ALE_SANDBOX_ID`` (the sandbox) and
``ALE_EXEC_ID`` (the one command), and a timeout kills every process carrying the
command's marker (one ``grep`` over ``/proc/*/environ``).

The fence (``kill_all``) is ``kill -9 -1`` as the agent's uid (``fence_shell``), which no
process of that uid leaves, not by ``setsid``, ``env -i`` nor a fork loop;
``agent_processes`` counts that uid. Grader commands run as root (``grader_user``) after
``prepare_grading`` moved the agent's temporary files into a root-only quarantine.

Files move as one tar stream each way (GNU tar on the machine): ``put_archive`` pipes the
archive into ``tar -x`` (as the agent inside its own area before grading, else as root,
modes and symlinks kept), ``get_archive`` reads ``tar -c`` as root, and ``collect`` spools
it to a host file within ``max_output_mb`` / ``max_output_files``.

Without an agent user (``agent_user=None``, only by a static host's explicit
``unsafe_shared_user``) the agent runs as the login user and is fenced by its environment
marker alone, which ``env -i`` escapes: such scores are not to be trusted.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from ..errors import InfrastructureError, OutputOverCap, SandboxGoneError, StagingError
from ..sandbox import GRADER_ENV, ExecResult, Sandbox, SandboxSpec
from ..staging import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_OUTPUT_FILES, ExtractReport, safe_extract
from .fence_shell import COUNT_UID, KILL_UID, QUARANTINE, SCRUB, quarantine_name
from .processes import MARKER
from .ssh import Completed, ConnectionDropped, SshSession
from .tar_shell import archive_result, archive_script

EXEC_MARKER = "ALE_EXEC_ID"

KILL_SCRIPT = r"""
all=""
for round in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  pids=$(grep -Flzx {pattern} /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3)
  [ -z "$pids" ] && break
  kill -STOP $pids 2>/dev/null; kill -9 $pids 2>/dev/null
  all="$all $pids"
  sleep 0.05
done
echo $all | tr ' ' '\n' | sort -u | grep -c . || true
"""

# as root: $1 agent user, $2 workspace, $3 scratch, $4 home, $5 1 = create a missing account
AGENT_SETUP = r"""
a=$1; w=$2; s=$3; h=$4
command -v setpriv >/dev/null || { echo "setpriv (util-linux) is missing" >&2; exit 45; }
if ! id -u "$a" >/dev/null 2>&1; then
  [ "$5" = 1 ] || { echo "there is no account $a" >&2; exit 41; }
  useradd -m -U -s /bin/bash "$a" 2>/dev/null || id -u "$a" >/dev/null || exit 42
fi
u=$(id -u "$a"); g=$(id -g "$a")
[ "$u" != 0 ] || { echo "$a is uid 0" >&2; exit 43; }
mkdir -p "$w" "$s" "$h" && chown "$u:$g" "$w" "$s" "$h" && chmod 700 "$s" || exit 44
check='cd "$1" && test -w . && test -w "$2"'
setpriv --reuid "$u" --regid "$g" --init-groups -- sh -c "$check" ale "$w" "$h" \
  || { echo "$a cannot write $w (is a parent folder closed to it?)" >&2; exit 46; }
echo "$u $g"
"""

# $0 the folder, then the command: what every command runs as its target user
CD_EXEC = 'cd "$0" 2>/dev/null || { echo "no such folder: $0" >&2; exit 127; }; exec "$@"'


class SshSandbox(Sandbox):
    """A workspace on a machine reached over SSH (built by ``ssh_machine.open_sandbox``).

    It owns its SSH connection only: ``close`` drops it, and the provider that holds the
    machine ends the trial on it (``Provider.release``: fence, ``scrub``, remove folders,
    the VM, the host lock), reconnecting first when the sandbox was closed already."""

    def __init__(
        self,
        spec: SandboxSpec,
        session: SshSession,
        *,
        workdir: str | None = None,
        scratch: str | None = None,
        socket_paths: Mapping[str, str] | None = None,
        sudo: bool = False,
        agent_user: str | None = None,
        create_agent: bool = False,
        max_output_mb: float | None = None,
        max_output_files: int | None = None,
        name: str = "",
    ) -> None:
        self.marker = uuid.uuid4().hex
        super().__init__(spec, workdir or spec.workdir, scratch=scratch or f"/tmp/ale-{self.marker[:12]}")
        self.session = session
        self.login = session.target.user
        if agent_user is not None and agent_user in (self.login, "root"):
            raise InfrastructureError(f"the agent user must be another account than {agent_user!r}")
        self.agent_user = agent_user
        self.create_agent = create_agent
        #: root's commands go through sudo (always, with an agent user and a non-root login)
        self.sudo = self.login != "root" and (sudo or agent_user is not None)
        self.agent_ids: tuple[int, int] | None = None  # (uid, gid), looked up by prepare()
        self.home = f"{self.scratch}/home"
        self.grader_user = "root" if agent_user else None
        #: set by ``prepare_grading``: from then on whatever is staged in is root's
        self.grading = False
        self.max_output_bytes = (
            int(float(max_output_mb) * 1024**2) if max_output_mb else DEFAULT_MAX_OUTPUT_BYTES
        )
        self.max_output_files = int(max_output_files or DEFAULT_MAX_OUTPUT_FILES)
        self.name = name or session.target.label()
        self.closed = False
        if socket_paths is not None:
            self.socket_paths = dict(socket_paths)

    # -- setting up --------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the workspace and scratch folders: the agent's (its account made first
        when ``create_agent``), or the login user's without one."""
        if self.agent_user is not None:
            args = (self.agent_user, self.workdir, self.scratch, self.home, "1" if self.create_agent else "0")
            done = self.run_script(_script(AGENT_SETUP, *args), timeout=120, root=True)
            said = done.stdout.decode("utf-8", "replace").split()
            if done.exit_code != 0 or len(said) != 2:
                raise InfrastructureError(
                    f"{self.name}: cannot set up the agent's account {self.agent_user!r} (exit "
                    f"{done.exit_code}): {done.stderr.decode('utf-8', 'replace').strip()}"
                    + ("; create it: sudo useradd -m -U " + self.agent_user if done.exit_code == 41 else "")
                )
            self.agent_ids = (int(said[0]), int(said[1]))
            return
        dirs = " ".join(shlex.quote(d) for d in (self.workdir, self.scratch))
        script = (
            f"mkdir -p {dirs} 2>/dev/null || "
            f'{{ sudo -n mkdir -p {dirs} && sudo -n chown "$(id -u):$(id -g)" {dirs}; }}'
        )
        done = self.run_script(script, timeout=60)
        if done.exit_code != 0:
            raise InfrastructureError(
                f"{self.name}: cannot create {self.workdir} (not writable and no passwordless sudo): "
                + done.stderr.decode("utf-8", "replace").strip()
            )

    # -- the primitives ----------------------------------------------------------------
    def exec(self, cmd, *, timeout=None, env=None, cwd=None, user=None, stdin=None) -> ExecResult:
        if self.closed:
            raise InfrastructureError(f"{self.name}: the sandbox was already released")
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        exec_id = uuid.uuid4().hex
        target = user or self.agent_user
        markers = {"PATH": GRADER_ENV["PATH"], "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "dumb"}
        markers.update({**self._identity(target), **{k: str(v) for k, v in (env or {}).items()}})
        markers[MARKER] = self.marker
        markers[EXEC_MARKER] = exec_id
        env_words = " ".join(shlex.quote(f"{k}={v}") for k, v in markers.items())
        home = "" if "HOME" in markers else '"HOME=$HOME" '  # the login user's own
        command = (  # env -i: nothing of the login's environment (its PATH, its keys) enters
            f"exec {self._switch(target)} env -i {home}{env_words} /bin/sh -c {shlex.quote(CD_EXEC)} "
            f"{shlex.quote(self.abspath(cwd) if cwd else self.workdir)} {shlex.join(argv)}"
        )
        try:
            done = self.session.run(command, stdin=stdin or b"", timeout=timeout)
        except ConnectionDropped as exc:
            self.session.drop()
            with contextlib.suppress(InfrastructureError):
                self._kill(f"{EXEC_MARKER}={exec_id}")
            raise SandboxGoneError(
                f"{exc} while running {argv[0]!r}; its processes were killed. The trial is "
                "retried on a fresh sandbox (--ale-infra-retries)."
            ) from exc
        if done.timed_out:
            self._kill(f"{EXEC_MARKER}={exec_id}")
        return ExecResult(
            exit_code=-9 if done.timed_out or done.exit_code is None else done.exit_code,
            stdout=done.stdout.decode("utf-8", "replace"),
            stderr=done.stderr.decode("utf-8", "replace"),
            timed_out=done.timed_out,
            duration_s=done.duration_s,
        )

    def put_archive(self, dest: str, data: bytes) -> None:
        """Extract as the agent inside its own area (before grading), as root elsewhere."""
        dest = self.abspath(dest)
        script = _script('mkdir -p "$1" && tar -x -p --no-same-owner -C "$1" -f -', dest)
        if self.agent_user is not None and not self.grading and self._agent_area(dest):
            script = f"exec {self._switch(self.agent_user)} /bin/sh -c {shlex.quote(script)}"
            done = self.run_script(script, stdin=data, timeout=3600)
        else:
            done = self.run_script(script, stdin=data, timeout=3600, root=True)
        if done.exit_code != 0:
            raise StagingError(
                f"{self.name}: extracting into {dest} failed: "
                + done.stderr.decode("utf-8", "replace").strip()
            )

    def get_archive(self, src: str) -> bytes:
        src = self.abspath(src)
        done = self.run_script(archive_script(src), timeout=3600, root=True)
        return archive_result(self.name, src, done.exit_code, done.stdout, done.stderr)

    def collect(self, src: str, dest: Path) -> ExtractReport:
        """``src`` (``output/``) into host folder ``dest``: tar's stream is spooled to a host
        file as it comes (stopped past the caps, with room for headers), then extracted."""
        src = self.abspath(src)
        limit = self.max_output_bytes + (self.max_output_files + 1) * 8192 + 64 * 1024**2
        with tempfile.TemporaryFile(prefix="ale-collect-") as spool:
            try:
                done, over = self.session.run_to_file(self._rooted(archive_script(src)), spool, limit=limit)
            except ConnectionDropped as exc:
                self.session.drop()
                raise SandboxGoneError(f"{exc}; the trial is retried on a fresh sandbox") from exc
            if over:
                raise OutputOverCap(f"{src}: its archive exceeds {limit // 1024**2} MiB ({self._caps()})")
            archive_result(self.name, src, done.exit_code, b"", done.stderr)
            spool.seek(0)
            try:
                return safe_extract(
                    spool, dest, max_bytes=self.max_output_bytes, max_files=self.max_output_files, strict=True
                )
            except OutputOverCap as exc:
                raise OutputOverCap(f"{exc} ({self._caps()})") from exc

    def _caps(self) -> str:
        return (
            f"the caps are max_output_mb={self.max_output_bytes / 1024**2:g} and "
            f"max_output_files={self.max_output_files} in the provider preset"
        )

    def kill_all(self) -> int:
        """``kill -9 -1`` as the agent's uid until none is left; how many there were."""
        if self.agent_user is None:
            return self._kill(f"{MARKER}={self.marker}")
        uid = str(self._ids()[0])
        script = f"exec {self._switch(self.agent_user)} /bin/sh -c {shlex.quote(KILL_UID)} ale {uid}"
        return _last_int(self.run_script(script, timeout=60).stdout)

    def agent_processes(self) -> int:
        if self.agent_user is None:
            pattern = shlex.quote(f"{MARKER}={self.marker}")
            script = f"grep -Flzx {pattern} /proc/[0-9]*/environ 2>/dev/null | grep -c . || true"
        else:
            script = _script(COUNT_UID, str(self._ids()[0]))
        done = self.run_script(script, timeout=60, root=True)
        try:
            return int(done.stdout.decode().split()[-1])
        except (ValueError, IndexError):
            raise InfrastructureError(
                f"{self.name}: cannot count the agent's processes: {done.stderr!r}"
            ) from None

    def prepare_grading(self) -> None:
        """After the fence: the agent's entries of ``/tmp``, ``/var/tmp``, ``/dev/shm`` go
        into a root-only quarantine folder in each; staging is root's from now on."""
        self.grading = True
        if self.agent_user is None:
            return
        script = _script(QUARANTINE, str(self._ids()[0]), quarantine_name(self.marker))
        done = self.run_script(script, timeout=600, root=True)
        if done.exit_code != 0:
            raise InfrastructureError(
                f"{self.name}: could not quarantine the agent's temporary files (exit {done.exit_code}): "
                + done.stderr.decode("utf-8", "replace").strip()
            )

    def scrub(self) -> None:
        """Remove what the agent left in the shared temporary folders (a reused machine)."""
        if self.agent_user is not None and self.agent_ids is not None:
            script = _script(SCRUB, str(self.agent_ids[0]), quarantine_name(self.marker))
            self.run_script(script, timeout=600, root=True)
        made = [self.grader_scratch_made, *{p.rpartition("/")[0] for p in self.socket_paths.values()}]
        ours = [f for f in made if f and f.startswith(("/tmp/ale-gw-", "/tmp/.ale-grader-"))]
        if ours:
            self.run_script("rm -rf -- " + shlex.join(ours), timeout=600, root=True)

    def close(self) -> None:
        """Drop the SSH connection; commands fail from now on. Safe to call twice."""
        self.closed = True
        self.session.close()

    def reconnect(self) -> None:
        """A fresh connection after ``close``, for the provider's teardown: the same machine,
        its host key as pinned by the first connection, no socket doors."""
        old = self.session
        fresh = SshSession(old.target, loop=old.loop)
        fresh.pinned = old.pinned
        self.session = fresh
        self.closed = False

    def describe(self) -> str:
        t = self.session.target
        agent = f"; the agent is {self.agent_user}" if self.agent_user else ""
        return f"ssh -p {t.port} {t.user}@{t.host}  (workspace {self.workdir}{agent}; {self.name})"

    # -- helpers -----------------------------------------------------------------------
    def run_script(
        self, script: str, *, stdin: bytes = b"", timeout: float | None = None, root: bool = False
    ) -> Completed:
        """Run a harness-side shell script as the login user (no markers, so a timeout kill
        never hits it), for the providers' own work on the machine (emptying a folder,
        removing a trial's folders); ``root`` runs it through ``sudo`` when the login user
        is not root and may use it. ``SandboxGoneError`` when the connection drops."""
        command = self._rooted(script) if root else script
        try:
            return self.session.run(command, stdin=stdin, timeout=timeout)
        except ConnectionDropped as exc:
            self.session.drop()
            raise SandboxGoneError(f"{exc}; the trial is retried on a fresh sandbox") from exc

    def _rooted(self, script: str) -> str:
        return f"sudo -n sh -c {shlex.quote(script)}" if self.sudo else script

    def _ids(self) -> tuple[int, int]:
        if self.agent_ids is None:
            raise InfrastructureError(f"{self.name}: the sandbox was not prepared (no agent account)")
        return self.agent_ids

    def _switch(self, user: str | None) -> str:
        """The command prefix that runs what follows as ``user``."""
        if user is None or user == self.login:
            return ""
        if user == self.agent_user:
            if self.login == "root":
                uid, gid = self._ids()
                return f"setpriv --reuid {uid} --regid {gid} --init-groups --no-new-privs --"
            return f"sudo -n -u {shlex.quote(user)} -- setpriv --no-new-privs --"
        if self.login == "root":
            return "" if user in ("root", "0") else f"runuser -u {shlex.quote(user)} --"
        return f"sudo -n -u {shlex.quote(user)} --"

    def _identity(self, user: str | None) -> dict[str, str]:
        if user == self.agent_user and user is not None:
            return {"HOME": self.home, "USER": user, "LOGNAME": user}
        if user in ("root", "0"):
            return {"HOME": "/root", "USER": "root", "LOGNAME": "root"}
        if user is not None and user != self.login:
            return {"HOME": f"/home/{user}", "USER": user, "LOGNAME": user}
        return {}

    def _agent_area(self, path: str) -> bool:
        path = "/" + path.strip("/")
        return any(
            path == r.rstrip("/") or path.startswith(r.rstrip("/") + "/")
            for r in (self.workdir, self.scratch)
        )

    def _kill(self, pattern: str) -> int:
        done = self.run_script(KILL_SCRIPT.replace("{pattern}", shlex.quote(pattern)), timeout=60, root=True)
        return _last_int(done.stdout)


def _script(script: str, *args: str) -> str:
    """``sh -c SCRIPT ale ARGS...`` as one command line."""
    return f"/bin/sh -c {shlex.quote(script)} ale {shlex.join(args)}"


def _last_int(stdout: bytes) -> int:
    try:
        return int(stdout.decode().split()[-1])
    except (ValueError, IndexError):
        return 0
