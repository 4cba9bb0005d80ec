"""Running commands in a container through the exec API, with timeouts that really kill.

Each exec carries an environment marker (``ALE_EXEC_ID=<id>``) that its children inherit,
even after ``setsid``, ``nohup`` or a double fork. On timeout a second exec, as the same
user, SIGKILLs every process carrying that marker (what ``env -i`` escapes, the fence
catches). The fence (``fence_shell.KILL_UID``, run as the agent) kills every process of
the agent's uid with ``kill -9 -1``, which no process of that uid can leave. All are plain
POSIX ``sh`` with builtins only, so they fork nothing that they could then mistake for a
victim.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

MARKER = "ALE_EXEC_ID"
#: output kept per stream of one exec; the rest is dropped with a note
MAX_OUTPUT_BYTES = 16 * 1024**2

# Only when the agent runs as root (``unsafe_root_agent``): kill every process but PID 1, the
# keep-alive and this script. The keep-alive is the oldest root-owned child of PID 1 (started
# before any exec). Rounds repeat while anything was killed (forks race us): a fork loop can
# outrun this, which is one reason a root agent is unsafe.
FENCE_ALL = r"""
keep=
for d in /proc/[0-9]*; do
  read -r line 2>/dev/null < "$d/stat" || continue
  rest=${line##*) }; set -- $rest
  [ "$2" = 1 ] || continue
  uid=
  while read -r k v _; do [ "$k" = Uid: ] && { uid=$v; break; }; done 2>/dev/null < "$d/status"
  [ "$uid" = 0 ] || continue
  p=${d#/proc/}
  if [ -z "$keep" ] || [ "$p" -lt "$keep" ]; then keep=$p; fi
done
killed=" "
for round in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  live=0
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case $p in 1|"$keep"|$$) continue;; esac
    read -r line 2>/dev/null < "$d/stat" || continue
    rest=${line##*) }; state=${rest%% *}
    [ "$state" = Z ] && continue
    if kill -9 "$p" 2>/dev/null; then
      live=$((live+1))
      case $killed in *" $p "*) ;; *) killed="$killed$p ";; esac
    fi
  done
  [ "$live" = 0 ] && break
done
set -- $killed
echo $#
"""

# $1: the marker value. Kills every process whose environment holds ALE_EXEC_ID=$1, all
# stopped first (killed one by one, a shell whose child died first ran its next command)
# (run it as the marked processes' user: only they, or CAP_SYS_PTRACE, may read environ).
KILL_MARKED = r"""
for round in 1 2 3 4 5 6 7 8 9 10; do
  pids=""
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = $$ ] && continue
    env=$(tr '\000' '\n' 2>/dev/null < "$d/environ") || continue
    case "
$env
" in *"
ALE_EXEC_ID=$1
"*) pids="$pids $p";; esac
  done
  [ -z "$pids" ] && break
  kill -STOP $pids 2>/dev/null; kill -9 $pids 2>/dev/null
done
"""

# How many processes the kernel's OOM killer has killed in this container's cgroup.
OOM_KILLS = r"""
if [ -r /sys/fs/cgroup/memory.events ]; then f=/sys/fs/cgroup/memory.events
else f=/sys/fs/cgroup/memory/memory.oom_control; fi
while read -r k v; do [ "$k" = oom_kill ] && { echo "$v"; exit 0; }; done < "$f" 2>/dev/null
echo 0
"""


@dataclass
class ExecOutcome:
    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    duration_s: float


def run_exec(
    api: Any,
    container_id: str,
    argv: list[str],
    *,
    user: str,
    env: Mapping[str, str],
    workdir: str,
    timeout: float | None,
    on_timeout: Callable[[], None],
    max_stdout: int = MAX_OUTPUT_BYTES,
    stdout_file: BinaryIO | None = None,
) -> ExecOutcome:
    """Run ``argv`` via the exec API; on ``timeout`` call ``on_timeout`` (the killer).
    Output past ``max_stdout`` (stdout) or ``MAX_OUTPUT_BYTES`` (stderr) is dropped, saying so.
    With ``stdout_file``, stdout is written there as it comes (never held in memory)."""
    started = time.monotonic()
    exec_id = api.exec_create(
        container_id, argv, stdout=True, stderr=True, user=user, environment=dict(env), workdir=workdir
    )["Id"]
    stream = api.exec_start(exec_id, stream=True, demux=True)
    out, err = _Sink(max_stdout, stdout_file), _Sink(MAX_OUTPUT_BYTES)

    def pump() -> None:
        for stdout, stderr in stream:
            out.add(stdout)
            err.add(stderr)

    reader = threading.Thread(target=pump, name=f"ale-exec-{exec_id[:8]}", daemon=True)
    reader.start()
    reader.join(timeout)
    timed_out = reader.is_alive()
    if timed_out:
        on_timeout()
        reader.join(10)
        if reader.is_alive():  # something escaped the kill and holds the pipes open
            stream.close()
            reader.join(5)
            err.add(b"\n(output cut: a process kept the pipes open after the timeout kill)")
    exit_code = _exit_code(api, exec_id)
    return ExecOutcome(
        -9 if timed_out else exit_code,
        out.value(),
        err.value(),
        timed_out,
        time.monotonic() - started,
    )


def _exit_code(api: Any, exec_id: str) -> int:
    for _ in range(200):
        info = api.exec_inspect(exec_id)
        if not info.get("Running"):
            code = info.get("ExitCode")
            return int(code) if code is not None else -1
        time.sleep(0.01)
    return -1


class _Sink:
    """Collects one output stream up to ``limit`` bytes (in memory, or into ``file``)."""

    def __init__(self, limit: int, file: BinaryIO | None = None) -> None:
        self.limit = limit
        self.file = file
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0

    def add(self, chunk: bytes | None) -> None:
        if not chunk:
            return
        room = self.limit - self.size
        if room > 0 and self.file is not None:
            self.file.write(chunk[:room])
            self.size += min(room, len(chunk))
        elif room > 0:
            self.parts.append(chunk[:room])
            self.size += min(room, len(chunk))
        self.dropped += max(0, len(chunk) - max(room, 0))

    def value(self) -> bytes:
        data = b"".join(self.parts)
        if self.dropped:
            data += f"\n({self.dropped} more bytes of output dropped)".encode()
        return data
