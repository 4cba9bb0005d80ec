"""The bubblewrap command line a local sandbox runs each command under, and the ``setpriv``
and ``prlimit`` prefix that drops the agent to its own uid inside it.

One PID namespace per command (its processes die with it), no network unless asked for,
the host's system folders and Python read-only, the sandbox's own folders bound at the
paths the task asked for.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
PRLIMIT = shutil.which("prlimit") or "/usr/bin/prlimit"
NAMESPACES = ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")


def bwrap_argv(
    bwrap: str,
    cwd: str,
    *,
    network: bool,
    binds: Iterable[tuple[str, Path]],
    ro_binds: Iterable[tuple[str, Path]],
    extra_read_only: Iterable[str] = (),
) -> list[str]:
    """``bwrap`` with its flags, up to (not including) the ``--`` before the command;
    ``binds`` and ``ro_binds`` are (path inside, host path) pairs."""
    args = [bwrap, "--die-with-parent", "--new-session", *NAMESPACES, "--hostname", "sandbox"]
    if not network:
        args.append("--unshare-net")
    read_only = [*SYSTEM_DIRS, *_python_roots(), *(str(f) for f in extra_read_only)]
    mounts = [("--ro-bind-try", folder, folder) for folder in read_only]
    mounts += [("--proc", "/proc", ""), ("--dev", "/dev", "")]
    mounts += [("--bind", str(host), inside) for inside, host in binds]
    mounts += [("--ro-bind", str(host), inside) for inside, host in ro_binds]
    # the folders above mount points (/root for a pyenv Python, /ale, /tmp/ci under the
    # sandbox's /tmp) made readable by the agent's uid: bubblewrap would make them 0700
    ops = [
        ([flag, source, inside] if inside else [flag, source], inside or source)
        for flag, source, inside in mounts
    ]
    ops += [(["--perms", "0755", "--dir", folder], folder) for folder in _open_parents(mounts)]
    # shallow first, so a deeper mount (a read-only bind of /tmp/ci/tools, say) lies on
    # top of the sandbox's own /tmp instead of being hidden under it
    for op, _ in sorted(ops, key=lambda o: _depth(o[1])):
        args += op
    return [*args, "--chdir", cwd]


def drop_to(uid: int, max_processes: int) -> list[str]:
    """The prefix that runs a command as ``uid`` with no groups, no capabilities in any set,
    no way to gain one back (``no_new_privs`` makes setuid and file capabilities inert),
    and at most ``max_processes`` processes of that uid (a per-sandbox limit: the uid is
    the sandbox's alone)."""
    privs = [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    privs += ["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    return [PRLIMIT, f"--nproc={max_processes}", SETPRIV, *privs, "--"]


def _open_parents(mounts: list[tuple[str, str, str]]) -> list[str]:
    """The folders above the mount points that no mount provides, or that a writable bind
    holds (they are made there); not those inside a read-only mount, which has its own."""
    targets = {os.path.normpath(inside or source): flag for flag, source, inside in mounts}
    parents: set[str] = set()
    for target in targets:
        parent = os.path.dirname(target)
        while parent != "/":
            parents.add(parent)
            parent = os.path.dirname(parent)

    def holder(folder: str) -> str | None:
        """The flag of the deepest mount holding ``folder``."""
        inside = [t for t in targets if folder.startswith(t.rstrip("/") + "/")]
        return targets[max(inside, key=len)] if inside else None

    return [f for f in parents if f not in targets and holder(f) in (None, "--bind")]


def _depth(path: str) -> int:
    return len([part for part in os.path.normpath(path).split("/") if part])


def _python_roots() -> list[str]:
    """Where the host's Python lives when it is outside the system folders (pyenv, say)."""
    roots = {sys.base_prefix}
    python = shutil.which("python3")
    if python:
        roots.add(str(Path(os.path.realpath(python)).parent.parent))
    return sorted(r for r in roots if not r.startswith(SYSTEM_DIRS))
