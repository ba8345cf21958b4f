"""relay.hub.RelayHub across replicas, in one process: hubs on one memory store, each with
its own inbox, as replicas on Redis are. The supervisor's calls are stand-ins with a
sideband that records what it is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from service.calls.store_memory import MemoryCallStore
from service.errors import StoreUnavailable
from service.relay.hub import Relay, RelayHub
from service.relay.messages import RelayAttach, RelayDown, UserRevoked
from tests.eventually import eventually

TENANT, CALL = "acme", "rtc_1"


class FlakyStore(MemoryCallStore):
    """The memory store, whose publish fails while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def publish(self, event: dict[str, Any], *, to: str | None = None) -> None:
        if self.down:
            raise StoreUnavailable("redis publish failed (ConnectionError)")
        await super().publish(event, to=to)


class Sideband:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        self.sent.append(event)


class Call:
    """A call as its supervisor holds it (what the hub needs of the controller's `Held`)."""

    def __init__(self) -> None:
        self.key = (TENANT, CALL)
        self.relay_replica: str | None = None
        self.connection: Sideband | None = Sideband()


class Replica:
    """A replica's hub, the calls it supervises, and its listener on the store."""

    def __init__(self, store: MemoryCallStore, name: str) -> None:
        self.store, self.name = store, name
        self.calls: dict[tuple[str, str], Call] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.hub = RelayHub(
            store=store,
            replica=name,
            calls=lambda tenant, call_id: self.calls.get((tenant, call_id)),
            spawn=self.spawn,
            listen=lambda: None,
        )

    def spawn(self, work: Awaitable[Any]) -> None:
        self.tasks.add(asyncio.ensure_future(work))

    async def listen(self) -> None:
        listening = asyncio.Event()

        async def reconnected() -> None:
            listening.set()

        def handler(event: dict[str, Any]) -> None:
            self.hub.receive(event)

        self.spawn(self.store.listen(handler, reconnected, self.name))
        await listening.wait()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def until(check: Callable[[], object]) -> None:
    await eventually(check, seconds=2.0)


@pytest.fixture
async def store() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
async def replicas(store: FlakyStore) -> AsyncIterator[dict[str, Replica]]:
    """Replica A supervises the call; B and C supervise nothing (yet)."""
    started = {name: Replica(store, f"replica-{name.lower()}") for name in "ABC"}
    for replica in started.values():
        await replica.listen()
    started["A"].calls[(TENANT, CALL)] = Call()
    yield started
    for replica in started.values():
        await replica.stop()


async def attached(replica: Replica) -> Relay:
    relay = await replica.hub.claim(TENANT, CALL)
    assert relay is not None
    await replica.hub.attach(relay)
    async with asyncio.timeout(2.0):
        await relay.known.wait()
    return relay


async def test_a_relay_on_another_replica_carries_the_calls_events_both_ways(
    replicas: dict[str, Replica],
) -> None:
    a, b = replicas["A"], replicas["B"]
    call = a.calls[(TENANT, CALL)]

    relay = await attached(b)
    sent = await b.hub.up(relay, {"type": "response.create"})
    a.hub.down(call, '{"type":"response.done"}')
    a.hub.down(call, None)  # the call ended

    assert (relay.supervisor, call.relay_replica) == ("replica-a", "replica-b")
    assert sent is True
    await until(lambda: call.connection and call.connection.sent)
    assert call.connection is not None
    assert call.connection.sent == [{"type": "response.create"}]
    assert await relay.events.get() == '{"type":"response.done"}'
    assert await relay.events.get() is None


async def test_a_relay_on_the_supervisors_own_replica_needs_no_store(
    replicas: dict[str, Replica], store: FlakyStore
) -> None:
    a = replicas["A"]
    call = a.calls[(TENANT, CALL)]
    relay = await attached(a)
    store.down = True

    sent = await a.hub.up(relay, {"type": "response.cancel"})
    a.hub.down(call, '{"type":"response.done"}')

    assert (relay.supervisor, call.relay_replica, sent) == ("replica-a", "replica-a", True)
    await until(lambda: call.connection and call.connection.sent)
    assert relay.events.get_nowait() == '{"type":"response.done"}'


