"""What only the Redis store has: one round trip, NOSCRIPT recovery, Redis's clock,
durable records, hash tags on a cluster, cluster compensation, faults, Sentinel."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from service.errors import StoreUnavailable
from service.limits import parse_limits
from service.stores import redis_keys as keys
from service.stores.base import AdmitRequest
from service.stores.redis import RedisStore
from service.stores.redis_client import LuaScript
from tests.eventually import eventually
from tests.redis_servers import (
    RedisClusterServers,
    RedisServer,
    command_calls,
    start_sentinel,
)

pytestmark = pytest.mark.redis


def request_for(user: str = "alice", **kwargs: Any) -> AdmitRequest:
    return AdmitRequest(
        tenant="acme",
        user_id=user,
        claimed_role="reader",
        user_limits={"reader": parse_limits(kwargs.pop("limits", ("5/minute", "100/day")))},
        tenant_limits=parse_limits(kwargs.pop("tenant_limits", ("600/minute",))),
        **kwargs,
    )


async def test_one_round_trip_per_admit(clean_redis: RedisServer) -> None:
    store = RedisStore.from_url(clean_redis.url)
    await store.admit(request_for("warm-up"))  # connects and caches the script
    with clean_redis.client() as c:
        c.config_resetstat()

        for user in ["a", "b", "a", "c", "a"]:
            await store.admit(request_for(user))
        calls = command_calls(c)
    await store.close()

    # commandstats also counts the commands a script runs; none may come from elsewhere
    inside_scripts = {"hmget", "hset", "zadd", "get", "set", "del", "time"}
    assert calls.get("evalsha") == 5
    assert calls.get("hmget") == 5  # one script run per admit
    assert set(calls) - inside_scripts - {"evalsha", "info", "config|resetstat"} == set()


async def test_noscript_after_flush_recovers(clean_redis: RedisServer) -> None:
    store = RedisStore.from_url(clean_redis.url)
    await store.admit(request_for())
    with clean_redis.client() as c:
        c.script_flush()

    admission = await store.admit(request_for())
    with clean_redis.client() as c:
        cached = c.script_exists(*[s.sha for s in _scripts(store)])
    await store.close()

    assert admission.allowed
    assert admission.outcomes[0].remaining == 3
    assert cached[0]  # admit.lua is back in the server's cache


def _scripts(store: RedisStore) -> Sequence[LuaScript]:
    scripts = store._scripts
    return [scripts.admit, scripts.consume, scripts.refund, scripts.update_user]


async def test_decides_on_redis_clock(clean_redis: RedisServer) -> None:
    store = RedisStore.from_url(clean_redis.url)  # no injected clock: Redis's TIME
    request = request_for(limits=("2/second",), tenant_limits=())

    burst = [await store.admit(request) for _ in range(3)]
    # A little more than one emission interval (0.5 s); the margin to the next one
    # (0.4 s) absorbs a loaded machine.
    await asyncio.sleep(0.6)
    refill = [await store.admit(request) for _ in range(2)]
    await store.close()

    assert [a.allowed for a in burst] == [True] * 2 + [False]
    assert 0 < burst[-1].retry_after <= 0.5
    assert [a.allowed for a in refill] == [True, False]


async def test_records_are_durable_and_buckets_expire(clean_redis: RedisServer) -> None:
    store = RedisStore.from_url(clean_redis.url)
    request = request_for("bob", limits=("5/minute",), tenant_limits=("10/minute",))
    await store.admit(request)
    await store.revoke("acme", "bob")
    await store.close()

    with clean_redis.client() as c:
        record_ttl = c.ttl(keys.record_key("acme", "bob"))
        index_ttl = c.ttl(keys.index_key("acme"))
        user_pttl = c.pttl(
            keys.user_bucket_key("acme", "bob", "mint", parse_limits(["5/minute"])[0])
        )
        tenant_pttl = c.pttl(keys.tenant_bucket_key("acme", "mint", parse_limits(["10/minute"])[0]))

    assert record_ttl == -1
    assert index_ttl == -1
    assert 11_000 < user_pttl <= 12_000  # time until full: one interval of 12 s
    # Each bucket expires on its own interval (6 s here). A 100 ms interval once
    # expired before a loaded CI machine read it back.
    assert 5_000 < tenant_pttl <= 6_000


async def test_user_keys_share_one_slot(clean_cluster: RedisClusterServers) -> None:
    limits = parse_limits(["5/minute", "100/day"])
    user = "we{ir}d:id}"
    names = [keys.record_key("acme", user)]
    names += [keys.user_bucket_key("acme", user, "mint", lim) for lim in limits]
    tenant_names = [keys.index_key("acme")]
    tenant_names += [keys.tenant_bucket_key("acme", "mint", lim) for lim in limits]

    with clean_cluster.nodes[0].client() as c:
        slots = {c.cluster("KEYSLOT", n) for n in names}
        tenant_slots = {c.cluster("KEYSLOT", n) for n in tenant_names}

    assert len(slots) == 1
    assert len(tenant_slots) == 1


class _TenantSlotDown(RedisStore):
    """The tenant's half of a cluster admit fails, as if its node had just died."""

    async def _run(self, script: LuaScript, ks: Sequence[str], args: Sequence[str | int]) -> Any:
        if script.name == "consume":
            raise StoreUnavailable("redis consume failed (ConnectionError)")
        return await super()._run(script, ks, args)


