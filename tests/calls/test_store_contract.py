"""One contract over every call store: memory, a real Redis server and a 3-master Cluster.

Leases and usage run on a manual clock (the Redis lease script takes a test clock);
supervision heartbeats are on the store's real clock (Redis's TIME), so those tests use
short real TTLs on a system-clock memory store too."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from service.calls.model import CallPolicy, Supervision
from service.calls.store import USAGE_TTL_SECONDS, CallStore, EventHandler, UsageDelta
from service.calls.store_memory import MemoryCallStore
from service.calls.store_redis import (
    CHANNEL,
    RedisCallStore,
    lease_key,
    supervision_keys,
    usage_key,
)
from service.clock import ManualClock, system_clock
from tests.eventually import eventually
from tests.redis_servers import RedisClusterServers, RedisServer, start_server

TTL = 30.0
BEAT = 0.3  # a real heartbeat TTL, short enough to wait out
KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
]
StoreFactory = Callable[[], Awaitable[CallStore]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=KINDS)
async def stores(
    request: pytest.FixtureRequest, clock: ManualClock
) -> AsyncIterator[tuple[StoreFactory, StoreFactory]]:
    """Two factories: stores on the manual clock, and stores on the real clock. Two stores
    of one kind share state (two replicas on one Redis; one process's memory)."""
    made: list[CallStore] = []
    url = None
    if request.param != "memory":
        fixture = "clean_redis" if request.param == "redis" else "clean_cluster"
        servers: RedisServer | RedisClusterServers = request.getfixturevalue(fixture)
        url = servers.url
    shared: dict[str, MemoryCallStore] = {}

    def factory(manual: bool) -> StoreFactory:
        async def make() -> CallStore:
            if url is None:
                key = "manual" if manual else "real"
                if key not in shared:
                    shared[key] = MemoryCallStore(clock=clock if manual else system_clock)
                return shared[key]
            store = RedisCallStore.from_url(url, timeout_ms=2000, clock=clock if manual else None)
            made.append(store)
            return store

        return make

    yield factory(True), factory(False)
    for store in made:
        await store.close()


@pytest.fixture
async def store(stores: tuple[StoreFactory, StoreFactory]) -> CallStore:
    return await stores[0]()


@pytest.fixture
async def live(stores: tuple[StoreFactory, StoreFactory]) -> tuple[CallStore, CallStore]:
    """Two replicas' views of one store, on the real clock."""
    return await stores[1](), await stores[1]()


def record(call_id: str, tenant: str = "t", user: str = "alice") -> Supervision:
    policy = CallPolicy("reader", {("instructions",): "Policy."}, "reapply", 100, None)
    return Supervision(tenant, user, call_id, policy, started_at=1000.0, deadline=1060.0)


# --- leases --------------------------------------------------------------------------


async def test_acquire_is_bounded_per_user(store: CallStore) -> None:
    assert await store.acquire("t", "alice", "c1", 2, TTL)
    assert await store.acquire("t", "alice", "c2", 2, TTL)
    assert not await store.acquire("t", "alice", "c3", 2, TTL)
    assert await store.acquire("t", "alice", "c1", 2, TTL)  # re-acquiring extends
    assert await store.acquire("t", "bob", "c4", 2, TTL)
    assert await store.user_calls("t", "alice") == ["c1", "c2"]


async def test_release_frees_a_slot(store: CallStore) -> None:
    assert await store.acquire("t", "alice", "c1", 1, TTL)
    await store.release("t", "alice", "c1")
    assert await store.acquire("t", "alice", "c2", 1, TTL)
    assert await store.user_calls("t", "alice") == ["c2"]


async def test_a_lease_lapses_at_its_ttl(store: CallStore, clock: ManualClock) -> None:
    assert await store.acquire("t", "alice", "c1", 1, TTL)
    clock.advance(TTL - 1)
    assert not await store.acquire("t", "alice", "c2", 1, TTL)
    clock.advance(2)
    assert await store.acquire("t", "alice", "c2", 1, TTL)


async def test_usage_adds_up_per_user_and_day_in_one_batch(store: CallStore) -> None:
    totals = await store.add_usage(
        [
            UsageDelta("t", "alice", "2025-01-01", 100, 1.5),
            UsageDelta("t", "bob", "2025-01-01", 7, 0.0),
            UsageDelta("t", "alice", "2025-01-01", 50, 2.0),
        ]
    )
    assert [(u.tokens, u.seconds) for u in totals] == [(100, 1.5), (7, 0.0), (150, 3.5)]
    assert await store.usage("t", "alice", "2025-01-01") == totals[2]
    assert (await store.usage("t", "alice", "2025-01-02")).tokens == 0
    assert await store.add_usage([]) == []


async def test_memory_usage_is_kept_as_long_as_redis_keeps_it(clock: ManualClock) -> None:
    # Redis gives a usage key USAGE_TTL_SECONDS more at every update; so does memory, and
    # a day not updated for that long is dropped, not kept forever.
    store = MemoryCallStore(clock=clock)
    await store.add_usage([UsageDelta("t", "alice", "2025-01-01", 10, 1.0)])
    await store.add_usage([UsageDelta("t", "bob", "2025-01-01", 20, 2.0)])
    clock.advance(USAGE_TTL_SECONDS - 1)
    await store.add_usage([UsageDelta("t", "bob", "2025-01-01", 1, 0.0)])  # kept longer
    kept = await store.usage("t", "alice", "2025-01-01")
    clock.advance(2)

    await store.add_usage([UsageDelta("t", "carol", "2025-01-03", 5, 0.5)])

    assert kept.tokens == 10
    assert (await store.usage("t", "alice", "2025-01-01")).tokens == 0
    assert (await store.usage("t", "bob", "2025-01-01")).tokens == 21
    assert len(store._usage) == 2  # alice's day is gone, not only hidden


# --- supervision ---------------------------------------------------------------------


async def test_a_record_is_kept_until_forgotten(live: tuple[CallStore, CallStore]) -> None:
    a, b = live
    await a.supervise(record("c1"), "A", TTL)
    assert await b.record("t", "c1") == record("c1")
    assert await b.record("other", "c1") is None
    await b.forget("t", "c1")
    assert await a.record("t", "c1") is None


async def test_an_owner_that_beats_keeps_its_calls(live: tuple[CallStore, CallStore]) -> None:
    a, b = live
    await a.supervise(record("c1"), "A", BEAT)
    for _ in range(3):
        await asyncio.sleep(BEAT / 3)
        assert await a.heartbeat("t", "A", ["c1"], BEAT) == []
    assert await b.claim_orphans("t", "B", TTL, 10) == []


async def test_a_silent_owners_calls_are_adopted_once(live: tuple[CallStore, CallStore]) -> None:
    a, b = live
    for n in range(3):
        await a.supervise(record(f"c{n}"), "A", BEAT)
    await asyncio.sleep(BEAT + 0.1)

    first, second = await asyncio.gather(
        b.claim_orphans("t", "B", TTL, 10), a.claim_orphans("t", "C", TTL, 10)
    )

    claimed = sorted(r.call_id for r in [*first, *second])
    assert claimed == ["c0", "c1", "c2"]  # each by one claimer only
    # The old owner learns at its next heartbeat that the calls are no longer its own.
    assert sorted(await a.heartbeat("t", "A", ["c0", "c1", "c2"], BEAT)) == ["c0", "c1", "c2"]


async def test_claims_are_bounded(live: tuple[CallStore, CallStore]) -> None:
    a, b = live
    for n in range(5):
        await a.supervise(record(f"c{n}"), "A", 0.0)
    await asyncio.sleep(0.05)
    assert len(await b.claim_orphans("t", "B", TTL, 2)) == 2
    assert len(await b.claim_orphans("t", "B", TTL, 10)) == 3


async def test_a_live_sessions_kind_survives_adoption(live: tuple[CallStore, CallStore]) -> None:
    a, b = live
    session = dataclasses.replace(record("live_1"), kind="live")
    await a.supervise(session, "A", 0.0)
    await asyncio.sleep(0.05)
    assert await b.claim_orphans("t", "B", TTL, 10) == [session]
    assert await b.record("t", "live_1") == session


async def test_handed_over_calls_are_claimable_at_once(live: tuple[CallStore, CallStore]) -> None:
    a, b = live
    await a.supervise(record("c1"), "A", TTL)
    await a.supervise(record("c2"), "A", TTL)
    await b.hand_over("t", "B", ["c1"])  # not B's to hand over: nothing happens
    assert await b.claim_orphans("t", "B", TTL, 10) == []

    await a.hand_over("t", "A", ["c1", "c2"])

    assert sorted(r.call_id for r in await b.claim_orphans("t", "B", TTL, 10)) == ["c1", "c2"]
    assert await b.heartbeat("t", "B", ["c1", "c2"], TTL) == []


async def test_the_listing_pages_by_call_id(live: tuple[CallStore, CallStore]) -> None:
    a, _ = live
    for call_id in ["c3", "c1", "c2"]:
        await a.supervise(record(call_id), "A", TTL)
    first, more = await a.supervised("t", limit=2, after=None)
    assert [row.record.call_id for row in first] == ["c1", "c2"]
    assert more
    assert {row.owner for row in first} == {"A"}
    assert all(row.heartbeat_until > time.time() for row in first)
    rest, more = await a.supervised("t", limit=2, after="c2")
    assert ([row.record.call_id for row in rest], more) == (["c3"], False)


# --- events --------------------------------------------------------------------------


async def test_published_events_reach_every_listener(live: tuple[CallStore, CallStore]) -> None:
    a, b = live
    seen: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    ready = {"a": asyncio.Event(), "b": asyncio.Event()}

    def listener(name: str) -> asyncio.Task[None]:
        async def reconnected() -> None:
            ready[name].set()

        store = a if name == "a" else b
        return asyncio.create_task(store.listen(seen[name].append, reconnected, name))

    tasks = [listener("a"), listener("b")]
    try:
        async with asyncio.timeout(5):
            await ready["a"].wait()
            await ready["b"].wait()
        await a.publish({"type": "user.revoked", "tenant": "t", "user_id": "alice"})
        await eventually(lambda: seen["a"] and seen["b"], seconds=5, what="the event, by both")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert seen["a"] == seen["b"] == [{"type": "user.revoked", "tenant": "t", "user_id": "alice"}]


async def test_a_message_to_one_inbox_reaches_that_listener_only(
    live: tuple[CallStore, CallStore],
) -> None:
    a, b = live
    seen: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    ready = {"a": asyncio.Event(), "b": asyncio.Event()}

    def listener(name: str, store: CallStore) -> asyncio.Task[None]:
        async def reconnected() -> None:
            ready[name].set()

        return asyncio.create_task(store.listen(seen[name].append, reconnected, name))

    tasks = [listener("a", a), listener("b", b)]
    try:
        async with asyncio.timeout(5):
            await ready["a"].wait()
            await ready["b"].wait()
        await a.publish({"type": "relay.down", "n": 1}, to="b")
        await a.publish({"type": "relay.down", "n": 2})
        await eventually(
            lambda: len(seen["b"]) == 2 and seen["a"], seconds=5, what="the events, by each"
        )
        # Had the message to b reached a, it would have by now: it was sent first.
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert [e["n"] for e in seen["b"]] == [1, 2]
    assert [e["n"] for e in seen["a"]] == [2]


async def _listen_until(
    store: CallStore, send: Callable[[], Awaitable[None]], handler: EventHandler
) -> asyncio.Task[None]:
    """Listen, `send` once listening, and wait (5 s at most) for the handler to see an
    event of type "wanted". The listening task is returned still running."""
    ready, arrived = asyncio.Event(), asyncio.Event()

    async def reconnected() -> None:
        ready.set()

    def handle(event: dict[str, Any]) -> None:
        handler(event)
        if event.get("type") == "wanted":
            arrived.set()

    task = asyncio.create_task(store.listen(handle, reconnected, "a"))
    try:
        async with asyncio.timeout(5):
            await ready.wait()
            await send()
            await arrived.wait()
    except BaseException:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    return task


def _causes(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {str(getattr(r, "cause", "")) for r in caplog.records if r.levelno == logging.WARNING}


async def test_a_listener_outlives_events_it_cannot_handle(
    live: tuple[CallStore, CallStore], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = live
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any]) -> None:
        if event.get("type") == "boom":
            raise RuntimeError("a handler's bug")
        seen.append(event)

    async def send() -> None:
        await b.publish(cast(Any, ["not", "an", "object"]))
        await b.publish(cast(Any, "text"))
        await b.publish({"type": "boom"})
        await b.publish({"type": "wanted"})

    with caplog.at_level(logging.WARNING):
        task = await _listen_until(a, send, handler)
    running = not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert running
    assert seen == [{"type": "wanted"}]
    assert {"event_not_object", "event_failed"} <= _causes(caplog)


async def test_one_relay_per_call(live: tuple[CallStore, CallStore]) -> None:
    a, b = live
    assert await a.claim_relay("t", "c1", "r1", 30.0)
    assert await a.claim_relay("t", "c1", "r1", 30.0)  # renewing
    assert not await b.claim_relay("t", "c1", "r2", 30.0)
    await b.release_relay("t", "c1", "r2")  # not r2's: nothing happens
    assert not await b.claim_relay("t", "c1", "r2", 30.0)
    await a.release_relay("t", "c1", "r1")
    assert await b.claim_relay("t", "c1", "r2", 30.0)


# --- Redis only ----------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_keys_are_hash_tagged_and_expire(
    clean_redis: RedisServer, clock: ManualClock
) -> None:
    store = RedisCallStore.from_url(clean_redis.url, clock=clock)
    try:
        await store.acquire("t", "a:b", "c1", 1, TTL)
        await store.add_usage([UsageDelta("t", "a:b", "2025-01-01", 1, 0.0)])
        key = lease_key("t", "a:b")
        assert key == "tb:{t:a%3Ab}:calls"
        with clean_redis.client() as c:
            assert 0 < c.pttl(key) <= TTL * 1000 + 1
            # The memory store keeps a day as long (test_memory_usage_is_kept_...).
            assert c.ttl(usage_key("t", "a:b", "2025-01-01")) == USAGE_TTL_SECONDS
        # A tenant's supervision keys share one slot: no cross-slot command on a Cluster.
        assert {k.split("}")[0] for k in supervision_keys("t")} == {"tb:{t"}
    finally:
        await store.close()


