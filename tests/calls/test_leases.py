"""Two supervisors: a replica cut off from Redis but not from OpenAI stops acting on its
calls once it could not renew their leases for a whole TTL (it neither reverts nor hangs
up) until a renewal tells it whose they are. Two controllers share one memory store; the
one cut off reaches it through `Unreachable`, whose supervision steps fail while `down`.
(Freezing Redis for one replica only is not something a process test can do simply.)"""

from __future__ import annotations

import asyncio
import json
import time

from service.calls.leases import Leases
from service.calls.state import Action
from service.calls.store_memory import MemoryCallStore
from service.calls.supervised import Held
from tests.calls.doubles import TENANT, Connector, Unreachable, Upstream, controller, record
from tests.eventually import eventually

TTL = 0.3
OVERRIDE = json.dumps({"type": "session.updated", "session": {"instructions": "mine"}})


async def test_a_supervisor_cut_off_for_a_ttl_neither_reverts_nor_hangs_up() -> None:
    store = MemoryCallStore()
    cut_off = Unreachable(store)
    a_side, b_side, upstream = Connector(), Connector(), Upstream()
    a = controller(a_side, upstream, cut_off, owner="a", lease_ttl=TTL)
    b = controller(b_side, upstream, store, owner="b", lease_ttl=TTL)
    await a.supervise(TENANT, record())
    try:
        await eventually(lambda: len(a_side.lines) == 1, what="joined by A")
        cut_off.down = True
        b.start()
        await eventually(lambda: b.held("default") == ["rtc_1"], what="adopted by B")
        await eventually(lambda: len(b_side.lines) == 1, what="joined by B")

        # The client overrides: both sidebands see it; only the owner reverts.
        a_side.lines[0].queue.put_nowait(OVERRIDE)
        b_side.lines[0].queue.put_nowait(OVERRIDE)
        await eventually(lambda: bool(b_side.lines[0].sent), what="reverted by B")
        await asyncio.sleep(0.05)
        assert a_side.lines[0].sent == []
        # Nor does A hang up: an admin hangup reaching A alone is held back.
        a._on_event({"type": "call.hangup", "tenant": "default", "call_id": "rtc_1"})
        await asyncio.sleep(0.05)
        assert upstream.hangups == []

        # Redis again: A learns B owns the call, lets it go, and does nothing it held back.
        cut_off.down = False
        await eventually(lambda: a.held("default") == [], what="let go by A")
        await asyncio.sleep(0.05)
        assert a_side.lines[0].sent == []
        assert upstream.hangups == []
        assert b.held("default") == ["rtc_1"]
    finally:
        await a.aclose()
        await b.aclose()


async def test_what_was_held_back_is_done_once_the_lease_proves_still_its_own() -> None:
    """Alone and cut off (nobody adopted the call): once Redis answers, the owner renews
    its lease and reverts what it held back."""
    cut_off = Unreachable(MemoryCallStore())
    connector = Connector()
    a = controller(connector, Upstream(), cut_off, owner="a", lease_ttl=TTL)
    await a.supervise(TENANT, record())
    try:
        await eventually(lambda: len(connector.lines) == 1, what="joined")
        cut_off.down = True
        await asyncio.sleep(TTL * 1.5)
        connector.lines[0].queue.put_nowait(OVERRIDE)
        await asyncio.sleep(0.05)
        assert connector.lines[0].sent == []

        cut_off.down = False
        await eventually(lambda: bool(connector.lines[0].sent), what="reverted")
    finally:
        await a.aclose()
    assert connector.lines[0].sent[0]["session"]["instructions"] == "Policy."
    assert a.held("default") == []  # closed (the memory store has nobody to hand over to)


async def test_a_deadline_that_falls_while_the_lease_is_stale_waits_for_a_renewal() -> None:
    cut_off = Unreachable(MemoryCallStore())
    connector, upstream = Connector(), Upstream()
    a = controller(connector, upstream, cut_off, owner="a", lease_ttl=TTL)
    await a.supervise(TENANT, record(deadline=time.time() + 2 * TTL))
    try:
        await eventually(lambda: len(connector.lines) == 1, what="joined")
        cut_off.down = True
        await asyncio.sleep(3 * TTL)  # the lease stale at TTL, the deadline at 2 TTL
        assert upstream.hangups == []
        assert a.held("default") == ["rtc_1"]

        cut_off.down = False
        await eventually(lambda: upstream.hangups == ["rtc_1"], what="hung up")
    finally:
        await a.aclose()


def test_leases_are_fresh_for_a_ttl_from_the_renewal_sent() -> None:
    leases = Leases(15.0)
    assert leases.fresh("acme", 1e12)  # never written: its first record makes it known
    leases.recorded("acme", 100.0)
    leases.recorded("acme", 110.0)  # known already: a record proves no other lease
    assert leases.fresh("acme", 114.9)
    assert not leases.fresh("acme", 115.0)
    assert leases.any_stale(115.0)
    leases.renewed("acme", 114.0)
    assert leases.fresh("acme", 128.9)
    leases.only([])
    assert not leases.any_stale(1e12)


def test_held_back_actions_are_kept_per_call_and_bounded() -> None:
    leases = Leases(15.0)
    first, second = Held(TENANT, record("rtc_1"), 0.0), Held(TENANT, record("rtc_2"), 0.0)
    for n in range(20):
        leases.hold_back(first, Action("revert", (str(n),)))
    leases.hold_back(second, Action("hangup", ("voice",)))
    leases.let_go(second)

    due = leases.due("default")

    assert [action.changed for _, action in due] == [(str(n),) for n in range(12, 20)]
    assert leases.due("default") == []


async def test_a_record_the_store_lost_is_written_again_by_its_owner() -> None:
    """A failover to a replica that had not received the last writes (replication is
    asynchronous) loses records and leases: the owner's next heartbeat finds its call
    unknown, not taken, and writes both again; it does not let the call go."""
    store = MemoryCallStore()
    connector = Connector()
    a = controller(connector, Upstream(), store, owner="a", lease_ttl=TTL)
    await store.acquire("default", "alice", "rtc_1", 1, 60)
    await a.supervise(TENANT, record())
    try:
        await eventually(lambda: len(connector.lines) == 1, what="joined")
        await store.forget("default", "rtc_1")
        await store.release("default", "alice", "rtc_1")

        async def written_again() -> bool:
            return await store.record("default", "rtc_1") is not None

        await eventually(written_again, what="the record written again")
        assert await store.user_calls("default", "alice") == ["rtc_1"]
        listed, _ = await store.supervised("default", limit=10, after=None)
        assert [(c.record.call_id, c.owner) for c in listed] == [("rtc_1", "a")]
        assert a.held("default") == ["rtc_1"]
        assert not connector.lines[0].closed
    finally:
        await a.aclose()
