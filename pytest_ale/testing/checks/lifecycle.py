"""Conformance: a sandbox's life. The host-socket door in; the one teardown path
(``Provider.release`` removes everything, twice is harmless, ``Sandbox.close`` alone removes
nothing, ``Provider.close`` releases what is still held, a release after a sweep is quiet);
sweeps that remove a crashed run's sandboxes (and its xdist workers') and only those, and
``collect`` stopping at the caps the provider's options set."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from ...errors import InfrastructureError, OutputOverCap
from ...sandbox import Provider
from ..target import Target, spec_for


def _gone(target: Target, provider: Provider, held: Any) -> bool:
    return target.gone is None or target.gone(provider, held)


def _kept(target: Target, provider: Provider, held: Any) -> bool:
    return target.gone is None or not target.gone(provider, held)


def test_host_socket_reaches_the_sandbox(
    ale_conformance_provider: Provider, ale_conformance_target: Target
) -> None:
    host_dir = tempfile.mkdtemp(prefix="alegw-")
    host_path = os.path.join(host_dir, "gw.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(host_path)
    server.listen(4)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"pong:" + conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    inside = f"/run/ale-test-{uuid.uuid4().hex[:6]}/gateway.sock"
    sandbox = ale_conformance_provider.acquire(spec_for(ale_conformance_target, sockets={inside: host_path}))
    try:
        path = sandbox.socket_paths[inside]
        client = (
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "s.sendall(b'ping'); print(s.recv(100).decode())"
        )
        result = sandbox.exec(["python3", "-c", client, path], timeout=30)
        assert result.stdout.strip() == "pong:ping", result.stderr
    finally:
        ale_conformance_provider.release(sandbox)
        server.close()
        thread.join(5)


def test_release_leaves_nothing_behind(
    ale_conformance_provider: Provider, ale_conformance_target: Target
) -> None:
    provider, target = ale_conformance_provider, ale_conformance_target
    sandbox = provider.acquire(spec_for(target))
    held = provider.held[sandbox]
    sandbox.sh("setsid sleep 300 >/dev/null 2>&1 &")
    assert _kept(target, provider, held)
    provider.release(sandbox)
    assert sandbox not in provider.held
    assert _gone(target, provider, held)
    provider.release(sandbox)  # twice is harmless
    sandbox.close()  # and so is closing a released sandbox
    assert _gone(target, provider, held)
    with pytest.raises(InfrastructureError):
        sandbox.exec(["true"])


def test_close_alone_drops_the_transport_and_tears_nothing_down(
    ale_conformance_provider: Provider, ale_conformance_target: Target
) -> None:
    """``Sandbox.close`` only drops the sandbox's own connection or handle: the provider
    still holds the sandbox, nothing is removed, and its release still removes everything."""
    provider, target = ale_conformance_provider, ale_conformance_target
    sandbox = provider.acquire(spec_for(target))
    held = provider.held[sandbox]
    assert sandbox.sh("setsid sleep 300 >/dev/null 2>&1 &").ok
    sandbox.close()
    sandbox.close()  # idempotent
    with pytest.raises(InfrastructureError):
        sandbox.exec(["true"])
    assert provider.held.get(sandbox) is held
    assert _kept(target, provider, held)
    provider.release(sandbox)
    assert sandbox not in provider.held
    assert _gone(target, provider, held)


def test_provider_close_releases_what_it_still_holds(ale_conformance_target: Target) -> None:
    """The session's end (``Provider.close``) releases every sandbox still held, each through
    ``release``: an interrupted trial's sandbox does not outlive its session."""
    target = ale_conformance_target
    _skip_unless_here(target)
    provider = target.make()
    try:
        sandbox = provider.acquire(spec_for(target))
        held = provider.held[sandbox]
        assert sandbox.sh("setsid sleep 300 >/dev/null 2>&1 &").ok
    finally:
        provider.close()
    assert not provider.held
    assert _gone(target, provider, held)
    provider.release(sandbox)  # after the session's end: still harmless
    provider.close()


