"""One contract over every ledger: memory, a real Redis server and a 3-master Cluster,
written through the call store's usage batches (`CallStore.meter`) as the scheduler
writes it, read as the admin API and the refusals read it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.calls.store import CallStore, UsageDelta
from service.calls.store_memory import MemoryCallStore
from service.calls.store_redis import RedisCallStore
from service.clock import ManualClock
from service.usage.model import NANO, LedgerEntry
from service.usage.periods import bucket_start
from tests.redis_servers import RedisClusterServers, RedisServer

NOW = 1_767_225_600.0 + 3 * 86_400 + 3600 + 61  # 2026-01-04T01:01:01Z
KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
]


@pytest.fixture(params=KINDS)
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[CallStore, CallStore]]:
    """Two stores of one kind sharing state (two replicas on one Redis)."""
    clock = ManualClock(NOW)
    if request.param == "memory":
        memory = MemoryCallStore(clock=clock)
        yield memory, memory
        return
    fixture = "clean_redis" if request.param == "redis" else "clean_cluster"
    servers: RedisServer | RedisClusterServers = request.getfixturevalue(fixture)
    made: list[CallStore] = [
        RedisCallStore.from_url(servers.url, timeout_ms=2000) for _ in range(2)
    ]
    yield made[0], made[1]
    for made_store in made:
        await made_store.close()


def entry(user: str, model: str = "gpt-realtime-mini", **counts: int) -> LedgerEntry:
    return LedgerEntry(
        "acme",
        user,
        model,
        counts,
        requests=1,
        seconds=1.5,
        cost={kind: n * 10 for kind, n in counts.items()},
    )


async def test_a_batch_is_readable_per_bucket_user_and_model_from_another_store(
    stores: tuple[CallStore, CallStore],
) -> None:
    writer, reader = stores
    await writer.meter(
        [UsageDelta("acme", "ann", "2026-01-04", 7, 1.5)],
        [
            entry("ann", input_audio_tokens=30, output_audio_tokens=45),
            entry("ann", input_audio_tokens=5),  # the same user and model: summed
            entry("bob:x{y}", "gpt-realtime", output_text_tokens=3),
        ],
        NOW,
    )

    for width in ("1m", "1h", "1d"):
        (bucket,) = await reader.ledger.buckets("acme", width, [bucket_start(NOW, width)])
        ann = bucket[("ann", "gpt-realtime-mini")]
        assert (ann["input_audio_tokens"], ann["output_audio_tokens"]) == (35, 45)
        assert (ann["requests"], ann["ms"]) == (2, 3000)
        assert bucket[("bob:x{y}", "gpt-realtime")]["output_text_tokens"] == 3
        # Money per line kind is kept by the day only (the costs endpoint is daily).
        assert ("$input_audio_tokens" in ann) == (width == "1d")
    (empty,) = await reader.ledger.buckets("acme", "1m", [bucket_start(NOW, "1m") - 60])
    assert empty == {}
    assert (await reader.ledger.buckets("globex", "1d", [bucket_start(NOW, "1d")])) == [{}]


async def test_a_write_answers_each_users_spend_and_the_tenants(
    stores: tuple[CallStore, CallStore],
) -> None:
    writer, reader = stores
    await writer.ledger.set_spend_limit("acme", 2)
    first = await writer.meter([], [entry("ann", input_audio_tokens=100)], NOW)
    second = await writer.meter(
        [],
        [entry("ann", output_audio_tokens=10), entry("bob", output_audio_tokens=1)],
        NOW + 86_400,
    )

    assert first.spend[("acme", "ann")].user_day == 1000
    ann = second.spend[("acme", "ann")]
    # A new UTC day, the same month.
    assert (ann.user_day, ann.user_month, ann.tenant_month) == (100, 1100, 1110)
    assert ann.limit_cents == 2
    assert not ann.limit_reached
    read = await reader.ledger.spend("acme", "bob", NOW + 86_400)
    assert (read.user_day, read.user_month, read.tenant_month) == (10, 10, 1110)
    assert (await reader.ledger.spend("acme", "bob", NOW + 40 * 86_400)).user_month == 0


async def test_the_spend_limit_is_set_read_and_deleted(stores: tuple[CallStore, CallStore]) -> None:
    writer, reader = stores
    assert await reader.ledger.spend_limit("acme") is None
    await writer.ledger.set_spend_limit("acme", 0)
    spend = await reader.ledger.spend("acme", "ann", NOW)
    assert spend.limit_cents == 0
    assert spend.limit_reached
    await writer.ledger.set_spend_limit("acme", 150)
    assert await reader.ledger.spend_limit("acme") == 150
    await writer.meter([], [entry("ann", input_audio_tokens=150 * NANO // 100 // 10)], NOW)
    assert (await reader.ledger.spend("acme", "ann", NOW)).limit_reached
    assert await writer.ledger.delete_spend_limit("acme") is True
    assert await writer.ledger.delete_spend_limit("acme") is False
    assert not (await reader.ledger.spend("acme", "ann", NOW)).limit_reached


async def test_budget_usage_and_the_ledger_ride_one_batch(
    stores: tuple[CallStore, CallStore],
) -> None:
    writer, _ = stores
    metered = await writer.meter(
        [
            UsageDelta("acme", "ann", "2026-01-04", 7, 2.0),
            UsageDelta("acme", "bob", "2026-01-04", 1, 0),
        ],
        [entry("ann", input_text_tokens=7)],
        NOW,
    )
    assert [u.tokens for u in metered.usage] == [7, 1]
    assert list(metered.spend) == [("acme", "ann")]
