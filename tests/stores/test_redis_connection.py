"""stores.redis_client.RedisConnection: one connection shared by the rate-limit store and
the call store (one pool, one bound, one cluster initialize, one close), and its
subscriptions, which no message can end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.calls.store_redis import RedisCallStore
from service.limits import parse_limits
from service.stores.base import AdmitRequest
from service.stores.redis import RedisStore
from service.stores.redis_client import RedisConnection
from tests.eventually import eventually
from tests.redis_servers import RedisClusterServers, RedisServer, command_calls

pytestmark = pytest.mark.redis


def request_for(user: str) -> AdmitRequest:
    return AdmitRequest(
        tenant="acme",
        user_id=user,
        claimed_role="reader",
        user_limits={"reader": parse_limits(["5/minute"])},
    )


def connections_received(server: RedisServer) -> int:
    with server.client() as c:
        stats: Any = c.info("stats")  # redis-py 6: `Awaitable | dict`
        return int(stats["total_connections_received"])


def clients_connected(server: RedisServer) -> int:
    """Connected clients, not counting the one asking."""
    with server.client() as c:
        info: Any = c.info("clients")
        return int(info["connected_clients"]) - 1


async def until(check: Any) -> None:
    # The server drops a closed client on its own time.
    await eventually(check, seconds=2, what="the server dropping closed clients")


async def test_both_stores_use_one_pool(own_server: RedisServer) -> None:
    connection = RedisConnection.from_url(own_server.url, timeout_ms=2000)
    store, calls = RedisStore(connection), RedisCallStore(connection)
    before = connections_received(own_server)

    # One after the other: a pool of one connection serves both stores.
    admitted = await store.admit(request_for("alice"))
    leased = await calls.acquire("acme", "alice", "c1", 1, 30.0)
    record = await store.get_user("acme", "alice")
    held = await calls.user_calls("acme", "alice")
    opened = connections_received(own_server) - before - 1  # -1: the asking client
    await connection.close()

    assert admitted.allowed
    assert leased
    assert record is not None
    assert held == ["c1"]
    assert opened == 1


async def test_a_store_closes_a_shared_connection_only_when_it_made_it(
    own_server: RedisServer,
) -> None:
    connection = RedisConnection.from_url(own_server.url, timeout_ms=2000)
    store, calls = RedisStore(connection), RedisCallStore(connection)
    await calls.acquire("acme", "alice", "c1", 1, 30.0)

    await calls.close()
    await store.close()
    still_open = clients_connected(own_server)
    admitted = await store.admit(request_for("alice"))
    await connection.close()
    await connection.close()  # a second close does nothing
    await until(lambda: clients_connected(own_server) == 0)
    own = RedisStore.from_url(own_server.url, timeout_ms=2000)
    await own.admit(request_for("bob"))
    await own.close()  # made by from_url: closed with the store
    await until(lambda: clients_connected(own_server) == 0)

    assert still_open == 1
    assert admitted.allowed


async def test_both_stores_first_calls_on_a_cluster_initialize_it_once(
    clean_cluster: RedisClusterServers,
) -> None:
    for node in clean_cluster.nodes:
        with node.client() as c:
            c.config_resetstat()
    connection = RedisConnection.from_url(clean_cluster.url, timeout_ms=2000)
    store, calls = RedisStore(connection), RedisCallStore(connection)
    try:
        admitted = await asyncio.gather(*(store.admit(request_for(f"u{n}")) for n in range(10)))
        leased = await asyncio.gather(
            *(calls.acquire("acme", f"u{n}", "c1", 1, 30.0) for n in range(10))
        )
    finally:
        await connection.close()
    discoveries = 0
    for node in clean_cluster.nodes:
        with node.client() as c:
            discoveries += command_calls(c).get("cluster|slots", 0)

    assert all(a.allowed for a in admitted)
    assert all(leased)
    assert discoveries == 1


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_a_message_that_is_not_utf8_does_not_end_a_subscription(
    kind: str, request: pytest.FixtureRequest
) -> None:
    servers: RedisServer | RedisClusterServers = request.getfixturevalue(
        "clean_redis" if kind == "redis" else "clean_cluster"
    )
    node = servers if isinstance(servers, RedisServer) else servers.nodes[-1]
    connection = RedisConnection.from_url(servers.url, timeout_ms=2000)
    subscriber = connection.subscriber()
    try:
        await subscriber.subscribe(["tb:test"])
        with node.client() as c:
            c.publish("tb:test", b"\xff\xfe not UTF-8")
            c.publish("tb:test", "after")
        received = []
        async with asyncio.timeout(5):
            async for message in subscriber.messages():
                received.append(message)
                if len(received) == 2:
                    break
    finally:
        await subscriber.close()
        await connection.close()

    assert received == ["\ufffd\ufffd not UTF-8", "after"]
