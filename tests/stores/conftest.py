"""Real servers for the store tests: one standalone server and one 3-node cluster for
the whole session (flushed before each test that uses them), and a server of its own
for tests that stop or freeze it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.clock import ManualClock
from service.stores.base import Store
from service.stores.memory import MemoryStore
from service.stores.redis import RedisStore
from tests.redis_servers import (
    RedisClusterServers,
    RedisServer,
    start_cluster,
    start_server,
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:
    with redis_server.client() as c:
        c.flushall()
        c.execute_command("SCRIPT", "FLUSH")
    return redis_server


@pytest.fixture
def clean_cluster(redis_cluster: RedisClusterServers) -> RedisClusterServers:
    redis_cluster.flush()
    return redis_cluster


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A standalone server this test may stop, restart or freeze."""
    server = start_server(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.redis),
    ]
)
async def store(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[Store]:
    """Every Store implementation, all on the same manual clock."""
    if request.param == "memory":
        yield MemoryStore(clock=clock)
        return
    fixture = "clean_redis" if request.param == "redis" else "clean_cluster"
    servers = request.getfixturevalue(fixture)
    # The contract is about semantics, not latency: a generous command timeout keeps a
    # loaded machine (200 concurrent admits on a 2-core box) from turning into failures.
    redis_store = RedisStore.from_url(servers.url, clock=clock, timeout_ms=2000)
    yield redis_store
    await redis_store.close()