@pytest.mark.redis
async def test_the_event_listener_reconnects_after_redis_restarts(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    store = RedisCallStore.from_url(server.url, timeout_ms=2000)
    seen: list[dict[str, Any]] = []
    connections = 0

    async def reconnected() -> None:
        nonlocal connections
        connections += 1

    task = asyncio.create_task(store.listen(seen.append, reconnected, "a"))
    try:
        await eventually(lambda: connections >= 1, seconds=5, what="the first subscription")
        server.stop()
        server.start()
        await eventually(lambda: connections >= 2, seconds=15, what="the listener's reconnection")
        await store.publish({"type": "user.revoked", "tenant": "t", "user_id": "x"})
        await eventually(lambda: seen, seconds=5, what="the event after the restart")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
        server.stop()
    assert seen == [{"type": "user.revoked", "tenant": "t", "user_id": "x"}]


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_a_listener_outlives_garbage_published_on_its_channel(
    kind: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    servers: RedisServer | RedisClusterServers = request.getfixturevalue(
        "clean_redis" if kind == "redis" else "clean_cluster"
    )
    node = servers if isinstance(servers, RedisServer) else servers.nodes[-1]
    store = RedisCallStore.from_url(servers.url, timeout_ms=2000)
    seen: list[dict[str, Any]] = []

    async def send() -> None:
        # Anyone who may PUBLISH on Redis may send anything: none of it ends the listener.
        with node.client() as c:
            for garbage in [b"not json", b"\xff\xfe{}", b"[" * 100_000, b"42", b'"text"']:
                c.publish(CHANNEL, garbage)
            c.publish(CHANNEL, '{"type":"wanted"}')

    try:
        with caplog.at_level(logging.WARNING):
            task = await _listen_until(store, send, seen.append)
        running = not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await store.close()

    assert running
    assert seen == [{"type": "wanted"}]
    assert {"event_unreadable", "event_not_object"} <= _causes(caplog)
