"""The fake's Realtime calls (service.fake.calls): what a long-running fake remembers is
bounded, oldest forgotten first, as fake.live forgets ended sessions."""

from __future__ import annotations

from service.clock import ManualClock
from service.fake.calls import KEPT_ENDED, KEPT_EVENTS, KEPT_REVERTS, FakeCalls
from service.fake.live import FakeLiveSessions


def test_ended_calls_are_remembered_up_to_a_bound() -> None:
    calls = FakeCalls()
    ids = [calls.create({}) for _ in range(KEPT_ENDED + 3)]

    for call_id in ids:
        calls.hangup(call_id)

    assert calls.calls == {}
    assert calls.hung_up == ids[3:]


def test_the_brokers_sideband_events_and_revert_times_are_bounded() -> None:
    calls = FakeCalls()
    call_id = calls.create({})

    for n in range(KEPT_REVERTS + 3):
        # A client's session.update, then the broker's revert on the sideband.
        calls.receive(call_id, {"type": "session.update", "session": {"instructions": "x"}})
        calls.receive(call_id, {"type": "session.update", "session": {"n": n}}, sideband=True)

    assert len(calls.revert_ms) == KEPT_REVERTS
    assert len(calls.sideband_events) == KEPT_EVENTS
    assert calls.sideband_events[-1]["session"] == {"n": KEPT_REVERTS + 2}
    assert calls.sideband_events[0]["session"] == {"n": KEPT_REVERTS + 3 - KEPT_EVENTS}


def test_ended_live_sessions_are_remembered_up_to_the_same_bound() -> None:
    sessions = FakeLiveSessions(clock=ManualClock())
    ids = [sessions.create({}) for _ in range(KEPT_ENDED + 3)]

    for session_id in ids:
        sessions.close(session_id, "close_requested")

    assert sessions.sessions == {}
    assert list(sessions.closed) == ids[3:]
