"""Forwarding to the real model API: key swap, header hygiene, and rate-limit retries.

A 429 or 5xx (or a refused connection) is retried with exponential backoff that honours
``retry-after`` / ``retry-after-ms``; each wait is reported to the caller so the trial
records it. Nothing is sent to the harness until a final answer is in, so a retried
rate limit never reaches the agent.
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
) -> aiohttp.ClientResponse:
    """The first non-retryable upstream response (its body unread), after retries.

    Raises ``aiohttp.ClientError`` when the upstream stays unreachable.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            response = await session.request(method, url, headers=headers, data=body, allow_redirects=False)
        except (TimeoutError, aiohttp.ClientConnectionError):
            if attempt > policy.retries:
                raise
            delay = retry_delay({}, attempt, policy)
            await _notify(on_retry, None, delay)
            await asyncio.sleep(delay)
            continue
        if response.status not in RETRY_STATUS or attempt > policy.retries:
            return response
        delay = retry_delay(response.headers, attempt, policy)
        await response.read()
        response.release()
        await _notify(on_retry, response.status, delay)
        await asyncio.sleep(delay)


async def _notify(
    callback: Callable[[int | None, float], Awaitable[None] | None], status: int | None, delay: float
) -> None:
    result = callback(status, delay)
    if result is not None:
        await result
