"""The host-side forward proxy of a ``proxy``-policy trial (``network.py``): HTTP(S) out of
the sandbox to the hosts the run allows, and nowhere else, every host logged.

It listens on a Unix socket that the provider exposes inside the sandbox (as the model
gateway's door is exposed: ``SandboxSpec.sockets``); inside, ``netrelay.py`` relays a
loopback port to it and points ``HTTP(S)_PROXY`` there. Two request forms are served:
``CONNECT host:port`` (https: a blind tunnel once the host is allowed) and a plain
``GET http://host/...`` (the request is forwarded with ``Connection: close``, one request
per connection). Anything else is answered 400/403/502 and logged.

Written on the standard library's asyncio streams, in a thread of its own: a forward
proxy is a request line, headers and two pumps, and the maintained proxy libraries
(proxy.py, mitmproxy) bring plugin systems, TLS interception and their own CLIs that a
fixed allow list does not need; aiohttp's server has no CONNECT tunnelling.

Every connection is one JSON line in the trial's ``network.jsonl``: time, phase (``agent``
or ``grade``, set by the trial), method, host, port, allowed or not and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT_S = 30.0


def host_matches(host: str, pattern: str) -> bool:
    """``pattern`` is a host (``pypi.org``), a suffix of subdomains (``.example.org`` or
    ``*.example.org``), or ``*`` (any host)."""
    host, pattern = host.lower().rstrip("."), pattern.lower().rstrip(".")
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        pattern = pattern[1:]
    if pattern.startswith("."):
        return host.endswith(pattern) or host == pattern[1:]
    return host == pattern


@dataclass
class Rules:
    """What the proxy lets through: ``allow`` patterns (``host_matches``), minus the
    ``deny`` (host, port) pairs, which win (the model APIs: only the gateway reaches them)."""

    allow: list[str]
    deny: set[tuple[str, int]] = field(default_factory=set)

    def decide(self, host: str, port: int) -> tuple[bool, str]:
        if (host.lower(), port) in self.deny:
            return False, "a model API: only the model gateway reaches it"
        if any(host_matches(host, pattern) for pattern in self.allow):
            return True, "allowed"
        return False, "not in the run's --ale-proxy-allow list"


class ForwardProxy:
    """One trial's proxy on ``socket_path``, keeping its log in ``entries`` (``trial.py``
    writes it, as every artifact of the trial); ``start`` / ``stop``."""

    def __init__(self, socket_path: Path, rules: Rules) -> None:
        self.socket_path = socket_path
        self.rules = rules
        #: the trial's phase, written on each line (``agent``, then ``grade``)
        self.phase = "agent"
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- life ----------------------------------------------------------------------------
    def start(self) -> ForwardProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_unix_server(self._serve, path=str(self.socket_path))
                )
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            os.chmod(self.socket_path, 0o666)  # the agent's own uid connects to it too
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._drain())
            loop.close()

        self._thread = threading.Thread(target=run, name="ale-netproxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = None
        with contextlib.suppress(OSError):
            self.socket_path.unlink()

    async def _drain(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the log -------------------------------------------------------------------------
    def refused(self, phase: str | None = None) -> list[dict[str, Any]]:
        """The refused connections (of ``phase`` only, when given)."""
        with self._lock:
            return [e for e in self.entries if not e["allowed"] and phase in (None, e["phase"])]

    def _log(self, **entry: Any) -> None:
        line = {"t": round(time.time(), 3), "phase": self.phase, **entry}
        with self._lock:
            self.entries.append(line)

    # -- one connection --------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rpartition(" ")[0] or rest
        parsed = _target(method, target)
        if parsed is None:
            self._log(method=method, host=None, port=None, allowed=False, reason=f"bad request {lines[0]!r}")
            await _answer(writer, 400, "pytest-ale proxy: only CONNECT and absolute http:// requests\n")
            return
        host, port, path = parsed
        allowed, reason = self.rules.decide(host, port)
        if not allowed:
            self._log(method=method, host=host, port=port, allowed=False, reason=reason)
            await _answer(writer, 403, f"pytest-ale proxy: {host} refused: {reason}\n")
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
            )
        except (TimeoutError, OSError) as exc:
            self._log(method=method, host=host, port=port, allowed=True, reason=f"unreachable: {exc}")
            await _answer(writer, 502, f"pytest-ale proxy: cannot reach {host}:{port}: {exc}\n")
            return
        self._log(method=method, host=host, port=port, allowed=True, reason=reason)
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_writer.write(_origin_request(method, path, lines[1:]))
        await writer.drain()
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                up_writer.close()


def _target(method: str, target: str) -> tuple[str, int, str] | None:
    """(host, port, origin-form path) of a request line's target, or ``None``."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        return (host, int(port), "") if host and port.isdigit() else None
    if not target.lower().startswith("http://"):
        return None
    authority, slash, path = target[7:].partition("/")
    host, colon, port = authority.rpartition(":")
    if not colon or not port.isdigit():
        host, port = authority, "80"
    host = host.strip("[]")
    return (host, int(port), slash + path or "/") if host else None


def _origin_request(method: str, path: str, headers: Iterable[str]) -> bytes:
    kept = [h for h in headers if h and not h.lower().startswith(("proxy-", "connection:", "keep-alive:"))]
    return "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "Connection: close", "", ""]).encode("latin-1")


async def _answer(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = text.encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if dst.can_write_eof():
                dst.write_eof()