async def test_one_relay_per_call_and_a_detach_frees_the_call(
    replicas: dict[str, Replica],
) -> None:
    a, b, c = replicas["A"], replicas["B"], replicas["C"]
    call = a.calls[(TENANT, CALL)]
    relay = await attached(b)

    second = await c.hub.claim(TENANT, CALL)
    await b.hub.detach(relay)

    assert second is None
    await until(lambda: call.relay_replica is None)
    assert b.hub.attached(TENANT, CALL) is None
    assert await c.hub.claim(TENANT, CALL) is not None


async def test_an_adopted_calls_relay_attaches_again_to_its_new_supervisor(
    replicas: dict[str, Replica],
) -> None:
    a, b, c = replicas["A"], replicas["B"], replicas["C"]
    relay = await attached(b)
    # A is gone; C adopts the call.
    del a.calls[(TENANT, CALL)]
    adopted = c.calls[(TENANT, CALL)] = Call()

    await c.hub.adopted(TENANT, CALL)

    await until(lambda: relay.supervisor == "replica-c")
    assert adopted.relay_replica == "replica-b"
    assert await b.hub.up(relay, {"type": "response.create"}) is True
    await until(lambda: adopted.connection and adopted.connection.sent)


async def test_a_call_nobody_supervises_refuses_the_browsers_events(
    replicas: dict[str, Replica],
) -> None:
    b = replicas["B"]
    relay = await b.hub.claim(TENANT, "rtc_nobody")
    assert relay is not None
    await b.hub.attach(relay)

    assert await b.hub.up(relay, {"type": "response.create"}) is False


async def test_an_attach_whose_publish_fails_leaves_nothing_registered(
    replicas: dict[str, Replica], store: FlakyStore
) -> None:
    b = replicas["B"]
    relay = await b.hub.claim(TENANT, CALL)
    assert relay is not None
    store.down = True

    with pytest.raises(StoreUnavailable):
        await b.hub.attach(relay)

    # Nothing delivers to a relay that never started: a later down event finds no relay.
    assert b.hub.attached(TENANT, CALL) is None


async def test_a_browser_event_to_a_remote_supervisor_with_the_store_down_is_refused(
    replicas: dict[str, Replica], store: FlakyStore
) -> None:
    b = replicas["B"]
    relay = await attached(b)
    store.down = True

    sent = await b.hub.up(relay, {"type": "response.create"})

    assert sent is False  # the browser gets call_unavailable; no exception escapes


async def test_only_relay_messages_are_the_hubs(replicas: dict[str, Replica]) -> None:
    hub = replicas["A"].hub

    assert hub.receive(RelayDown(TENANT, "rtc_elsewhere", None).encode()) is True
    assert hub.receive(UserRevoked(TENANT, "alice").encode()) is False
    # A relay message it cannot read is nobody's: the controller ignores it too.
    assert hub.receive({**RelayAttach(TENANT, CALL, "replica-b").encode(), "relay": 5}) is False
    assert replicas["A"].calls[(TENANT, CALL)].relay_replica is None


class SlowStore(FlakyStore):
    """A store whose publishes wait until `go` is set: a Redis that is slow to answer."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def publish(self, event: dict[str, Any], *, to: str | None = None) -> None:
        if event.get("type") == "relay.down":
            await self.go.wait()
        await super().publish(event, to=to)


async def test_the_supervisor_never_waits_for_the_store_to_pass_events_to_a_relay() -> None:
    # The sideband reader calls `down` per event: a slow publish must not hold it.
    store = SlowStore()
    a, b = Replica(store, "replica-a"), Replica(store, "replica-b")
    await a.listen()
    await b.listen()
    call = Call()
    a.calls[(TENANT, CALL)] = call
    try:
        relay = await attached(b)
        for n in range(50):
            a.hub.down(call, f'{{"n":{n}}}')  # returns at once, the store still waiting
        a.hub.down(call, None)
        store.go.set()

        received = [await asyncio.wait_for(relay.events.get(), 2.0) for _ in range(51)]
    finally:
        await a.stop()
        await b.stop()

    assert received == [f'{{"n":{n}}}' for n in range(50)] + [None]  # in order, none lost


def test_the_end_of_a_call_reaches_a_relay_whose_queue_is_full() -> None:
    # A browser that stopped reading loses events, never the end (it closes the relay).
    relay = Relay(TENANT, CALL, "replica-b:1")
    for n in range(relay.events.maxsize + 5):
        relay.deliver(f'{{"n":{n}}}')

    relay.deliver(None)

    items = [relay.events.get_nowait() for _ in range(relay.events.qsize())]
    assert items[-1] is None
    assert len(items) == relay.events.maxsize
