"""The app's lifespan: what `create_app` made is closed at shutdown, last made first, each
even when another's close raises or the startup failed; on Redis, one connection serves
both stores and is closed after them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.calls.store_memory import MemoryCallStore
from service.calls.supervised import CallOptions
from service.stores.memory import MemoryStore
from service.web.app import BrokerApp, create_app
from tests.eventually import eventually
from tests.redis_servers import RedisServer, start_server
from tests.web.conftest import make_settings


class Transport(httpx.MockTransport):
    """An upstream's (or the JWKS client's) transport that notes when it is closed."""

    def __init__(self, name: str, closed: list[str]) -> None:
        super().__init__(lambda request: httpx.Response(503))
        self._name, self._closed = name, closed

    async def aclose(self) -> None:
        self._closed.append(self._name)


class Store(MemoryStore):
    def __init__(self, closed: list[str], *, fail: str = "") -> None:
        super().__init__()
        self._closed, self._fail = closed, fail

    async def tenant_secret(self, tenant: str, name: str, candidate: str) -> str:
        if self._fail == "startup":
            raise RuntimeError("startup failed")
        return await super().tenant_secret(tenant, name, candidate)

    async def close(self) -> None:
        self._closed.append("store")
        if self._fail == "close":
            raise RuntimeError("store close failed")


class CallStore(MemoryCallStore):
    def __init__(self, closed: list[str], *, fail: bool = False) -> None:
        super().__init__()
        self._closed, self._fail = closed, fail

    async def close(self) -> None:
        self._closed.append("call store")
        if self._fail:
            raise RuntimeError("call store close failed")


def app_with(closed: list[str], *, fail: str = "", redis_url: str | None = None) -> BrokerApp:
    settings = make_settings({"BROKER_REDIS_URL": redis_url} if redis_url else None)
    return create_app(
        settings,
        # With Redis, the app makes the rate-limit store on its connection.
        store=None if redis_url else Store(closed, fail=fail),
        transport=Transport("upstream", closed),
        jwks_transport=Transport("jwks", closed),
        call_options=CallOptions(store=CallStore(closed, fail=fail == "call store close")),
    )


async def test_every_resource_is_closed_when_one_close_raises() -> None:
    closed: list[str] = []
    app = app_with(closed, fail="close")

    with pytest.raises(RuntimeError, match="store close failed"):
        async with app.router.lifespan_context(app):
            pass

    # Last made first: the calls (handed over first) need the others still open.
    assert closed == ["upstream", "call store", "store", "jwks"]


async def test_a_startup_that_fails_closes_what_was_made() -> None:
    closed: list[str] = []
    app = app_with(closed, fail="startup")

    with pytest.raises(RuntimeError, match="startup failed"):
        async with app.router.lifespan_context(app):
            pass

    assert closed == ["upstream", "call store", "store", "jwks"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own: its connection counts are this app's only."""
    started = start_server(tmp_path)
    yield started
    started.stop()


def _stat(server: RedisServer, section: str, name: str) -> int:
    with server.client() as c:
        info: Any = c.info(section)  # redis-py 6: `Awaitable | dict`
        return int(info[name])


async def _until_no_clients(server: RedisServer) -> None:
    """Wait (2 s at most) until no client but the asking one is connected: the server
    notices a closed socket on its own time."""
    await eventually(
        lambda: _stat(server, "clients", "connected_clients") <= 1,
        seconds=2,
        what="every client but the asking one gone",
    )


@pytest.mark.redis
async def test_both_stores_share_one_redis_connection(server: RedisServer) -> None:
    closed: list[str] = []
    settings = make_settings({"BROKER_REDIS_URL": server.url})
    app = create_app(settings, transport=Transport("upstream", closed))
    before = _stat(server, "stats", "total_connections_received")

    # One after the other, so that one pooled connection can serve them all.
    reachable = await app.state.broker.store.ping()
    leases = await app.state.calls.store.user_calls("default", "alice")
    again = await app.state.broker.store.ping()
    opened = _stat(server, "stats", "total_connections_received") - before - 1  # -1: asking
    async with app.router.lifespan_context(app):
        pass
    await _until_no_clients(server)

    assert reachable
    assert again
    assert leases == []
    assert opened == 1


@pytest.mark.redis
async def test_the_redis_connection_is_closed_when_a_store_close_raises(
    server: RedisServer,
) -> None:
    closed: list[str] = []
    app = app_with(closed, fail="call store close", redis_url=server.url)

    with pytest.raises(RuntimeError, match="call store close failed"):
        async with app.router.lifespan_context(app):
            assert await app.state.broker.store.ping()
    await _until_no_clients(server)

    assert closed == ["upstream", "call store", "jwks"]
