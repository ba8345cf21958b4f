"""A GPT-Live session's event path (pure) and its supervision record."""

from __future__ import annotations

import json

import pytest

from service.calls.model import CallPolicy, Supervision
from service.calls.state import LiveState
from service.fake.calls import FAKE_USAGE

POLICY = CallPolicy("reader", {}, daily_token_budget=1000, daily_minute_budget=5)


def usage(kind: str, seconds: float) -> str:
    return json.dumps({"type": kind, "event_id": "e", "usage": {"seconds": seconds}})


def completed(kind: str = "response.completed") -> str:
    nested = {"type": kind, "response": {"id": "resp_1", "usage": FAKE_USAGE}}
    return json.dumps({"type": "response.event", "event_id": "e", "event": nested})


def test_cumulative_seconds_are_counted_once() -> None:
    state = LiveState(POLICY)
    assert not state.has_pending()
    for seconds in (10, 10, 25.5, 20):  # a repeated or lower total adds nothing
        assert state.on_text(usage("session.usage.updated", seconds)) is None
    assert state.has_pending()
    # Wall-clock time does not count: the upstream's report does.
    assert state.seconds_due(elapsed=999.0) == 25.5
    state.metered(0, 25.5)
    assert not state.has_pending()
    state.on_text(usage("session.closed", 30))
    assert state.seconds_due(0.0) == 4.5
    assert state.over


def test_an_adopted_session_counts_from_its_first_report() -> None:
    state = LiveState(POLICY, adopted=True)
    state.on_text(usage("session.usage.updated", 300))  # metered by the previous owner
    assert state.seconds_due(1.0) == 0
    state.on_text(usage("session.usage.updated", 312))
    assert state.seconds_due(1.0) == 12


def test_delegated_responses_tokens_are_counted() -> None:
    state = LiveState(POLICY)
    state.on_text(completed("response.created"))
    assert state.pending_tokens == 0
    state.on_text(completed())
    state.on_text(completed())
    assert state.pending_tokens == 2 * FAKE_USAGE["total_tokens"]
    state.metered(100, 0.0)
    assert state.pending_tokens == 100


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        json.dumps({"type": "session.usage.updated", "usage": {"seconds": -1}}),
        json.dumps({"type": "session.usage.updated", "usage": {"seconds": True}}),
        json.dumps({"type": "session.usage.updated", "usage": "x"}),
        json.dumps({"type": "response.event", "event": "x"}),
        json.dumps({"type": "session.update", "session": {"instructions": "x"}}),
    ],
)
def test_anything_else_is_ignored(text: str) -> None:
    state = LiveState(POLICY)
    assert state.on_text(text) is None
    assert not state.has_pending()
    assert not state.over


def test_the_record_carries_its_kind_and_old_records_are_realtime() -> None:
    record = Supervision("t", "u", "live_1", POLICY, 1.0, 61.0, kind="live")
    assert Supervision.decode(record.encode()) == record
    realtime = Supervision("t", "u", "rtc_1", POLICY, 1.0, 61.0)
    assert "kind" not in json.loads(realtime.encode())
    assert Supervision.decode(realtime.encode()).kind == "realtime"
    bad = json.loads(record.encode()) | {"kind": "sip"}
    with pytest.raises(ValueError, match="sip"):
        Supervision.decode(json.dumps(bad))
