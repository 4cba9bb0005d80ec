"""The provider conformance suite: the same behaviour asked of every provider in ``CASES``.

exec (exit codes, stdout/stderr, env, cwd, stdin, argv quoting), timeouts that kill the
whole process tree, a staging round trip (modes, symlinks, nested folders, binary data),
fencing, the host-socket door, the one teardown path (``Provider.release`` removes
everything, twice is harmless, ``Sandbox.close`` alone removes nothing, ``Provider.close``
releases what is still held), and sweep.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import tempfile
import threading
import time
import uuid

import pytest

from pytest_ale.errors import InfrastructureError
from pytest_ale.sandbox import Provider, Sandbox

from .cases import Case
from .conftest import spec_for
from .env import Env

ALIVE = 'test -d /proc/$1 && [ "$(sed "s/.*) //" /proc/$1/stat | cut -c1)" != Z ]'


def alive(sandbox: Sandbox, pid: str) -> bool:
    """Whether ``pid`` runs in the sandbox (a zombie waiting for its reaper does not count)."""
    for _ in range(20):
        if sandbox.exec(["sh", "-c", ALIVE, "alive", pid]).exit_code != 0:
            return False
        time.sleep(0.1)
    return True


def test_exec_exit_codes_and_streams(sandbox: Sandbox) -> None:
    result = sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (7, "out\n", "err\n", False)
    assert not result.ok
    assert sandbox.exec(["true"]).ok
    assert sandbox.exec("exit 0").exit_code == 0


def test_exec_argv_is_not_reinterpreted_by_a_shell(sandbox: Sandbox) -> None:
    tricky = ["it's", "a b", "$HOME", "`id`", "semi;colon", "*"]
    result = sandbox.exec(["printf", "%s\\n", *tricky])
    assert result.stdout.splitlines() == tricky


def test_exec_env_cwd_and_stdin(sandbox: Sandbox) -> None:
    assert sandbox.exec(["pwd"]).stdout.strip() == sandbox.workdir
    sandbox.mkdir(sandbox.path("sub dir"))
    assert sandbox.exec(["pwd"], cwd=sandbox.path("sub dir")).stdout.strip() == sandbox.path("sub dir")
    env = {"ALE_TEST_VALUE": "x y'z", "OTHER": "2"}
    assert sandbox.sh('printf %s "$ALE_TEST_VALUE$OTHER"', env=env).stdout == "x y'z2"
    assert sandbox.exec(["cat"], stdin=b"piped\x00bytes").stdout == "piped\x00bytes"
    missing = sandbox.exec(["pwd"], cwd=sandbox.path("nope"))
    assert missing.exit_code != 0


def test_timeout_kills_the_whole_process_tree(sandbox: Sandbox) -> None:
    pidfile = sandbox.path("child.pid")
    script = f"sleep 300 & echo $! > {pidfile}; setsid sleep 301 & echo $! >> {pidfile}; wait"
    started = time.monotonic()
    result = sandbox.sh(script, timeout=1.5)
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < 20
    pids = sandbox.read_text(pidfile).split()
    assert len(pids) == 2
    for pid in pids:
        assert not alive(sandbox, pid), f"process {pid} survived the timeout"


def test_staging_round_trip(sandbox: Sandbox) -> None:
    binary = bytes(range(256)) * 64
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(os.path.join(src, "nested", "deeper"))
        files = {
            "run.sh": (b"#!/bin/sh\necho ran\n", 0o755),
            "secret.txt": (b"only me\n", 0o600),
            "nested/deeper/blob.bin": (binary, 0o644),
            "name with spaces.txt": (b"spaces\n", 0o644),
        }
        for rel, (data, mode) in files.items():
            with open(os.path.join(src, rel), "wb") as fh:
                fh.write(data)
            os.chmod(os.path.join(src, rel), mode)
        os.symlink("deeper/blob.bin", os.path.join(src, "nested", "link"))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for entry in sorted(os.listdir(src)):
                tar.add(os.path.join(src, entry), arcname=entry)
    dest = sandbox.path("in")
    sandbox.put_archive(dest, buf.getvalue())
    assert sandbox.exec([sandbox.path("in", "run.sh")]).stdout == "ran\n"
    with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive(dest))) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        for rel, (data, mode) in files.items():
            assert members[rel].isfile(), rel
            assert members[rel].mode & 0o777 == mode, rel
            extracted = tar.extractfile(members[rel])
            assert extracted is not None and extracted.read() == data
        assert members["nested/link"].issym()
        assert members["nested/link"].linkname == "deeper/blob.bin"
        assert members["nested/deeper"].isdir()
    assert sandbox.read_bytes(sandbox.path("in", "nested", "deeper", "blob.bin")) == binary
    sandbox.write_bytes(sandbox.path("out", "x.bin"), b"\x00\xff")
    assert sandbox.read_bytes(sandbox.path("out", "x.bin")) == b"\x00\xff"
    assert sandbox.exists(sandbox.path("in")) and sandbox.is_dir(sandbox.path("in"))
    assert sandbox.listdir(sandbox.path("out")) == ["x.bin"]
    with pytest.raises(FileNotFoundError):
        sandbox.get_archive(sandbox.path("absent"))


def test_reading_a_file_that_is_being_rewritten_succeeds(sandbox: Sandbox) -> None:
    """A pull while something still writes (a grader reading a live log) gets the bytes as
    they were, not an error: GNU tar's "file changed as we read it" is not a failure."""
    busy = sandbox.path("busy", "log.bin")
    loop = f"mkdir -p {sandbox.path('busy')}; while :; do yes | head -c 1000000 > {busy}; done"
    assert sandbox.sh(f"setsid sh -c '{loop}' >/dev/null 2>&1 & sleep 0.3").ok
    try:
        for _ in range(15):
            assert len(sandbox.read_bytes(busy)) <= 1000000
            with tarfile.open(fileobj=io.BytesIO(sandbox.get_archive(sandbox.path("busy")))) as tar:
                assert [m.name.removeprefix("./") for m in tar.getmembers()] == ["log.bin"]
    finally:
        sandbox.kill_all()


