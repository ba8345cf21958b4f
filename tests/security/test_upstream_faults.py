"""Upstream faults: what the browser gets, how many upstream calls were made, and that a
request which delivered no secret is not charged to the user's limits.

The app runs on a ManualClock (so buckets do not refill during the test) against an
`httpx.MockTransport` that plays the failing upstream, then the in-process fake.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from service.auth.tokens import sign_dev_token
from service.clock import ManualClock
from service.config.settings import load_settings
from service.dev import create_dev_app
from service.fake.app import create_fake_app
from tests.security.conftest import MINT, MINT_BODY, UPSTREAM_KEY, bearer

SECRET = "upstream-faults-secret-0123456789-abcdef"
PER_MINUTE = 10  # the built-in default policy's user limit
DEADLINE_MS = 300

Responder = Callable[[httpx.Request], Awaitable[httpx.Response]]


async def _slow_body() -> AsyncIterator[bytes]:
    yield b'{"value": "ek_'
    await asyncio.sleep(5)
    yield b'abc"}'


def _status(status: int, body: object = None, **headers: str) -> Responder:
    async def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body or {"error": {"message": "x"}}, headers=headers)

    return respond


def _raise(exc: Exception) -> Responder:
    async def respond(request: httpx.Request) -> httpx.Response:
        raise exc

    return respond


async def _hang(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(5)
    return httpx.Response(200, json={})


async def _slow(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=_slow_body(), headers={"content-type": "application/json"})


async def _malformed(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"<html>ek_not-json", headers={"content-type": "text/html"})


@dataclass(frozen=True)
class Case:
    responder: Responder
    status: int
    code: str
    calls: int
    retry_after: str | None = None


QUOTA = {"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}
CASES: dict[str, Case] = {
    "500": Case(_status(500), 502, "upstream_error", 1),
    "502": Case(_status(502), 502, "upstream_error", 2),
    "503": Case(_status(503), 503, "upstream_unavailable", 2),
    "504": Case(_status(504), 502, "upstream_error", 2),
    "429-retry-after": Case(
        _status(429, None, **{"Retry-After": "7"}), 503, "upstream_unavailable", 1, "7"
    ),
    "429-no-retry-after": Case(_status(429), 503, "upstream_unavailable", 1),
    "429-insufficient-quota": Case(_status(429, QUOTA), 502, "upstream_error", 1),
    "401-bad-server-key": Case(_status(401), 502, "upstream_error", 1),
    "timeout": Case(_hang, 504, "upstream_timeout", 1),
    "connection-reset": Case(
        _raise(httpx.ReadError("reset by peer")), 503, "upstream_unavailable", 2
    ),
    "connection-refused": Case(
        _raise(httpx.ConnectError("refused")), 503, "upstream_unavailable", 2
    ),
    "200-malformed": Case(_malformed, 502, "upstream_error", 1),
    "200-wrong-shape": Case(_status(200, {"unexpected": True}), 502, "upstream_error", 1),
    "slow-body": Case(_slow, 504, "upstream_timeout", 1),
}


class Upstream:
    """The mock upstream: `responder` while failing, then the fake."""

    def __init__(self, clock: ManualClock) -> None:
        self.fake = httpx.ASGITransport(app=create_fake_app(clock=clock))
        self.responder: Responder | None = None
        self.calls = 0
        self.keys_seen: set[str] = set()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.keys_seen.add(request.headers.get("authorization", ""))
        if self.responder is not None:
            return await self.responder(request)
        return await self.fake.handle_async_request(request)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())


@pytest.fixture
def upstream(clock: ManualClock) -> Upstream:
    return Upstream(clock)


@pytest.fixture
async def client(clock: ManualClock, upstream: Upstream) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        {
            "BROKER_JWT_SECRET": SECRET,
            "BROKER_UPSTREAM_API_KEY": UPSTREAM_KEY,
            "BROKER_UPSTREAM_TIMEOUT_MS": str(DEADLINE_MS),
        }
    )
    app = create_dev_app(settings, transport=httpx.MockTransport(upstream), clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c,
    ):
        yield c


def _token(clock: ManualClock, sub: str = "alice") -> dict[str, str]:
    return bearer(sign_dev_token(SECRET, sub=sub, role="reader", now=clock.now))


@pytest.mark.parametrize("name", sorted(CASES))
async def test_upstream_fault(
    name: str, client: httpx.AsyncClient, upstream: Upstream, clock: ManualClock
) -> None:
    case = CASES[name]
    upstream.responder = case.responder

    started = time.monotonic()
    response = await client.post(MINT, json=MINT_BODY, headers=_token(clock))
    elapsed = time.monotonic() - started
    failed_calls = upstream.calls

    assert response.status_code == case.status, response.text
    assert response.json()["error"]["code"] == case.code
    assert failed_calls == case.calls
    assert response.headers.get("retry-after") == case.retry_after
    # Nothing waits past the 0.3 s deadline: the hanging cases would take 5 s without it.
    assert elapsed < DEADLINE_MS / 1000 + 1.5
    assert "ek_" not in response.text
    assert UPSTREAM_KEY not in response.text
    assert upstream.keys_seen == {f"Bearer {UPSTREAM_KEY}"}

    # Nothing delivered, nothing charged: the user's whole burst is still there.
    upstream.responder = None
    after = [
        (await client.post(MINT, json=MINT_BODY, headers=_token(clock))).status_code
        for _ in range(PER_MINUTE + 1)
    ]
    assert after == [200] * PER_MINUTE + [429]


async def test_control_success_is_charged(client: httpx.AsyncClient, clock: ManualClock) -> None:
    ok = await client.post(MINT, json=MINT_BODY, headers=_token(clock))
    rest = [
        (await client.post(MINT, json=MINT_BODY, headers=_token(clock))).status_code
        for _ in range(PER_MINUTE)
    ]

    assert ok.status_code == 200
    assert ok.json()["value"].startswith("ek_")
    assert ok.headers["cache-control"] == "no-store"
    assert rest == [200] * (PER_MINUTE - 1) + [429]
