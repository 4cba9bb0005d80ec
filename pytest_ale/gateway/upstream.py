"""Forwarding to the real model API: key swap, header hygiene, and rate-limit retries.

A 429 or 5xx (or a refused connection, or an upstream that stays silent) is retried with
exponential backoff that honours ``retry-after`` / ``retry-after-ms``; each wait is
reported to the caller so the trial records it. Nothing is sent to the harness until a
final answer is in, so a retried rate limit never reaches the agent. Retries stop at a
deadline (the trial's give-up bound, see ``RetryPolicy``): a failing upstream costs a
bounded time, shorter than the agent's timeout.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping

import aiohttp
from multidict import CIMultiDict

from .config import DEFAULT_UPSTREAMS, RetryPolicy

__all__ = ["DEFAULT_UPSTREAMS", "RetryPolicy", "retry_delay", "send", "upstream_headers"]

#: never forwarded upstream: the trial token and transport-level headers
DROP_REQUEST = {
    "host",
    "content-length",
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "accept-encoding",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-authorization",
}
DROP_RESPONSE = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
RETRY_STATUS = {408, 429, 500, 502, 503, 504, 529}


def auth_headers(provider: str, key: str) -> dict[str, str]:
    if provider == "anthropic":
        return {"x-api-key": key}
    if provider == "gemini":
        return {"x-goog-api-key": key}
    return {"authorization": f"Bearer {key}"}


def upstream_headers(incoming: Mapping[str, str], provider: str, key: str | None) -> CIMultiDict[str]:
    """The headers sent upstream: the harness's own, less the trial token and transport
    headers, plus the real key (none for a key-less server of the user's own)."""
    headers = CIMultiDict((k, v) for k, v in incoming.items() if k.lower() not in DROP_REQUEST)
    if key:
        headers.update(auth_headers(provider, key))
    return headers


def retry_delay(headers: Mapping[str, str], attempt: int, policy: RetryPolicy) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): the server's word, else backoff."""
    wait: float | None = None
    if headers.get("retry-after-ms"):
        try:
            wait = float(headers["retry-after-ms"]) / 1000
        except ValueError:
            wait = None
    if wait is None and headers.get("retry-after"):
        value = headers["retry-after"]
        try:
            wait = float(value)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            wait = parsed.timestamp() - time.time() if parsed else None
    if wait is None:
        wait = policy.base_s * 2 ** (attempt - 1) * (0.75 + random.random() / 2)
    return max(0.0, min(wait, policy.max_wait_s))


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: CIMultiDict[str],
    body: bytes,
    policy: RetryPolicy,
    on_retry: Callable[[int | None, float], Awaitable[None] | None],
    *,
    deadline: float | None = None,
    read_timeout_s: float | None = None,
) -> aiohttp.ClientResponse:
    """The first non-retryable upstream response (its body unread), after retries; the
    last retryable one when retries run out or the next wait would pass ``deadline``
    (``time.monotonic()``). Each try waits for the answer's headers at most
    ``read_timeout_s`` (and never past the deadline); the body may then stay silent
    ``read_timeout_s`` between chunks.

    Raises ``TimeoutError`` (no answer in time) or ``aiohttp.ClientError`` (unreachable)
    when the last try gets no answer.
    """
    read = read_timeout_s if read_timeout_s is not None else policy.read_timeout_s
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(30.0, read), sock_read=read)
    attempt = 0
    while True:
        attempt += 1
        wait = read if deadline is None else max(0.05, min(read, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(wait):
                response = await session.request(
                    method, url, headers=headers, data=body, allow_redirects=False, timeout=timeout
                )
        except (TimeoutError, aiohttp.ClientConnectionError):
            delay = retry_delay({}, attempt, policy)
            if attempt > policy.retries or _past(deadline, delay):
                raise
            await _notify(on_retry, None, delay)
            await asyncio.sleep(delay)
            continue
        if response.status not in RETRY_STATUS or attempt > policy.retries:
            return response
        delay = retry_delay(response.headers, attempt, policy)
        if _past(deadline, delay):
            return response
        await response.read()
        response.release()
        await _notify(on_retry, response.status, delay)
        await asyncio.sleep(delay)


def _past(deadline: float | None, delay: float) -> bool:
    """Whether waiting ``delay`` more seconds leaves no time for another try."""
    return deadline is not None and time.monotonic() + delay >= deadline


async def _notify(
    callback: Callable[[int | None, float], Awaitable[None] | None], status: int | None, delay: float
) -> None:
    result = callback(status, delay)
    if result is not None:
        await result