def test_fencing_kills_escaped_background_processes(sandbox: Sandbox, case: Case) -> None:
    beat = sandbox.path("heartbeat")
    loop = f"while :; do date +%s%N > {beat}; sleep 0.05; done"
    started = sandbox.sh(f"setsid sh -c '{loop}' >/dev/null 2>&1 & sleep 0.3")
    assert started.ok
    if case.background_survives_exec:
        first = sandbox.read_text(beat)
        time.sleep(0.3)
        assert sandbox.read_text(beat) != first, "the background loop should still be running"
        assert sandbox.kill_all() >= 1
    else:
        sandbox.kill_all()
    last = sandbox.read_text(beat)
    time.sleep(0.5)
    assert sandbox.read_text(beat) == last, "a background process survived the fence"
    assert sandbox.exec(["echo", "still usable"]).stdout == "still usable\n"


def test_host_socket_reaches_the_sandbox(provider: Provider, case: Case, tmp_path_factory) -> None:
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
    sandbox = provider.acquire(spec_for(case, sockets={inside: host_path}))
    try:
        path = sandbox.socket_paths[inside]
        client = (
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "s.sendall(b'ping'); print(s.recv(100).decode())"
        )
        result = sandbox.exec(["python3", "-c", client, path], timeout=30)
        assert result.stdout.strip() == "pong:ping", result.stderr
    finally:
        provider.release(sandbox)
        server.close()
        thread.join(5)


def test_release_leaves_nothing_behind(provider: Provider, case: Case, env: Env) -> None:
    sandbox = provider.acquire(spec_for(case))
    held = provider.held[sandbox]
    sandbox.sh("setsid sleep 300 >/dev/null 2>&1 &")
    assert not case.gone(env, provider, held)
    provider.release(sandbox)
    assert sandbox not in provider.held
    assert case.gone(env, provider, held)
    provider.release(sandbox)  # twice is harmless
    sandbox.close()  # and so is closing a released sandbox
    assert case.gone(env, provider, held)
    with pytest.raises(InfrastructureError):
        sandbox.exec(["true"])


def test_close_alone_drops_the_transport_and_tears_nothing_down(
    provider: Provider, case: Case, env: Env
) -> None:
    """``Sandbox.close`` only drops the sandbox's own connection or handle: the provider
    still holds the sandbox, nothing is removed, and its release still removes everything."""
    sandbox = provider.acquire(spec_for(case))
    held = provider.held[sandbox]
    assert sandbox.sh("setsid sleep 300 >/dev/null 2>&1 &").ok
    sandbox.close()
    sandbox.close()  # idempotent
    with pytest.raises(InfrastructureError):
        sandbox.exec(["true"])
    assert provider.held.get(sandbox) is held
    assert not case.gone(env, provider, held)
    provider.release(sandbox)
    assert sandbox not in provider.held
    assert case.gone(env, provider, held)


