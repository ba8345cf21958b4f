"""The store contract's fixture, and a server of its own for tests that stop or freeze
it (the shared standalone server and cluster are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from service.clock import ManualClock
from service.stores.base import Store
from service.stores.memory import MemoryStore
from service.stores.redis import RedisStore
from tests.redis_servers import RedisServer, start_server


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
