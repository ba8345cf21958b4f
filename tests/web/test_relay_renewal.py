"""web.relay's server-event pump (`_down`): the relay's slot is renewed on a schedule of
its own, however busy the call is (a lapsed slot would let a second relay claim it)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.websockets import WebSocketState

from service.policy.parse import parse_policy
from service.relay.hub import Relay
from service.relay.policing import RelayPolicy
from service.web import relay as web_relay


class Browser:
    client_state = application_state = WebSocketState.CONNECTED

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str | None] | None = None

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason)


class Hub:
    def __init__(self) -> None:
        self.renewals = 0

    async def renew(self, relay: Relay) -> None:
        self.renewals += 1


async def test_a_busy_relay_renews_its_slot_on_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_relay, "CLAIM_SECONDS", 0.3)  # renewed every 0.1 s
    browser, hub = Browser(), Hub()
    relay = Relay("acme", "rtc_1", "replica-a:1")
    policy = RelayPolicy(parse_policy({"roles": {"reader": {}}}), "reader")
    pump = asyncio.create_task(web_relay._down(browser, hub, relay, policy))  # type: ignore[arg-type]

    # An event every 10 ms for 0.6 s: the queue is never idle for a whole renewal period.
    for n in range(60):
        relay.deliver(f'{{"type":"response.output_audio_transcript.delta","n":{n}}}')
        await asyncio.sleep(0.01)
    relay.deliver(None)
    await asyncio.wait_for(pump, 2.0)

    assert len(browser.sent) == 60
    assert browser.closed == (1000, "call ended")
    assert hub.renewals >= 3  # 0.6 s at one per 0.1 s, with room for a loaded machine
