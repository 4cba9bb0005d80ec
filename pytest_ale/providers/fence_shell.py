"""The shell side of the fence and of grading, for sandboxes reached by running commands
(Docker containers, SSH machines): every script is plain POSIX ``sh`` plus GNU ``find``.

- ``KILL_UID``, run *as the agent*: ``kill -9 -1`` signals every process of the caller's
  uid (in its PID namespace) but itself, in one step the kernel makes atomic with respect
  to ``fork`` (a child forked meanwhile dies with its parent's pending SIGKILL). A process
  cannot leave its uid without privileges the agent does not have, so ``setsid``, a double
  fork, ``env -i`` or a fork-and-exit loop all die. Builtins only: it forks nothing.
- ``COUNT_UID``: how many live (not zombie) processes the agent's uid still has.
- ``QUARANTINE``, run as root after the fence: every entry of ``/tmp``, ``/var/tmp`` and
  ``/dev/shm`` the agent owns is moved into a root-owned ``0700`` folder there, so a grader
  that makes ``/tmp/<anything>`` gets a folder the agent never made (nor planted modules in).
- ``SCRUB``, run as root when a reused machine is given back: removes what the agent (and
  the quarantine) left in those folders.
"""

from __future__ import annotations

#: the shared temporary folders an unprivileged agent can write into
TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")

# $1: the uid. Counts live processes whose real uid is $1 (this script aside) into $n.
_COUNT = r"""
n=0
for d in /proc/[0-9]*; do
  [ "${d#/proc/}" = $$ ] && continue
  st=; u=
  while read -r k v _; do
    case $k in State:) st=$v;; Uid:) u=$v; break;; esac
  done 2>/dev/null < "$d/status"
  [ "$u" = "$1" ] && [ "$st" != Z ] && n=$((n+1))
done
"""

#: ``sh -c COUNT_UID ale UID``: prints the count
COUNT_UID = _COUNT + "echo $n\n"

#: ``sh -c KILL_UID ale UID``, as that uid: prints how many were alive, then kills them all
KILL_UID = _COUNT + "for round in 1 2 3 4 5 6 7 8 9 10; do kill -9 -1 2>/dev/null || break; done\necho $n\n"

#: ``sh -c QUARANTINE ale UID NAME``, as root: prints the quarantine folders it filled
QUARANTINE = r"""
uid=$1; name=$2; shift 2
for d in /tmp /var/tmp /dev/shm; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  q="$d/$name"
  first=$(find "$d" -mindepth 1 -maxdepth 1 -uid "$uid" ! -name "$name" -print -quit 2>/dev/null)
  [ -n "$first" ] || continue
  mkdir -m 700 "$q" 2>/dev/null || { [ -d "$q" ] && [ ! -L "$q" ] && [ "$(stat -c %u "$q")" = 0 ]; } || exit 3
  chmod 700 "$q"
  find "$d" -mindepth 1 -maxdepth 1 -uid "$uid" ! -name "$name" -exec mv -f -t "$q" -- {} + || exit 4
  echo "$q"
done
"""

#: ``sh -c SCRUB ale UID NAME``, as root: removes the agent's entries and the quarantine
SCRUB = r"""
for d in /tmp /var/tmp /dev/shm; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  find "$d" -mindepth 1 -maxdepth 1 \( -uid "$1" -o -name "$2" \) -exec rm -rf -- {} + 2>/dev/null
done
true
"""


def quarantine_name(sandbox_id: str) -> str:
    """The name of a sandbox's quarantine folder inside each temporary folder."""
    return f".ale-agent-tmp-{sandbox_id[:12]}"
