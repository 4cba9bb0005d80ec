"""Model-gateway overhead: a call through the gateway vs the same call straight to the
same loopback upstream (a fake Anthropic Messages API answering a fixed small reply).

Measures, on this machine:
- latency per call, one at a time over keep-alive connections: direct, through the
  gateway's loopback TCP listener, and through the in-sandbox relay (TCP -> the gateway's
  Unix socket), which is the path a harness in a sandbox really takes;
- sustained throughput through the gateway with concurrent clients.

Run: ``python bench/bench_gateway.py [--calls 2000] [--seconds 5] [--concurrency 32]
[--write]``; ``--write`` puts the figures in bench/RESULTS.md ("Model gateway" section).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from pytest_ale.gateway.config import GatewayConfig
from pytest_ale.gateway.fake_upstream import FakeUpstream
from pytest_ale.gateway.keys import Keys
from pytest_ale.gateway.launcher import start_relay
from pytest_ale.gateway.server import Gateway

KEY = "sk-bench-real-key-0000000000"
BODY = json.dumps(
    {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "ping"}]}
).encode()
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Model gateway"


def latencies(base: str, token: str, calls: int) -> list[float]:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"x-api-key": token, "content-type": "application/json", "anthropic-version": "2023-06-01"}
    out = []
    for i in range(calls + 50):
        started = time.perf_counter()
        conn.request("POST", "/v1/messages", body=BODY, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{base}: HTTP {response.status}")
        if i >= 50:  # warm-up
            out.append(time.perf_counter() - started)
    conn.close()
    return out


async def throughput(base: str, token: str, seconds: float, concurrency: int) -> float:
    headers = {"x-api-key": token, "content-type": "application/json"}
    done = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.post(f"{base}/v1/messages", data=BODY, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"HTTP {response.status}")
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def ms(values: list[float], q: float | None = None) -> float:
    if q is None:
        return statistics.median(values) * 1000
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--write", action="store_true", help="write the figures into bench/RESULTS.md")
    args = parser.parse_args()

    upstream = FakeUpstream(key=KEY, fixed=True).start()
    gateway = Gateway(
        GatewayConfig(tcp=True, upstreams={"anthropic": upstream.url}),
        keys=Keys({"anthropic": KEY}, {"ANTHROPIC_API_KEY": KEY}),
    ).start()
    trial = gateway.open_trial("bench::gateway")
    relay = start_relay(gateway.socket_path)
    try:
        assert gateway.tcp_url is not None
        direct = latencies(upstream.url, KEY, args.calls)
        via_gateway = latencies(gateway.tcp_url, trial.token, args.calls)
        via_relay = latencies(relay, trial.token, args.calls)
        rate_direct = asyncio.run(throughput(upstream.url, KEY, args.seconds, args.concurrency))
        rate_gateway = asyncio.run(throughput(gateway.tcp_url, trial.token, args.seconds, args.concurrency))
    finally:
        gateway.close_trial(trial)
        gateway.stop()
        upstream.stop()
    assert trial.meter.usage.requests >= 2 * args.calls, "the gateway metered every call"

    rows = [
        ("direct to the loopback upstream", direct),
        ("through the gateway (loopback TCP)", via_gateway),
        ("through relay + gateway Unix socket (in-sandbox path)", via_relay),
    ]
    lines = [
        SECTION,
        "",
        f"`python bench/bench_gateway.py` on {platform.node() or 'this machine'} "
        f"({platform.machine()}, Python {platform.python_version()}), {time.strftime('%Y-%m-%d')}: "
        f"{args.calls} sequential keep-alive calls per path (after 50 warm-up calls), then "
        f"{args.concurrency} concurrent clients for {args.seconds:g} s. The upstream is a loopback fake "
        "Anthropic Messages API; every gateway call is authenticated by trial token, key-swapped, "
        "forwarded, metered and priced. Upstream, gateway and clients share one Python process (one "
        f"GIL) on {os.cpu_count()} CPU(s) shared with other work, so the figures are conservative.",
        "",
        "| path | median ms | p95 ms | added vs direct (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, values in rows:
        added = ms(values) - ms(direct)
        lines.append(f"| {name} | {ms(values):.3f} | {ms(values, 95):.3f} | {added:+.3f} ms |")
    lines += [
        "",
        "| sustained throughput | requests/s |",
        "| --- | ---: |",
        f"| direct to the upstream | {rate_direct:,.0f} |",
        f"| through the gateway | {rate_gateway:,.0f} |",
        "",
        f"Targets: at most 2 ms added per call (measured {ms(via_gateway) - ms(direct):+.3f} ms via TCP, "
        f"{ms(via_relay) - ms(direct):+.3f} ms via the relay), at least 500 requests/s sustained "
        f"(measured {rate_gateway:,.0f}).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
        if SECTION in existing:
            head, _, rest = existing.partition(SECTION)
            tail = rest[rest.find("\n## ") + 1 :] if "\n## " in rest else ""
            existing = head + text + ("\n" + tail if tail else "")
        else:
            existing = existing.rstrip("\n") + "\n\n" + text
        RESULTS.write_text(existing)


if __name__ == "__main__":
    main()