def test_provider_close_releases_what_it_still_holds(case: Case, env: Env) -> None:
    """The session's end (``Provider.close``) releases every sandbox still held, each through
    ``release``: an interrupted trial's sandbox does not outlive its session."""
    provider = case.make(env)
    try:
        sandbox = provider.acquire(spec_for(case))
        held = provider.held[sandbox]
        assert sandbox.sh("setsid sleep 300 >/dev/null 2>&1 &").ok
    finally:
        provider.close()
    assert not provider.held
    assert case.gone(env, provider, held)
    provider.release(sandbox)  # after the session's end: still harmless
    provider.close()


def test_release_after_a_sweep_removed_it_is_harmless(provider: Provider, case: Case, env: Env) -> None:
    """A forced sweep (``--ale-sweep-force``) may remove a sandbox its trial still holds: the
    trial's release then finds it gone and ends quietly, freeing what is left (a host lock)."""
    run = f"swept-{uuid.uuid4().hex[:6]}"
    sandbox = provider.acquire(spec_for(case, run_id=run))
    held = provider.held[sandbox]
    assert provider.sweep(run)
    provider.release(sandbox)
    assert sandbox not in provider.held
    assert case.gone(env, provider, held)


def _abandon(provider: Provider, sandbox: Sandbox) -> None:
    """What a crashed worker leaves: the sandbox is never released. Its process is gone, and
    with it what only that process held: its connection, a static host's lock."""
    held = provider.held.pop(sandbox)
    sandbox.close()
    lock = getattr(held, "lock", None)
    if lock is not None:
        lock.release()


def test_sweep_by_run_id_removes_that_run_only(provider: Provider, case: Case, env: Env) -> None:
    crashed = provider.acquire(spec_for(case, run_id=f"crashed-{uuid.uuid4().hex[:6]}"))
    crashed_held = provider.held[crashed]
    _abandon(provider, crashed)
    other = provider.acquire(spec_for(case, run_id="other-run"))
    other_held = provider.held[other]
    try:
        removed = provider.sweep(crashed.spec.run_id)
        assert len(removed) >= 1
        assert case.gone(env, provider, crashed_held)
        assert not case.gone(env, provider, other_held)
        assert other.exec(["true"]).ok
    finally:
        provider.release(other)
    assert case.gone(env, provider, other_held)


def test_sweep_by_run_id_takes_its_xdist_workers_sandboxes(provider: Provider, case: Case, env: Env) -> None:
    """``--ale-sweep --ale-run-id RUN`` after a crashed ``-n N`` run: its workers labelled
    their sandboxes ``RUN@gwN``, and those go too; a run whose name merely starts alike stays."""
    run = f"xd{uuid.uuid4().hex[:6]}"
    crashed = []
    for n in (0, 1):  # one at a time: a static host holds one sandbox
        sandbox = provider.acquire(spec_for(case, run_id=f"{run}@gw{n}"))
        crashed.append(provider.held[sandbox])
        _abandon(provider, sandbox)
    other = provider.acquire(spec_for(case, run_id=f"{run}x@gw0"))
    try:
        assert len(provider.sweep(run)) >= 2
        assert all(case.gone(env, provider, held) for held in crashed)
        assert not case.gone(env, provider, provider.held[other])
    finally:
        provider.release(other)


def test_sweep_without_run_id_removes_expired_only(provider: Provider, case: Case, env: Env) -> None:
    if not case.expiry_sweep:
        pytest.skip(f"{case.name} has no expiry: its sweep removes every leftover")
    expired = provider.acquire(spec_for(case, run_id="expired-run", expiry_s=-60))
    expired_held = provider.held[expired]
    _abandon(provider, expired)
    fresh = provider.acquire(spec_for(case, run_id="fresh-run"))
    try:
        removed = provider.sweep(None)
        assert removed
        assert case.gone(env, provider, expired_held)
        assert not case.gone(env, provider, provider.held[fresh])
    finally:
        provider.release(fresh)
