"""CallController against stubs: hangups retried until upstream takes them (and an
admin's refused one answered the same by every replica), a sideband that cannot be joined
ends the call, a handed-over call is not hung up, one scheduler for every call, background
tasks that end are started again, side tasks that fail are logged, sideband losses and
call ends counted as what they are."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from service.calls.controller import CallController
from service.calls.ending import HANGUP_ATTEMPTS
from service.calls.model import CallPolicy, Supervision
from service.calls.store import EventHandler, Reconnected
from service.calls.store_memory import MemoryCallStore
from service.calls.supervised import CallMetrics, CallOptions, IsRevoked
from service.config.settings import TenantSettings
from service.errors import NotFound, UpstreamError, UpstreamUnavailable
from service.logs import Throttled
from tests.calls.doubles import TENANT, Line
from tests.eventually import eventually, settle


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
        """Refused `failures` times; every call is gone when `failures` is negative."""
        self.hangups.append(call_id)
        if self.failures < 0:
            raise NotFound("No such call.")
        if self.failures:
            self.failures -= 1
            raise UpstreamUnavailable("The upstream is unavailable.")


def record(call_id: str = "rtc_1", deadline: float = 1e12) -> Supervision:
    policy = CallPolicy("reader", {("instructions",): "Policy."})
    return Supervision("default", "alice", call_id, policy, 0.0, deadline)


class Counts(Counter[tuple[str, ...]]):
    """CallMetrics that count what they are told, by (hook, label...)."""

    def call_placed(self, tenant: str, kind: str) -> None:
        self["placed", kind] += 1

    def call_ended(self, tenant: str, reason: str) -> None:
        self["ended", reason] += 1

    def call_adopted(self, tenant: str) -> None:
        self["adopted",] += 1

    def call_reverted(self, tenant: str) -> None:
        self["reverted",] += 1

    def sideband_lost(self, tenant: str) -> None:
        self["sideband_lost",] += 1

    def hangup_failed(self, tenant: str) -> None:
        self["hangup_failed",] += 1

    def lease_renewal_failed(self) -> None:
        self["lease_renewal_failed",] += 1


def controller(
    connector: Connector,
    upstream: Upstream,
    store: MemoryCallStore | None = None,
    *,
    metrics: CallMetrics | None = None,
    is_revoked: IsRevoked | None = None,
    **opts: Any,
) -> CallController:
    options = CallOptions(tick=0.01, lease_ttl=1.0, rejoin_seconds=0.3, **opts)
    return CallController(
        store=store or MemoryCallStore(),
        connector=connector,
        upstreams={"default": upstream},  # type: ignore[dict-item]
        tenants=[TENANT],
        options=options,
        metrics=metrics,
        is_revoked=is_revoked,
    )


async def until(check: Any, seconds: float = 3.0) -> None:
    await eventually(check, seconds=seconds)


def audited(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) == action]


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


async def test_an_admin_hangup_upstream_refuses_is_a_502_on_every_replica_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream, store = Upstream(failures=1000), MemoryCallStore()
    holder = controller(Connector(), upstream, store)
    other = controller(Connector(), upstream, store)  # another replica, on the same store
    await store.acquire("default", "alice", "rtc_1", 1, 60)
    await holder.supervise(TENANT, record())
    try:
        with caplog.at_level(logging.INFO, logger="service.audit"):
            for replica in (holder, other):
                with pytest.raises(UpstreamError) as refused:
                    await replica.hangup(TENANT, "rtc_1", "admin")
                assert (refused.value.status, refused.value.code) == (502, "upstream_error")
            # Ending, not ended: the scheduler keeps trying, the lease and the call stay.
            tried = len(upstream.hangups)
            await until(lambda: len(upstream.hangups) > tried)
            assert holder.held("default") == ["rtc_1"]
            assert await store.user_calls("default", "alice") == ["rtc_1"]
            assert audited(caplog, "call.hung_up") == []

            upstream.failures = 0
            await until(lambda: holder.held("default") == [], seconds=10)
    finally:
        await holder.aclose()
        await other.aclose()
    assert [getattr(r, "reason", None) for r in audited(caplog, "call.hung_up")] == ["admin"]
    assert await store.user_calls("default", "alice") == []


async def test_an_admin_hangup_of_a_call_upstream_no_longer_has_is_a_404_everywhere() -> None:
    upstream, store = Upstream(), MemoryCallStore()
    connector = Connector()
    holder = controller(connector, upstream, store)
    other = controller(Connector(), upstream, store)
    for call_id in ("rtc_1", "rtc_2"):
        await holder.supervise(TENANT, record(call_id))
    try:
        await until(lambda: len(connector.lines) == 2)
        upstream.failures = -1  # gone: every hangup answers 404 from now on
        for replica, call_id in ((holder, "rtc_1"), (other, "rtc_2")):
            with pytest.raises(NotFound):
                await replica.hangup(TENANT, call_id, "admin")
    finally:
        await holder.aclose()
        await other.aclose()


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


async def test_a_call_being_ended_is_hung_up_at_a_stop_not_handed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upstream, store = Upstream(failures=HANGUP_ATTEMPTS), MemoryCallStore()
    monkeypatch.setattr(MemoryCallStore, "shared", property(lambda self: True))
    calls = controller(Connector(), upstream, store)
    await store.acquire("default", "alice", "rtc_1", 1, 60)
    await calls.supervise(TENANT, record(deadline=0.0))
    await until(lambda: len(upstream.hangups) == HANGUP_ATTEMPTS)  # a round refused

    await calls.aclose()

    assert len(upstream.hangups) == HANGUP_ATTEMPTS + 1
    assert await store.claim_orphans("default", "next", 10.0, 10) == []
    assert await store.user_calls("default", "alice") == []


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


# --- background and side tasks -------------------------------------------------------

GARBAGE: list[Any] = [
    {"type": 5},
    {"type": "call.hangup", "tenant": "default", "call_id": 7},
    {"type": "call.hangup", "tenant": "default", "call_id": ["rtc_1"]},
    {"type": "user.revoked", "tenant": "default", "user_id": {"id": "alice"}},
    {"type": "relay.attach", "tenant": "default", "call_id": "rtc_1", "relay": 3},
    {"type": ["user.revoked"], "tenant": "default"},
    {"type": "user.revoked", "tenant": None, "user_id": "alice"},
    [1, 2, 3],
    "user.revoked",
    None,
]


async def test_garbage_on_the_channel_leaves_revocations_crossing_replicas() -> None:
    upstream, store, connector = Upstream(), MemoryCallStore(), Connector()
    holder = controller(connector, upstream, store)
    other = controller(Connector(), upstream, store)
    await holder.supervise(TENANT, record())
    try:
        await until(lambda: len(connector.lines) == 1)
        for event in GARBAGE:
            await store.publish(event)
        # The memory store's listener takes all of it at its next turn; a hangup it set
        # off would have reached upstream a turn or two later.
        await settle()
        assert holder.held("default") == ["rtc_1"]  # nothing in it ended the call
        assert upstream.hangups == []

        await other.hangup_user(TENANT, "alice", "user_revoked")
        await until(lambda: holder.held("default") == [])
    finally:
        await holder.aclose()
        await other.aclose()
    assert upstream.hangups == ["rtc_1"]


class EndsOnce(MemoryCallStore):
    """A store whose first `listen` raises (or returns at once); later ones work."""

    def __init__(self, first: str) -> None:
        super().__init__()
        self.first, self.listens = first, 0

    async def listen(self, handler: EventHandler, reconnected: Reconnected, inbox: str) -> None:
        self.listens += 1
        if self.listens == 1:
            if self.first == "raises":
                raise RuntimeError("subscriber bug")
            return
        await super().listen(handler, reconnected, inbox)


@pytest.mark.parametrize("first", ["raises", "returns"])
async def test_an_event_listener_that_ends_is_started_again(
    first: str, caplog: pytest.LogCaptureFixture
) -> None:
    upstream, store = Upstream(), EndsOnce(first)
    holder = controller(Connector(), upstream, store)
    other = controller(Connector(), upstream, store)
    with caplog.at_level(logging.ERROR, logger="service.calls.controller"):
        await holder.supervise(TENANT, record())
        try:
            await until(lambda: store.listens == 2)
            await other.hangup_user(TENANT, "alice", "user_revoked")
            await until(lambda: upstream.hangups == ["rtc_1"])
        finally:
            await holder.aclose()
            await other.aclose()
    [logged] = [r for r in caplog.records if "event listener" in r.getMessage()]
    assert (logged.exc_info is not None) == (first == "raises")


async def test_a_side_task_that_fails_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    asked: list[Sequence[str]] = []

    async def broken_directory(tenant: str, users: Sequence[str]) -> set[str]:
        asked.append(users)
        raise RuntimeError("directory bug")

    calls = controller(Connector(), Upstream(), is_revoked=broken_directory)
    with caplog.at_level(logging.ERROR):
        await calls.supervise(TENANT, record())
        try:
            # Checked when the listener starts, and by the scheduler's backstop.
            await until(lambda: len(asked) >= 2)
            await settle()  # the failed tasks' done callbacks
        finally:
            await calls.aclose()
        gc.collect()
    failed = [r for r in caplog.records if r.name == "service.calls.controller"]
    assert len(failed) == len(asked)
    assert all(r.exc_info is not None and r.exc_info[0] is RuntimeError for r in failed)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


# --- what is counted -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after_the_drop", "lost", "ended"),
    [
        ("joined again", 1, "shutdown"),  # the call went on (ended by the stop below)
        ("gone", 0, "ended_upstream"),  # the call was over: an end, not a loss
        ("unreachable", 1, "sideband_unavailable"),  # hung up for want of a sideband
    ],
)
async def test_a_sideband_that_closed_is_a_loss_only_if_the_call_went_on(
    after_the_drop: str, lost: int, ended: str
) -> None:
    counts, connector = Counts(), Connector()
    calls = controller(connector, Upstream(), metrics=counts)
    await calls.supervise(TENANT, record())
    try:
        await until(lambda: len(connector.lines) == 1)
        connector.gone = after_the_drop == "gone"
        connector.refuse = 1000 if after_the_drop == "unreachable" else 0
        connector.lines[0].queue.put_nowait(None)
        if after_the_drop == "joined again":
            await until(lambda: len(connector.lines) == 2)
        else:
            await until(lambda: calls.held("default") == [])
    finally:
        await calls.aclose()
    assert counts["sideband_lost",] == lost
    assert {k: v for k, v in counts.items() if k[0] in ("placed", "ended")} == {
        ("placed", "realtime"): 1,
        ("ended", ended): 1,
    }


async def test_an_abandoned_call_upstream_will_not_hang_up_is_held_until_it_is_over() -> None:
    # A placement cancelled after upstream made the call: the call is ended here, its
    # record written and kept through heartbeats until upstream takes the hangup.
    upstream, store = Upstream(failures=1000), MemoryCallStore()
    calls = controller(Connector(), upstream, store)
    await store.acquire("default", "alice", "rtc_1", 1, 60)
    try:
        calls.abandon(TENANT, record())
        await until(lambda: len(upstream.hangups) >= 3)
        # Three heartbeats (one a third of the 1 s lease, on the system clock this
        # controller runs on) while upstream keeps refusing.
        await asyncio.sleep(1.2)

        assert calls.held("default") == ["rtc_1"]  # still ending, still held
        assert await store.record("default", "rtc_1") is not None
        upstream.failures = 0
        await until(lambda: calls.held("default") == [], seconds=10)
    finally:
        await calls.aclose()
    assert await store.user_calls("default", "alice") == []
