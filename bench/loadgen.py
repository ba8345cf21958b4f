"""A small HTTP/1.1 keep-alive load generator (asyncio protocols, no HTTP library).

- closed loop: `connections` connections, each sends its next request as soon as the
  previous answer is complete, for `duration` seconds: throughput.
- open loop: send times are scheduled in advance at a fixed `rate`; a request whose
  connection is busy waits in a queue, and its latency counts from its *scheduled* send
  time, so a slow response delays and is charged to the requests behind it instead of
  silently lowering the offered rate (coordinated omission).

Requests are pre-built bytes, rotated round-robin (e.g. one per JWT of a token pool).
Bounded: every run stops at `duration` plus a drain of at most `drain` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)  # seconds
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    timings: list[bytes] = field(default_factory=list)  # Server-Timing values, sampled
    elapsed: float = 0.0
    sent: int = 0
    unanswered: int = 0
    send_lag: list[float] = field(default_factory=list)  # actual - scheduled send, seconds

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += ["Content-Type: application/json", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn(asyncio.Protocol):
    """One keep-alive connection; `on_done(conn, status, headers_blob)` per response."""

    def __init__(self, on_done: object) -> None:
        self.on_done = on_done
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.started = 0.0
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            length = 0
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17 : stop if stop > 0 else None])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            del self.buffer[:total]
            status = int(head[9:12])
            self.on_done(self, status, head)  # type: ignore[operator]


def _server_timing(head: bytes) -> bytes | None:
    at = head.lower().find(b"\r\nserver-timing:")
    if at < 0:
        return None
    stop = head.find(b"\r\n", at + 2)
    return head[at + 16 : stop if stop > 0 else None].strip()


async def _connect(host: str, port: int, count: int, on_done: object) -> list[_Conn]:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(count):
        _, proto = await loop.create_connection(lambda: _Conn(on_done), host, port)
        conns.append(proto)
    return conns


async def closed_loop(
    host: str, port: int, requests: list[bytes], *, connections: int, duration: float
) -> Stats:
    stats = Stats()
    clock = time.perf_counter
    index = 0
    stop_at = 0.0
    # Resolved when the run is over and every request sent has been answered.
    drained = asyncio.get_running_loop().create_future()

    def on_done(conn: _Conn, status: int, head: bytes) -> None:
        nonlocal index
        now = clock()
        stats.latencies.append(now - conn.started)
        stats.statuses[status] += 1
        if now < stop_at:
            conn.started = now
            conn.send(requests[index % len(requests)])
            index += 1
            stats.sent += 1
        elif len(stats.latencies) >= stats.sent and not drained.done():
            drained.set_result(None)

    conns = await _connect(host, port, connections, on_done)
    start = clock()
    stop_at = start + duration
    for conn in conns:
        conn.started = start
        conn.send(requests[index % len(requests)])
        index += 1
        stats.sent += 1
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drained, timeout=duration + 5)
    stats.elapsed = max(clock(), stop_at) - start
    stats.unanswered = stats.sent - len(stats.latencies)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return stats


async def open_loop(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    rate: float,
    duration: float,
    connections: int,
    drain: float = 5.0,
    timing_every: int = 0,
) -> Stats:
    """`rate` requests/s for `duration` s, each latency measured from its scheduled time."""
    stats = Stats()
    clock = time.perf_counter
    loop = asyncio.get_running_loop()
    idle: collections.deque[_Conn] = collections.deque()
    backlog: collections.deque[tuple[float, bytes]] = collections.deque()
    scheduled_of: dict[int, float] = {}
    done = loop.create_future()
    total = int(rate * duration)

    def dispatch(conn: _Conn, scheduled: float, request: bytes) -> None:
        scheduled_of[id(conn)] = scheduled
        stats.send_lag.append(clock() - scheduled)
        conn.send(request)
        stats.sent += 1

    def on_done(conn: _Conn, status: int, head: bytes) -> None:
        now = clock()
        stats.latencies.append(now - scheduled_of.pop(id(conn)))
        stats.statuses[status] += 1
        if timing_every and len(stats.latencies) % timing_every == 0:
            value = _server_timing(head)
            if value is not None:
                stats.timings.append(value)
        if backlog:
            scheduled, request = backlog.popleft()
            dispatch(conn, scheduled, request)
        else:
            idle.append(conn)
        if len(stats.latencies) >= total and not done.done():
            done.set_result(None)

    conns = await _connect(host, port, connections, on_done)
    idle.extend(conns)
    start = clock() + 0.05
    interval = 1.0 / rate
    # Send in small batches: everything due is sent at each wake-up, charged from its own
    # scheduled time, so the sleep granularity shows up as latency, never as a lower rate.
    i = 0
    while i < total:
        now = clock()
        while i < total and start + i * interval <= now:
            scheduled = start + i * interval
            request = requests[i % len(requests)]
            if idle:
                dispatch(idle.popleft(), scheduled, request)
            else:
                backlog.append((scheduled, request))
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, start + i * interval - clock()))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(done), timeout=drain)
    stats.elapsed = clock() - start
    stats.unanswered = total - len(stats.latencies)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return stats