def test_release_after_a_sweep_removed_it_is_harmless(
    ale_conformance_provider: Provider, ale_conformance_target: Target
) -> None:
    """A forced sweep (``--ale-sweep-force``) may remove a sandbox its trial still holds: the
    trial's release then finds it gone and ends quietly, freeing what is left (a host lock)."""
    provider, target = ale_conformance_provider, ale_conformance_target
    run = f"swept-{uuid.uuid4().hex[:6]}"
    sandbox = provider.acquire(spec_for(target, run_id=run))
    held = provider.held[sandbox]
    assert provider.sweep(run)
    provider.release(sandbox)
    assert sandbox not in provider.held
    assert _gone(target, provider, held)


def test_sweep_by_run_id_removes_that_run_only(
    ale_conformance_provider: Provider, ale_conformance_target: Target
) -> None:
    provider, target = ale_conformance_provider, ale_conformance_target
    crashed = provider.acquire(spec_for(target, run_id=f"crashed-{uuid.uuid4().hex[:6]}"))
    crashed_held = provider.held[crashed]
    target.abandon(provider, crashed)
    other = provider.acquire(spec_for(target, run_id="other-run"))
    other_held = provider.held[other]
    try:
        removed = provider.sweep(crashed.spec.run_id)
        assert len(removed) >= 1
        assert _gone(target, provider, crashed_held)
        assert _kept(target, provider, other_held)
        assert other.exec(["true"]).ok
    finally:
        provider.release(other)
    assert _gone(target, provider, other_held)


def test_sweep_by_run_id_takes_its_xdist_workers_sandboxes(
    ale_conformance_provider: Provider, ale_conformance_target: Target
) -> None:
    """``--ale-sweep --ale-run-id RUN`` after a crashed ``-n N`` run: its workers labelled
    their sandboxes ``RUN@gwN``, and those go too; a run whose name merely starts alike stays."""
    provider, target = ale_conformance_provider, ale_conformance_target
    run = f"xd{uuid.uuid4().hex[:6]}"
    crashed = []
    for n in (0, 1):  # one at a time: a static host holds one sandbox
        sandbox = provider.acquire(spec_for(target, run_id=f"{run}@gw{n}"))
        crashed.append(provider.held[sandbox])
        target.abandon(provider, sandbox)
    other = provider.acquire(spec_for(target, run_id=f"{run}x@gw0"))
    try:
        assert len(provider.sweep(run)) >= 2
        assert all(_gone(target, provider, held) for held in crashed)
        assert _kept(target, provider, provider.held[other])
        assert other.exec(["true"]).ok
    finally:
        provider.release(other)


def test_sweep_without_run_id_removes_expired_only(
    ale_conformance_provider: Provider, ale_conformance_target: Target
) -> None:
    provider, target = ale_conformance_provider, ale_conformance_target
    expired = provider.acquire(spec_for(target, run_id="expired-run", expiry_s=-60))
    expired_held = provider.held[expired]
    target.abandon(provider, expired)
    fresh = provider.acquire(spec_for(target, run_id="fresh-run"))
    try:
        removed = provider.sweep(None)
        assert removed
        assert _gone(target, provider, expired_held)
        assert _kept(target, provider, provider.held[fresh])
        assert fresh.exec(["true"]).ok
    finally:
        provider.release(fresh)


def _skip_unless_here(target: Target) -> None:
    reason = target.skip_reason()
    if reason:
        pytest.skip(f"{target.name}: {reason}")


@pytest.mark.parametrize(
    ("option", "value", "script"),
    [
        ("max_output_files", 10, "for i in $(seq 40); do : > f$i; done"),
        ("max_output_mb", 1, "head -c 3000000 /dev/zero > big"),
    ],
)
def test_collect_stops_at_its_caps_and_names_them(
    ale_conformance_target: Target, tmp_path: Path, option: str, value: int, script: str
) -> None:
    target = ale_conformance_target
    _skip_unless_here(target)
    provider = target.make(**{option: value})
    try:
        sandbox = provider.acquire(spec_for(target))
        try:
            assert sandbox.sh(f"mkdir -p output && cd output && {script}").ok
            with pytest.raises(OutputOverCap, match=option):
                sandbox.collect(sandbox.path("output"), tmp_path / "out")
        finally:
            provider.release(sandbox)
    finally:
        provider.close()
