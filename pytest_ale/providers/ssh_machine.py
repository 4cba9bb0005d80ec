"""One trial's SSH sandbox on a machine, opened and ended the same way for the static hosts
and the VM providers (aws, gcp, libvirt).

``open_sandbox`` lays the trial out on the machine: the task's workdir as it is, or under a
trial root (``ROOT/NAME/WORKDIR``, its scratch at ``ROOT/NAME/tmp``, the host-socket doors
in a fresh short folder under ``/tmp``), connects (retrying while a VM boots), and makes
the workspace and the agent's account ready (``SshSandbox.prepare``).

``end_sandbox`` is the machine's part of a provider's ``release``: it fences what the agent
left running, scrubs a machine that outlives the trial, removes the trial's folders, runs
the preset's cleanup command, and closes the connection (reconnecting first when the
sandbox was closed already). A machine that no longer answers ends the steps there: what
it holds is then the provider's to remove (the VM) or the sweep's (expired trial roots).
"""

from __future__ import annotations

import contextlib
import shlex
import uuid
from collections.abc import Iterable

from ..errors import InfrastructureError
from ..sandbox import SandboxSpec
from .ssh import SshSession, SshTarget
from .ssh_sandbox import SshSandbox


def socket_forwards(spec: SandboxSpec, remap: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Reverse forwards ``{remote_path: host_path}`` for ``spec.sockets``, and where each
    socket appears in the sandbox. ``remap`` puts them in a fresh short folder under
    ``/tmp`` (machines shared between trials; a Unix socket path must stay under 108 bytes)
    instead of at the path the agent asked for."""
    forwards: dict[str, str] = {}
    paths: dict[str, str] = {}
    folder = f"/tmp/ale-gw-{uuid.uuid4().hex[:8]}"
    for n, (inside, host_path) in enumerate(spec.sockets.items()):
        remote = f"{folder}/{n}-{inside.rstrip('/').rpartition('/')[2]}"[:100] if remap else inside
        forwards[remote] = host_path
        paths[inside] = remote
    return forwards, paths


def open_sandbox(
    spec: SandboxSpec,
    target: SshTarget,
    *,
    trial_root: str | None,
    name: str,
    agent_user: str | None,
    create_agent: bool = False,
    sudo: bool = False,
    max_output_mb: float | None = None,
    max_output_files: int | None = None,
    connect_s: float | None = None,
    empty_workdir: bool = False,
) -> SshSandbox:
    """Connect to ``target`` and make the trial's sandbox there, under ``trial_root`` when
    given; ``empty_workdir`` removes what a workdir used as is still holds (a static host's
    ``/workspace``). The connection is closed again when anything fails."""
    workdir = f"{trial_root}/{spec.workdir.strip('/')}" if trial_root else spec.workdir
    forwards, socket_paths = socket_forwards(spec, remap=trial_root is not None)
    session = SshSession(target, forwards)
    try:
        session.connect(deadline_s=connect_s)
        sandbox = SshSandbox(
            spec,
            session,
            workdir=workdir,
            scratch=f"{trial_root}/tmp" if trial_root else None,
            socket_paths=socket_paths,
            sudo=sudo,
            agent_user=agent_user,
            create_agent=create_agent,
            max_output_mb=max_output_mb,
            max_output_files=max_output_files,
            name=name,
        )
        if empty_workdir:
            sandbox.run_script(f"rm -rf {shlex.quote(workdir)}", timeout=600, root=True)
        sandbox.prepare()
    except BaseException:
        session.close()
        raise
    return sandbox


def end_sandbox(
    sandbox: SshSandbox, *, scrub: bool, remove: Iterable[str | None] = (), cleanup: str | None = None
) -> None:
    """Fence, then (``scrub``) remove what the agent left in the shared temporary folders,
    remove the folders ``remove`` names, run ``cleanup`` as the login user. A machine that
    stops answering ends the steps there. The connection is closed at the end, always."""
    try:
        if sandbox.closed:
            sandbox.reconnect()
        with contextlib.suppress(InfrastructureError):
            sandbox.kill_all()
            if scrub:
                sandbox.scrub()
            gone = [folder for folder in remove if folder]
            if gone:
                sandbox.run_script("rm -rf -- " + shlex.join(gone), timeout=600, root=True)
            if cleanup:
                sandbox.run_script(cleanup, timeout=600)
    finally:
        sandbox.close()
