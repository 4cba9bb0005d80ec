"""A loopback stand-in for a model provider's API, for tests and benchmarks.

It serves every wire format from a scripted model (tasks found by their ``match`` text,
since a real API knows nothing of trials), insists on the expected real key, can answer
the first N requests with 429 + ``retry-after`` (to exercise retries), fail or hang for
good after N answers (to exercise giving up), report prompt-cache use in each vendor's
own way (``cache_read`` / ``cache_write``), and counts what it saw and what it billed.
With ``judge_task`` it answers a grader's judge from the script's ``judge`` rules. With
``fixed=True`` it answers every request with the same small reply, which is what the
gateway benchmark measures against.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .scripted import Script, ScriptedModel
from .wire import Reply, Usage, error_body, estimate_tokens
from .wire_lookup import detect


@dataclass
class FakeUpstream:
    script: Script = field(default_factory=Script)
    key: str | None = None
    #: answer this many requests with ``fail_status`` before serving
    fail_first: int = 0
    fail_status: int = 429
    retry_after: float = 0.1
    fixed: bool = False
    #: answer the requests that offer no tools as this task's judge (the script's ``judge``)
    judge_task: str | None = None
    #: after this many answers, answer every request with ``fail_status`` for good
    fail_after: int | None = None
    #: after this many answers, never answer again (the connection stays open)
    hang_after: int | None = None
    #: after this many answers, send an answer's headers and first event, then nothing
    stall_after: int | None = None
    #: prompt tokens each answer reports as read from / written to the prompt cache
    cache_read: int = 0
    cache_write: int = 0
    #: what the answers billed, in the gateway's meaning (``Usage``): prompt tokens
    #: with cached ones included, and the cached parts
    billed: Usage = field(default_factory=Usage)
    requests: int = 0
    rejected_keys: list[str] = field(default_factory=list)
    #: the credential each request carried ('' when none)
    keys_seen: list[str] = field(default_factory=list)
    failures_sent: int = 0
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _closing: asyncio.Event | None = None

    def start(self) -> FakeUpstream:
        ready: Future[str] = Future()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._serve, args=(ready,), daemon=True, name="ale-fake-upstream").start()
        self.url = ready.result(timeout=30)
        return self

    def _serve(self, ready: Future[str]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        ready.set_result(self._loop.run_until_complete(self._startup()))
        self._loop.run_forever()

    async def _startup(self) -> str:
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._closing is not None:
            loop.call_soon_threadsafe(self._closing.set)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)

    def _key_of(self, request: web.Request) -> str:
        auth = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return request.headers.get("x-api-key") or request.headers.get("x-goog-api-key") or auth

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fmt = detect(request.path)
        if fmt is None:
            return web.json_response(error_body(404, "not_found_error", request.path), status=404)
        given = self._key_of(request)
        self.keys_seen.append(given)
        if self.key is not None and given != self.key:
            self.rejected_keys.append(given)
            return web.json_response(error_body(401, "authentication_error", "invalid x-api-key"), status=401)
        if self.hang_after is not None and self.requests >= self.hang_after:
            self.failures_sent += 1
            assert self._closing is not None
            await self._closing.wait()  # until stop(): a hung upstream
        if self.failures_sent < self.fail_first or (
            self.fail_after is not None and self.requests >= self.fail_after
        ):
            self.failures_sent += 1
            limited = self.fail_status == 429
            body = error_body(
                self.fail_status,
                "rate_limit_error" if limited else "api_error",
                "slow down" if limited else f"fake upstream failing with HTTP {self.fail_status}",
            )
            return web.json_response(
                body, status=self.fail_status, headers={"retry-after": str(self.retry_after)}
            )
        self.requests += 1
        raw = await request.read()
        body: dict[str, Any] = json.loads(raw or b"{}")
        stream = fmt.is_stream(request.path, request.query_string, body)
        model = fmt.model(request.path, body)
        if self.fixed:
            reply = Reply(text="pong")
            usage = Usage(input_tokens=10, output_tokens=1)
        else:
            judged = self.judge_task is not None and not fmt.tools(body)
            role, task = ("judge", self.judge_task) if judged else ("agent", None)
            reply = ScriptedModel(self.script, "fake upstream").answer(fmt, body, task, role)
            usage = Usage(
                input_tokens=estimate_tokens(json.dumps(fmt.conversation(body))),
                output_tokens=estimate_tokens(reply.text + json.dumps([c.arguments for c in reply.calls])),
            )
        # cache writes are Anthropic's alone: elsewhere those tokens are plain prompt tokens
        write = self.cache_write if fmt.provider == "anthropic" else 0
        usage.input_tokens += self.cache_read + self.cache_write
        usage.cache_read_tokens, usage.cache_write_tokens = self.cache_read, write
        self.billed.add(usage)
        content_type, data = fmt.render(reply, model, usage, stream)
        if self.stall_after is not None and self.requests > self.stall_after:
            out = web.StreamResponse(headers={"content-type": content_type})
            await out.prepare(request)
            await out.write(data.split(b"\n\n", 1)[0] + b"\n\n")
            assert self._closing is not None
            await self._closing.wait()  # silent mid-answer until stop()
            return out
        return web.Response(body=data, content_type=content_type)
