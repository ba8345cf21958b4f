"""One contract over both call stores: memory and a real Redis server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from service.calls.store import CallStore
from service.calls.store_memory import MemoryCallStore
from service.calls.store_redis import RedisCallStore, lease_key
from service.clock import ManualClock
from tests.redis_servers import RedisServer, start_server

TTL = 30.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_server(tmp_path_factory.mktemp("calls-redis"))
    yield server
    server.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(
    request: pytest.FixtureRequest, clock: ManualClock, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CallStore]:
    if request.param == "memory":
        yield MemoryCallStore(clock=clock)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    with server.client() as c:
        c.flushall()
    redis_store = RedisCallStore.from_url(server.url, clock=clock)
    yield redis_store
    await redis_store.close()


async def test_acquire_is_bounded_per_user(store: CallStore) -> None:
    assert await store.acquire("t", "alice", "c1", 2, TTL)
    assert await store.acquire("t", "alice", "c2", 2, TTL)
    assert not await store.acquire("t", "alice", "c3", 2, TTL)
    assert await store.acquire("t", "bob", "c4", 2, TTL)
    assert await store.acquire("t", "alice", "c1", 2, TTL)  # re-acquiring renews
    assert await store.user_calls("t", "alice") == ["c1", "c2"]


async def test_release_frees_a_slot(store: CallStore) -> None:
    assert await store.acquire("t", "alice", "c1", 1, TTL)
    await store.release("t", "alice", "c1")
    assert await store.acquire("t", "alice", "c2", 1, TTL)
    assert [c.call_id for c in await store.active("t")] == ["c2"]


async def test_a_dead_replicas_leases_expire_within_one_ttl(
    store: CallStore, clock: ManualClock
) -> None:
    # Replica A takes two leases and dies: nobody renews or releases them.
    assert await store.acquire("t", "alice", "a1", 2, TTL)
    assert await store.acquire("t", "alice", "a2", 2, TTL)
    clock.advance(TTL - 0.5)
    assert not await store.acquire("t", "alice", "b1", 2, TTL)
    clock.advance(0.5)
    # Replica B: one TTL after A's last renewal, A's calls no longer count.
    assert await store.acquire("t", "alice", "b1", 2, TTL)
    assert [c.call_id for c in await store.active("t")] == ["b1"]


async def test_renew_keeps_a_lease_and_fails_once_it_lapsed(
    store: CallStore, clock: ManualClock
) -> None:
    assert await store.acquire("t", "alice", "c1", 1, TTL)
    clock.advance(TTL - 1)
    assert await store.renew("t", "alice", "c1", TTL)
    clock.advance(TTL - 1)
    assert await store.user_calls("t", "alice") == ["c1"]
    clock.advance(2)
    assert not await store.renew("t", "alice", "c1", TTL)
    assert await store.user_calls("t", "alice") == []


async def test_active_lists_the_tenant_only(store: CallStore) -> None:
    await store.acquire("t", "alice", "c1", None, TTL)
    await store.acquire("other", "alice", "c2", None, TTL)
    calls = await store.active("t")
    assert [(c.tenant, c.user_id, c.call_id) for c in calls] == [("t", "alice", "c1")]


async def test_usage_adds_up_per_user_and_day(store: CallStore) -> None:
    assert (await store.usage("t", "alice", "2025-01-01")).tokens == 0
    await store.add_usage("t", "alice", 100, 1.5, "2025-01-01")
    total = await store.add_usage("t", "alice", 50, 2.0, "2025-01-01")
    assert (total.tokens, total.seconds) == (150, 3.5)
    assert await store.usage("t", "alice", "2025-01-01") == total
    assert (await store.usage("t", "alice", "2025-01-02")).tokens == 0
    assert (await store.usage("t", "bob", "2025-01-01")).tokens == 0


@pytest.mark.redis
async def test_redis_keys_are_hash_tagged_and_expire(
    redis_server: RedisServer, clock: ManualClock
) -> None:
    store = RedisCallStore.from_url(redis_server.url, clock=clock)
    try:
        await store.acquire("t", "a:b", "c1", 1, TTL)
        key = lease_key("t", "a:b")
        assert key == "tb:{t:a%3Ab}:calls"
        with redis_server.client() as c:
            assert 0 < c.pttl(key) <= TTL * 1000 + 1
    finally:
        await store.close()
