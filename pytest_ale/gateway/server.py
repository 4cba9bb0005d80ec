"""The gateway process: an aiohttp server on a host Unix socket (and optionally loopback
TCP), run on its own event loop in a background thread, one per pytest process.

Each request carries a per-trial token (``x-api-key``, ``Authorization: Bearer``,
``x-goog-api-key`` or ``?key=``). The gateway finds the trial, then answers from the
scripted model, from the trial's cassette (replay), or by forwarding upstream with the
real key (optionally recording); it meters every answer and enforces the trial's budget.

A trial's first stop reason (budget, a refused key, an upstream that fails or hangs past
its bound, a replay divergence) halts it: later requests are refused at once, and the
harness is stopped (``stops.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from ..errors import ConfigError, InfrastructureError
from . import upstream
from .cassette import Exchange, Player, Recorder, asked, cassette_name
from .config import DEFAULT_UPSTREAMS, GatewayConfig
from .keys import Keys, Redactor, key_names, load_keys
from .meter import Budget, Meter, PriceTable
from .scripted import ScriptedModel
from .stops import STOP_PATH, Stops
from .trials import GatewayTrial
from .wire import Usage, WireFormat, error_body, estimate_tokens
from .wire_lookup import detect

#: how a halted trial's later requests are refused: (HTTP status, error type)
REFUSALS = {
    "budget_exceeded": (402, "budget_exceeded"),
    "config_error": (401, "authentication_error"),
    "upstream_failure": (503, "api_error"),
    "divergence": (400, "replay_divergence"),
}


class Gateway(Stops):
    def __init__(self, config: GatewayConfig, keys: Keys | None = None) -> None:
        if config.scripted and config.replay:
            raise ConfigError("--ale-scripted-model and --ale-replay cannot be used together; pick one")
        self.config = config
        self.keys = keys if keys is not None else load_keys(config.env_file)
        self.redact = Redactor(self.keys.secrets)
        self.prices = PriceTable.load(*config.prices)
        self.scripted = ScriptedModel.load(config.scripted) if config.scripted else None
        self.trials: dict[str, GatewayTrial] = {}
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="ale-gw-"))
        self._dir.chmod(0o700)
        self.socket_path = str(self._dir / "gateway.sock")
        self.tcp_url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    # -- lifecycle (called from the pytest thread) --------------------------------------
    def start(self) -> Gateway:
        ready: Future[None] = Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="ale-gateway", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=30)
        except Exception as exc:
            raise InfrastructureError(f"the model gateway did not start: {exc}") from exc
        return self

    def _serve(self, ready: Future[None]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._startup())
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        self._loop.run_forever()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get(STOP_PATH, self._watch_stop)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.UnixSite(self._runner, self.socket_path).start()
        Path(self.socket_path).chmod(0o666)
        if self.config.tcp:
            await self._listen_tcp()
        connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
        self._client = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True)

    async def _listen_tcp(self) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.tcp_url = f"http://127.0.0.1:{port}"

    def host_url(self) -> str:
        """The gateway's loopback URL, for clients on the host (a grader's judge), which
        speak plain HTTP to a port: listened on at the first call."""
        with self._lock:
            if self.tcp_url is None:
                assert self._loop is not None, "the gateway is not running"
                asyncio.run_coroutine_threadsafe(self._listen_tcp(), self._loop).result(timeout=30)
            assert self.tcp_url is not None
            return self.tcp_url

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._loop = None

        async def shutdown() -> None:
            self._cancel_stops()
            if self._client is not None:
                await self._client.close()
            if self._runner is not None:
                await self._runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if not (self._thread and self._thread.is_alive()):
            loop.close()  # its selector and self-pipe, never left to the garbage collector
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- trials ---------------------------------------------------------------------------
    def missing_key(self, provider: str) -> str | None:
        """Why a harness speaking ``provider``'s API would get no answer, or ``None``: the
        scripted model and replays need no key, nor does an upstream of the user's own (a
        local model server); the vendor's API does."""
        if not provider or self.scripted is not None or self.config.replay is not None:
            return None
        if self.keys.key(provider) or self.custom_upstream(provider):
            return None
        return (
            f"no {provider} API key on the host: set {key_names(provider)}, give --ale-env-file FILE, or run "
            "without a model (--ale-scripted-model FILE, --ale-replay DIR)"
        )

    def custom_upstream(self, provider: str) -> bool:
        """Whether ``provider``'s traffic goes to a server the user named, not the vendor's."""
        default = DEFAULT_UPSTREAMS.get(provider)
        chosen = self.config.upstreams.get(provider)
        return chosen is not None and chosen.rstrip("/") != (default or "").rstrip("/")

    def open_trial(
        self,
        trial_id: str,
        task: str | None = None,
        on_stop: Any = None,
        timeout_s: float | None = None,
        role: str = "agent",
    ) -> GatewayTrial:
        """Open a trial; ``on_stop`` stops its harness, ``timeout_s`` (the agent's) bounds
        how long a failing upstream may take (``RetryPolicy.give_up``). A ``judge`` (the
        grader's, ``judge.py``) has no budget: the agent's is the agent's alone."""
        budget = self.config.budget if role == "agent" else Budget()
        trial = GatewayTrial(
            trial_id=trial_id, task=task, role=role, meter=Meter(budget=budget), on_stop=on_stop,
            agent_timeout_s=timeout_s,
        )  # fmt: skip
        name = cassette_name(trial_id)
        if self.config.replay:
            trial.player = Player.load(self.config.replay / name, role)
        if self.config.record:
            trial.recorder = Recorder(self.config.record / name, trial_id, role)
        with self._lock:
            self.trials[trial.token] = trial
        return trial

    def close_trial(self, trial: GatewayTrial) -> GatewayTrial:
        with self._lock:
            self.trials.pop(trial.token, None)
        if trial.recorder is not None:
            trial.recorder.save()
        return trial

    # -- requests -------------------------------------------------------------------------
    def _trial_of(self, request: web.Request) -> GatewayTrial | None:
        headers = request.headers
        candidates = [
            headers.get("x-api-key"),
            headers.get("x-goog-api-key"),
            (headers.get("authorization") or "").removeprefix("Bearer ").strip(),
            request.query.get("key"),
        ]
        for token in candidates:
            if token and token in self.trials:
                return self.trials[token]
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fmt = detect(request.path)
        if fmt is None:
            return _error(
                404, "not_found_error", f"the ale gateway serves no {request.method} {request.path}"
            )
        trial = self._trial_of(request)
        if trial is None:
            return _error(401, "authentication_error", "unknown or closed ale trial token")
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return _error(400, "invalid_request_error", "request body is not JSON")
        if trial.halted is not None:  # refused at once: nothing more is sent upstream
            status, kind = REFUSALS[trial.halted]
            trial.log({"refused": trial.halted, "status": status})
            return _error(status, kind, f"ale gateway stopped this trial: {(trial.halt_reason or '')[:4000]}")
        model = fmt.model(request.path, body)
        stream = fmt.is_stream(request.path, request.query_string, body)
        started = time.perf_counter()
        event: dict[str, Any] = {
            "format": fmt.name,
            "model": model,
            "stream": stream,
            "tools": bool(fmt.tools(body)),
        }

        def account(status: int, usage: Usage) -> None:
            """Meter and log one call; runs before the answer's last byte leaves, so a
            harness that exits on its final answer never outruns its own accounting."""
            cost = trial.meter.add(model, usage, self.prices) if status < 400 else 0.0
            event.update(
                status=status,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cost_usd=round(cost, 8),
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            trial.log(event)
            reason = trial.meter.over_budget()
            if reason and not trial.budget_exceeded:
                self._halt(trial, "budget_exceeded", reason)

        if self.scripted is not None:
            event["mode"] = "scripted"
            response, usage = self._scripted(fmt, body, model, stream, trial)
        elif trial.player is not None:
            event["mode"] = "replay"
            response, usage = self._replayed(fmt, body, model, trial)
        else:
            event["mode"] = "upstream"
            return await self._forwarded(request, fmt, raw, body, model, trial, account)
        account(response.status, usage)
        return response

    def _scripted(
        self, fmt: type[WireFormat], body: dict[str, Any], model: str, stream: bool, trial: GatewayTrial
    ) -> tuple[web.StreamResponse, Usage]:
        assert self.scripted is not None
        reply = self.scripted.answer(fmt, body, trial.task, trial.role)
        usage = Usage(
            input_tokens=estimate_tokens(json.dumps(fmt.conversation(body))),
            output_tokens=estimate_tokens(reply.text + json.dumps([c.arguments for c in reply.calls])),
        )
        content_type, data = fmt.render(reply, model, usage, stream)
        if trial.recorder is not None:
            trial.recorder.add(Exchange(asked(fmt, model, body), 200, content_type, data.decode()))
        return web.Response(body=data, content_type=content_type.split(";")[0]), usage

    def _replayed(
        self, fmt: type[WireFormat], body: dict[str, Any], model: str, trial: GatewayTrial
    ) -> tuple[web.StreamResponse, Usage]:
        assert trial.player is not None
        found = trial.player.answer(asked(fmt, model, body))
        if isinstance(found, str):
            self._halt(trial, "divergence", found)
            return _error(400, "replay_divergence", found[:4000]), Usage()
        data = found.body.encode()
        usage = fmt.usage(data, found.content_type.startswith("text/event-stream"))
        response = web.Response(status=found.status, body=data, content_type=found.content_type.split(";")[0])
        return response, usage

    async def _forwarded(
        self,
        request: web.Request,
        fmt: type[WireFormat],
        raw: bytes,
        body: dict[str, Any],
        model: str,
        trial: GatewayTrial,
        account: Callable[[int, Usage], None],
    ) -> web.StreamResponse:
        """Forward to the real upstream; meter (``account``) and record before the last byte."""
        assert self._client is not None
        key = self.keys.key(fmt.provider)
        if not key and not self.custom_upstream(fmt.provider):
            message = (
                f"no {fmt.provider} API key on the host (set {key_names(fmt.provider)} "
                "or give --ale-env-file)"
            )
            self._halt(trial, "config_error", message)
            account(401, Usage())
            return _error(401, "authentication_error", message)
        base = self.config.upstreams[fmt.provider].rstrip("/")
        query = [(k, v) for k, v in request.query.items() if k != "key"]
        url = str(URL(base + request.path).with_query(query))
        headers = upstream.upstream_headers(request.headers, fmt.provider, key)
        policy = self.config.retry
        bound = policy.bound_s(trial.agent_timeout_s)
        silence = policy.read_timeout_for(trial.agent_timeout_s)
        where = self.redact(f"upstream {fmt.provider} ({base})")
        began = time.monotonic()
        tries = 1

        def on_retry(status: int | None, delay: float) -> None:
            nonlocal tries
            tries += 1
            trial.rate_limit_retries += 1
            trial.log({"retry": status or "connection", "wait_s": round(delay, 3), "model": model})

        def gave_up(what: str) -> str:
            took = time.monotonic() - began
            said = policy.gave_up(trial.agent_timeout_s, trial.role)
            return f"{where} {what} ({tries} tries in {took:.1f} s; {said})"

        try:
            answer = await upstream.send(
                self._client, request.method, url, headers, raw, policy, on_retry,
                deadline=began + bound, read_timeout_s=silence,
            )  # fmt: skip
        except TimeoutError:
            message = gave_up(f"sent no answer for {silence:g} s")
            self._halt(trial, "upstream_failure", message)
            account(504, Usage())
            return _error(504, "api_error", message)
        except aiohttp.ClientError as exc:
            message = gave_up(f"was unreachable: {self.redact(str(exc))}")
            self._halt(trial, "upstream_failure", message)
            account(502, Usage())
            return _error(502, "api_error", message)
        if answer.status in (401, 403):  # harnesses retry these for minutes: stop the trial now
            names = key_names(fmt.provider)
            said = f"refused the key in {names}" if key else f"wants a key: set {names} or --ale-env-file"
            self._halt(trial, "config_error", f"{where} answered HTTP {answer.status}; it {said}")
        out = web.StreamResponse(status=answer.status)
        for name, value in answer.headers.items():
            if name.lower() not in upstream.DROP_RESPONSE:
                out.headers.add(name, value)
        await out.prepare(request)
        data = bytearray()
        cut: str | None = None
        try:
            async for chunk in answer.content.iter_any():
                data += chunk
                await out.write(chunk)
        except (TimeoutError, aiohttp.ClientError) as exc:  # silent or gone mid-answer
            said = f"no data for {silence:g} s" if isinstance(exc, TimeoutError) else self.redact(str(exc))
            cut = f"stopped mid-answer (HTTP {answer.status}, {len(data)} bytes in): {said}"
        answer.release()
        content_type = answer.headers.get("content-type", "application/json")
        usage = (
            fmt.usage(bytes(data), content_type.startswith("text/event-stream"))
            if answer.status < 400
            else Usage()
        )
        if cut is not None:
            self._halt(trial, "upstream_failure", gave_up(cut))
        elif answer.status in upstream.RETRY_STATUS:
            said = self.redact(data.decode("utf-8", "replace")).strip()[:300] or "(empty body)"
            self._halt(trial, "upstream_failure", gave_up(f"answered HTTP {answer.status}: {said}"))
        if trial.recorder is not None:
            text = self.redact(data.decode("utf-8", "replace"))
            trial.recorder.add(Exchange(asked(fmt, model, body), answer.status, content_type, text))
        account(answer.status, usage)
        await out.write_eof()
        return out


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response(error_body(status, kind, message), status=status)
