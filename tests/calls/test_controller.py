"""CallController against stubs: hangups retried until upstream takes them, a sideband
that cannot be joined ends the call, a handed-over call is not hung up, one scheduler
for every call."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from service.calls.controller import CallController
from service.calls.model import CallPolicy, Supervision
from service.calls.store_memory import MemoryCallStore
from service.calls.supervised import CallOptions
from service.config.settings import TenantSettings, load_settings
from service.errors import NotFound, UpstreamUnavailable
from service.logs import Throttled

TENANT = load_settings({"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": "x" * 32}).tenants[0]


class Line:
    """A sideband: events put in are read by the controller; None ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    async def recv(self) -> str | None:
        return None if self.closed else await self.queue.get()

    async def send(self, event: dict[str, Any]) -> None:
        self.sent.append(event)

    async def close(self) -> None:
        self.closed = True
        self.queue.put_nowait(None)


class Connector:
    def __init__(self, *, refuse: int = 0, gone: bool = False) -> None:
        self.refuse, self.gone, self.lines = refuse, gone, list[Line]()

    async def connect(self, tenant: TenantSettings, call_id: str, kind: str = "realtime") -> Line:
        if self.gone:
            raise NotFound("The call is over.")
        if self.refuse:
            self.refuse -= 1
            raise UpstreamUnavailable("The call's sideband could not be opened.")
        self.lines.append(Line())
        return self.lines[-1]


class Upstream:
    def __init__(self, failures: int = 0) -> None:
        self.failures, self.hangups = failures, list[str]()

    async def hangup_call(self, call_id: str) -> None:
        self.hangups.append(call_id)
        if self.failures:
            self.failures -= 1
            raise UpstreamUnavailable("The upstream is unavailable.")


def record(call_id: str = "rtc_1", deadline: float = 1e12) -> Supervision:
    policy = CallPolicy("reader", {("instructions",): "Policy."})
    return Supervision("default", "alice", call_id, policy, 0.0, deadline)


def controller(
    connector: Connector, upstream: Upstream, store: MemoryCallStore | None = None, **opts: Any
) -> CallController:
    options = CallOptions(tick=0.01, lease_ttl=1.0, rejoin_seconds=0.3, **opts)
    return CallController(
        store=store or MemoryCallStore(),
        connector=connector,
        upstreams={"default": upstream},  # type: ignore[dict-item]
        tenants=[TENANT],
        options=options,
    )


async def until(check: Any, seconds: float = 3.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_a_failed_hangup_is_retried_and_the_lease_kept_meanwhile() -> None:
    upstream, store = Upstream(failures=4), MemoryCallStore()
    calls = controller(Connector(), upstream, store)
    await store.acquire("default", "alice", "rtc_1", 1, 60)
    await calls.supervise(TENANT, record(deadline=0.0))  # past its deadline at once
    try:
        await until(lambda: len(upstream.hangups) >= 3)
        assert await store.user_calls("default", "alice") == ["rtc_1"]  # not over yet

        await until(lambda: calls.held("default") == [], seconds=10)
    finally:
        await calls.aclose()
    assert len(upstream.hangups) == 5
    assert await store.user_calls("default", "alice") == []
    assert await store.record("default", "rtc_1") is None


async def test_a_sideband_that_cannot_be_joined_ends_the_call() -> None:
    upstream = Upstream()
    calls = controller(Connector(refuse=1000), upstream)
    await calls.supervise(TENANT, record())
    try:
        await until(lambda: calls.held("default") == [])
    finally:
        await calls.aclose()
    assert upstream.hangups == ["rtc_1"]


async def test_a_sideband_that_drops_is_joined_again_and_keeps_reverting() -> None:
    connector = Connector()
    calls = controller(connector, Upstream())
    await calls.supervise(TENANT, record())
    try:
        await until(lambda: len(connector.lines) == 1)
        connector.lines[0].queue.put_nowait(None)  # dropped; the call goes on
        await until(lambda: len(connector.lines) == 2)
        update = {"type": "session.updated", "session": {"instructions": "mine"}}
        connector.lines[1].queue.put_nowait(json.dumps(update))
        await until(lambda: bool(connector.lines[1].sent))
    finally:
        await calls.aclose()
    assert connector.lines[1].sent[0]["session"]["instructions"] == "Policy."


async def test_a_call_gone_upstream_is_settled_without_a_hangup() -> None:
    upstream, store = Upstream(), MemoryCallStore()
    calls = controller(Connector(gone=True), upstream, store)
    await store.acquire("default", "alice", "rtc_1", 1, 60)
    await calls.supervise(TENANT, record())
    try:
        await until(lambda: calls.held("default") == [])
    finally:
        await calls.aclose()
    assert upstream.hangups == []
    assert await store.user_calls("default", "alice") == []


async def test_a_memory_store_has_nobody_to_hand_over_to_so_stopping_hangs_up() -> None:
    upstream = Upstream()
    calls = controller(Connector(), upstream)
    await calls.supervise(TENANT, record())
    await calls.aclose()
    assert upstream.hangups == ["rtc_1"]


async def test_a_shared_store_hands_calls_over_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    upstream, store = Upstream(), MemoryCallStore()
    monkeypatch.setattr(MemoryCallStore, "shared", property(lambda self: True))
    calls = controller(Connector(), upstream, store)
    await calls.supervise(TENANT, record())
    await calls.aclose()

    assert upstream.hangups == []
    claimed = await store.claim_orphans("default", "next", 10.0, 10)
    assert [r.call_id for r in claimed] == ["rtc_1"]


async def test_one_scheduler_supervises_every_call() -> None:
    connector = Connector()
    calls = controller(connector, Upstream())
    for n in range(50):
        await calls.supervise(TENANT, record(f"rtc_{n}"))
    try:
        await until(lambda: len(connector.lines) == 50)
        names = sorted(t.get_name() for t in asyncio.all_tasks())
        # One reader per call (a socket needs one), one scheduler, one event listener.
        assert names.count("calls scheduler") == 1
        assert sum(name.startswith("call rtc_") for name in names) == 50
    finally:
        await calls.aclose()


async def test_ended_calls_leave_the_deadline_heap() -> None:
    """Not only at their deadline (up to an hour later): the heap holds no more ended
    calls than calls held, and none once the calls have ended."""
    connector = Connector()
    calls = controller(connector, Upstream())
    for n in range(4):
        await calls.supervise(TENANT, record(f"rtc_{n}"))
    try:
        await until(lambda: len(connector.lines) == 4)
        assert calls.scheduled("default") == ["rtc_0", "rtc_1", "rtc_2", "rtc_3"]
        connector.gone = True  # a new join says the call is over
        for line in connector.lines[:3]:
            await line.close()
        await until(lambda: len(calls.held("default")) == 1)
        assert calls.scheduled("default") == calls.held("default")

        await connector.lines[3].close()
        await until(lambda: calls.held("default") == [])
        assert calls.scheduled("default") == []
    finally:
        await calls.aclose()


def test_an_outage_is_one_line_per_cause_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    warn = Throttled(logging.getLogger("test.throttled"), interval=60.0)
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            warn.warning("heartbeat", "store unavailable")
        warn.warning("usage", "usage not metered")
    assert [r.getMessage() for r in caplog.records] == [
        "store unavailable",
        "usage not metered",
    ]
