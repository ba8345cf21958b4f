"""Redis faults against a real server: stopped, paused, restarted empty (scripts gone),
full (maxmemory), and the fail-open mode. For each: what the caller gets, and that no
request waits past its deadline (BROKER_REDIS_TIMEOUT_MS=100 here).

The app runs on a ManualClock, which drives the circuit breaker: advancing it past the
breaker's reset lets the next request try Redis again without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from service.auth.tokens import sign_dev_token
from service.clock import ManualClock
from service.config.settings import load_settings
from service.dev import create_dev_app
from tests.redis_servers import RedisServer, start_server
from tests.security.conftest import MINT, MINT_BODY, bearer

pytestmark = pytest.mark.redis

SECRET = "redis-faults-secret-0123456789-abcdefgh"
TIMEOUT_MS = 100
# A request may spend one Redis deadline, the fake upstream, and test-client overhead:
# under a second on a loaded machine. A request that waited on Redis instead would take
# the whole fault (the pause below: 3 s, all of which the test waits out).
MAX_SECONDS = 1.0
PAUSE_MS = 3000
BREAKER_RESET = 2.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_server(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())


async def _client(
    server: RedisServer, clock: ManualClock, mode: str = "closed"
) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        {
            "BROKER_UPSTREAM": "fake",
            "BROKER_JWT_SECRET": SECRET,
            "BROKER_REDIS_URL": server.url,
            "BROKER_REDIS_TIMEOUT_MS": str(TIMEOUT_MS),
            "BROKER_RATE_LIMIT_FAILURE_MODE": mode,
        }
    )
    app = create_dev_app(settings, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c,
    ):
        yield c


@pytest.fixture
async def client(server: RedisServer, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(server, clock):
        yield c


@pytest.fixture
async def open_client(server: RedisServer, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(server, clock, mode="open"):
        yield c


async def _mint(
    client: httpx.AsyncClient, clock: ManualClock, sub: str = "alice"
) -> tuple[httpx.Response, float]:
    token = sign_dev_token(SECRET, sub=sub, role="reader", now=clock.now)
    started = time.monotonic()
    response = await client.post(MINT, json=MINT_BODY, headers=bearer(token))
    return response, time.monotonic() - started


def _unavailable(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.json()["error"]["code"] == "rate_limiter_unavailable"
    )


async def test_stopped_redis_gives_fast_503_then_recovers(
    client: httpx.AsyncClient, server: RedisServer, clock: ManualClock
) -> None:
    before, _ = await _mint(client, clock)
    server.stop()
    during = [await _mint(client, clock) for _ in range(6)]
    ready = await client.get("/readyz")
    server.start()
    clock.advance(BREAKER_RESET + 0.1)
    after, _ = await _mint(client, clock)

    assert before.status_code == 200
    assert all(_unavailable(r) for r, _ in during), [r.text for r, _ in during]
    assert max(elapsed for _, elapsed in during) < MAX_SECONDS
    assert ready.status_code == 503
    assert after.status_code == 200, after.text


async def test_paused_redis_gives_503_within_deadline(
    client: httpx.AsyncClient, server: RedisServer, clock: ManualClock
) -> None:
    await _mint(client, clock)
    with server.client() as admin:
        admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
        try:
            response, elapsed = await _mint(client, clock, sub="bob")
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
    clock.advance(BREAKER_RESET + 0.1)
    after, _ = await _mint(client, clock, sub="bob")

    assert _unavailable(response), response.text
    assert elapsed < MAX_SECONDS
    assert after.status_code == 200, after.text


async def test_scripts_flushed_are_reloaded_transparently(
    client: httpx.AsyncClient, server: RedisServer, clock: ManualClock
) -> None:
    first, _ = await _mint(client, clock)
    with server.client() as admin:
        admin.execute_command("SCRIPT", "FLUSH")
    second, _ = await _mint(client, clock)

    assert first.status_code == 200
    assert second.status_code == 200, second.text


async def test_restarted_empty_redis_serves_again(
    client: httpx.AsyncClient, server: RedisServer, clock: ManualClock
) -> None:
    first, _ = await _mint(client, clock)
    server.stop()
    server.start()  # same port, empty: no keys, no scripts
    results = []
    for _ in range(3):
        clock.advance(BREAKER_RESET + 0.1)
        results.append(await _mint(client, clock))

    assert first.status_code == 200
    # At most the first request may meet a dead pooled connection; then it works.
    assert results[-1][0].status_code == 200, results[-1][0].text
    assert [r.status_code for r, _ in results].count(200) >= 2
    assert all(r.status_code in (200, 503) for r, _ in results)
    assert max(elapsed for _, elapsed in results) < MAX_SECONDS


async def test_full_redis_gives_503_not_500(
    client: httpx.AsyncClient, server: RedisServer, clock: ManualClock
) -> None:
    await _mint(client, clock)
    with server.client() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        try:
            response, elapsed = await _mint(client, clock, sub="newcomer")
        finally:
            admin.config_set("maxmemory", 0)
    clock.advance(BREAKER_RESET + 0.1)
    after, _ = await _mint(client, clock, sub="newcomer")

    assert _unavailable(response), response.text
    assert elapsed < MAX_SECONDS
    assert after.status_code == 200, after.text


async def test_fail_open_mode_mints_with_a_local_limiter(
    open_client: httpx.AsyncClient, server: RedisServer, clock: ManualClock
) -> None:
    server.stop()
    statuses = [(await _mint(open_client, clock))[0].status_code for _ in range(11)]

    # The built-in policy's 10/minute, now enforced per replica in memory.
    assert statuses == [200] * 10 + [429]