async def test_cluster_gives_back_user_slot_when_tenant_slot_fails(
    clean_cluster: RedisClusterServers,
) -> None:
    # A generous deadline: a cold cluster client's first call (slot discovery, script
    # load) can take longer than the default 250 ms on a loaded machine.
    failing = _TenantSlotDown.from_url(clean_cluster.url, timeout_ms=2000)
    healthy = RedisStore.from_url(clean_cluster.url, timeout_ms=2000)
    request = request_for(limits=("2/minute",), tenant_limits=("600/minute",))
    try:
        with pytest.raises(StoreUnavailable):
            await failing.admit(request)
        admission = await healthy.admit(request)
    finally:
        await failing.close()
        await healthy.close()

    assert admission.allowed
    assert admission.outcomes[0].remaining == 1  # the failed admit holds nothing


async def test_cluster_without_tenant_limits_indexes_new_users(
    clean_cluster: RedisClusterServers,
) -> None:
    store = RedisStore.from_url(clean_cluster.url, timeout_ms=2000)
    try:
        await store.admit(request_for("zed", tenant_limits=()))
        await store.admit(request_for("amy", tenant_limits=()))
        page, more = await store.list_users("acme", after=None, limit=10)
        marked = await store._client.execute_command("HGET", keys.record_key("acme", "amy"), "ix")
    finally:
        await store.close()

    assert [r.id for r in page] == ["amy", "zed"]
    assert not more
    assert marked == "1"  # indexed once: later admits skip the extra call


async def _connected(store: RedisStore) -> None:
    """Open the store's connection and load its script before the test cuts the server
    off. The first call makes three round trips; on a loaded machine they can take more
    than a 100 ms deadline, so it is tried again rather than failing the test."""

    async def admitted() -> bool:
        try:
            await store.admit(request_for())
        except StoreUnavailable:
            return False
        return True

    await eventually(admitted, seconds=5, what="the store reaching its server", every=0.05)


async def test_stopped_server_is_unavailable_fast(own_server: RedisServer) -> None:
    store = RedisStore.from_url(own_server.url, timeout_ms=100)
    await _connected(store)
    own_server.stop()

    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        await store.admit(request_for())
    elapsed = time.monotonic() - started

    # Refused at once (at worst cut at the 100 ms deadline), not after reconnection
    # attempts and backoffs that take seconds: generous for a loaded CI machine.
    assert elapsed < 1.0
    assert "redis" in str(caught.value)
    assert not await store.ping()
    await store.close()


async def test_frozen_server_times_out(own_server: RedisServer) -> None:
    store = RedisStore.from_url(own_server.url, timeout_ms=100)
    await _connected(store)
    assert own_server.process is not None
    os.kill(own_server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.get_user("acme", "alice")
        elapsed = time.monotonic() - started
    finally:
        os.kill(own_server.process.pid, signal.SIGCONT)
    await store.close()

    # Cut at the 100 ms deadline: not failed at once, and not hung (a frozen server never
    # answers, so without the deadline the call waits for SIGCONT).
    assert 0.09 < elapsed < 1.0


async def test_restarted_server_serves_the_same_store(own_server: RedisServer) -> None:
    # The deadline is not what this test is about: a generous one keeps the reconnect
    # and script reload after the restart off a loaded machine's scheduling delays.
    store = RedisStore.from_url(own_server.url, timeout_ms=2000)
    await store.admit(request_for())
    own_server.stop()
    with pytest.raises(StoreUnavailable):
        await store.admit(request_for())

    own_server.start()  # same port, empty data, empty script cache
    admission = await store.admit(request_for())
    await store.close()

    assert admission.allowed
    assert admission.outcomes[0].remaining == 4


async def test_sentinel_url(clean_redis: RedisServer, tmp_path: Path) -> None:
    sentinel = start_sentinel(tmp_path, clean_redis)
    try:
        store = RedisStore.from_url(sentinel.url)
        admission = await store.admit(request_for())
        reachable = await store.ping()
        await store.close()
    finally:
        sentinel.stop()

    assert admission.allowed
    assert reachable
