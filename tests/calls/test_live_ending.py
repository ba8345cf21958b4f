"""GPT-Live sessions that cannot be ended on their sideband are ended over REST
(`POST /live/sessions/{id}/hangup`): a sideband that cannot be joined past the re-join
grace, the deadline while the sideband is down, an admin's close of a session nobody
holds (its supervisor died before another adopted it), and a `session.close` that was
never answered."""

from __future__ import annotations

import json

import pytest

from service.calls import ending
from service.calls.store_memory import MemoryCallStore
from tests.calls.doubles import TENANT, Connector, Upstream, controller, record
from tests.eventually import eventually


async def test_a_live_session_whose_sideband_cannot_be_joined_is_hung_up_over_rest() -> None:
    upstream = Upstream()
    calls = controller(Connector(refuse=1000), upstream)
    await calls.supervise(TENANT, record("live_1", kind="live"))
    try:
        await eventually(lambda: calls.held("default") == [], what="the session ended")
    finally:
        await calls.aclose()
    assert upstream.live_hangups == ["live_1"]
    assert upstream.hangups == []


async def test_a_live_session_due_while_its_sideband_is_down_is_hung_up_over_rest() -> None:
    upstream = Upstream()
    # Re-joined for a minute: the deadline comes first.
    calls = controller(Connector(refuse=1000), upstream, rejoin_seconds=60.0)
    await calls.supervise(TENANT, record("live_1", kind="live", deadline=0.0))
    try:
        await eventually(lambda: calls.held("default") == [], what="the session ended")
    finally:
        await calls.aclose()
    assert upstream.live_hangups == ["live_1"]


async def test_an_admin_close_of_a_live_session_nobody_holds_is_a_rest_hangup() -> None:
    upstream, store = Upstream(), MemoryCallStore()
    # Its supervisor died before any replica adopted it: the record is all there is.
    await store.supervise(record("live_1", kind="live"), "dead-replica", 60.0)
    other = controller(Connector(), upstream, store)
    try:
        await other.hangup(TENANT, "live_1", "admin")
    finally:
        await other.aclose()
    assert upstream.live_hangups == ["live_1"]


async def test_a_session_close_never_answered_is_followed_by_a_rest_hangup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ending, "LIVE_CLOSE_GRACE", 0.05)
    connector, upstream = Connector(), Upstream()
    calls = controller(connector, upstream)
    await calls.supervise(TENANT, record("live_1", kind="live"))
    try:
        await eventually(lambda: len(connector.lines) == 1, what="joined")
        await calls.hangup(TENANT, "live_1", "admin")
        # Sent on the sideband; the path it took is dead, so no `session.closed` comes.
        assert connector.lines[0].sent == [{"type": "session.close"}]
        await eventually(lambda: upstream.live_hangups == ["live_1"], what="the REST hangup")
    finally:
        await calls.aclose()


async def test_a_session_close_answered_needs_no_rest_hangup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ending, "LIVE_CLOSE_GRACE", 0.05)
    connector, upstream = Connector(), Upstream()
    calls = controller(connector, upstream)
    await calls.supervise(TENANT, record("live_1", kind="live"))
    try:
        await eventually(lambda: len(connector.lines) == 1, what="joined")
        await calls.hangup(TENANT, "live_1", "admin")
        closed = {"type": "session.closed", "reason": "close_requested", "usage": {"seconds": 1}}
        connector.lines[0].queue.put_nowait(json.dumps(closed))
        await eventually(lambda: calls.held("default") == [], what="the session settled")
    finally:
        await calls.aclose()
    assert upstream.live_hangups == []
