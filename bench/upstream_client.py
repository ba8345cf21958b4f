"""Measure upstream mints per second through each candidate HTTP client.

Starts the fake upstream (`service.fake.app:create_fake_app`) under uvicorn on
127.0.0.1 in a subprocess, then drives GA mints through:

- httpx's default transport (httpcore pool),
- httpx over `httpx_aiohttp.AiohttpTransport`,
- raw aiohttp,
- the broker's own `OpenAIUpstream` with its default transport.

Each client runs the same bounded number of requests at the same concurrency, in several
interleaved rounds; the table shows the median. "client CPU" is the benchmark process's
CPU time per mint: with the fake on the other core, it is the figure that says how many
mints one broker core could drive ("mints/CPU-s"). Wall-clock mints/s is capped by the
single-process fake and is shown for context.

    /work/venv/bin/python bench/upstream_client.py --requests 4000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from service.redact import Secret
from service.upstream.openai import OpenAIUpstream

PATH = "/v1/realtime/client_secrets"
BODY = b'{"session":{"type":"realtime","model":"gpt-realtime-mini"}}'
HEADERS = {"Authorization": "Bearer sk-bench"}
Mint = Callable[[], Awaitable[None]]


@dataclass
class Result:
    wall_rate: float
    cpu_rate: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def fake_upstream(port: int) -> Iterator[str]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "service.fake.app:create_fake_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    # The command is built from constants above; no shell, no outside input.
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):  # up to 10 s for the server to listen
            try:
                httpx.get(f"{base}/v1/vector_stores", headers=HEADERS, timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise RuntimeError("the fake upstream did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


async def drive(mint: Mint, requests: int, concurrency: int) -> Result:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await mint()

    for _ in range(concurrency):  # warm the pool up before timing
        await mint()
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Result(wall_rate=requests / wall, cpu_rate=requests / cpu)


async def run_httpx(base: str, transport: httpx.AsyncBaseTransport | None, args: Args) -> Result:
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, transport=transport, limits=limits) as client:

        async def mint() -> None:
            response = await client.post(PATH, json=BODY, headers=HEADERS)
            response.raise_for_status()
            response.json()

        return await drive(mint, args.requests, args.concurrency)


async def run_httpx_default(base: str, args: Args) -> Result:
    return await run_httpx(base, None, args)


async def run_httpx_aiohttp(base: str, args: Args) -> Result:
    limits = httpx.Limits(max_connections=args.concurrency)
    return await run_httpx(base, AiohttpTransport(limits=limits), args)


async def run_aiohttp(base: str, args: Args) -> Result:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(base, connector=connector) as session:

        async def mint() -> None:
            async with session.post(PATH, json=BODY, headers=HEADERS) as response:
                response.raise_for_status()
                await response.json()

        return await drive(mint, args.requests, args.concurrency)


async def run_broker_client(base: str, args: Args) -> Result:
    upstream = OpenAIUpstream(base_url=f"{base}/v1", api_key=Secret("sk-bench"))
    try:

        async def mint() -> None:
            await upstream.create_secret("/realtime/client_secrets", BODY, safety_identifier="b")

        return await drive(mint, args.requests, args.concurrency)
    finally:
        await upstream.aclose()


CANDIDATES: dict[str, Callable[[str, Args], Coroutine[Any, Any, Result]]] = {
    "httpx default transport": run_httpx_default,
    "httpx + AiohttpTransport": run_httpx_aiohttp,
    "aiohttp": run_aiohttp,
    "OpenAIUpstream (default)": run_broker_client,
}


@dataclass
class Args:
    requests: int
    concurrency: int
    rounds: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="mints per client per round")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    namespace = parser.parse_args()
    args = Args(namespace.requests, namespace.concurrency, namespace.rounds)
    results: dict[str, list[Result]] = {name: [] for name in CANDIDATES}
    with fake_upstream(free_port()) as base:
        for _ in range(args.rounds):
            for name, run in CANDIDATES.items():
                results[name].append(asyncio.run(run(base, args)))
    print(f"{args.requests} mints x {args.rounds} rounds, concurrency {args.concurrency}")
    print(f"{'client':<28} {'mints/s (wall)':>15} {'mints/CPU-s':>12}")
    for name, rows in results.items():
        wall = statistics.median(r.wall_rate for r in rows)
        cpu = statistics.median(r.cpu_rate for r in rows)
        print(f"{name:<28} {wall:>15.0f} {cpu:>12.0f}")


if __name__ == "__main__":
    main()
