"""Placing a GPT-Live session, cancelled at each of its awaits: nothing is left behind, and
a session upstream already created is closed on its sideband (GPT-Live has no REST
hangup). The world of tests/calls/test_placing.py."""

from __future__ import annotations

from service.live.placing import place_live_session
from tests.calls.conftest import OFFER
from tests.calls.test_placing import placing_world

BODY = {"session": {"model": "gpt-live-1"}, "transport": {"type": "webrtc", "sdp": OFFER}}


async def test_a_live_session_cancelled_at_any_await_leaves_nothing() -> None:
    async with placing_world() as world:
        steps = await world.cancelled_at_each_await(
            lambda: place_live_session(world.broker, world.controller, world.identity, BODY)
        )

        assert steps > 3
        assert len(world.upstream.created) > 1
        assert world.controller.held("default") == [world.upstream.created[-1]]
