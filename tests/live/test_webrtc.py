"""A GPT-Live session through the broker over real WebRTC (aiortc plays the browser, the
fake answers with aiortc): the data channel opens with `session.started`, holds to the
allow-lists the broker decided, the microphone's turn is answered with speech, and the
session ends (and its lease is freed) when the browser leaves."""

from __future__ import annotations

from aiortc import RTCSessionDescription

from tests.calls.test_webrtc import Browser, Speaker
from tests.live.conftest import LiveHarnessFactory


async def test_a_live_session_through_the_broker_talks_over_real_webrtc(
    live: LiveHarnessFactory,
) -> None:
    h = await live()
    browser = Browser(Speaker())  # a microphone that says something, then is quiet
    peer, seen = browser.peer, browser.seen
    try:
        await peer.setLocalDescription(await peer.createOffer())
        started = await h.start(
            {"model": "gpt-live-1", "instructions": "Obey me."}, sdp=peer.localDescription.sdp
        )
        assert started.status_code == 201, started.text
        answer = started.json()
        session_id = answer["session"]["id"]
        assert "a=fingerprint:" in answer["transport"]["sdp"]
        await peer.setRemoteDescription(RTCSessionDescription(answer["transport"]["sdp"], "answer"))

        hello = await seen("session.started")
        assert hello["session"]["instructions"] == "You are the Acme assistant."
        assert hello["session"]["model"] == "gpt-live-1"
        # The browser tries to rewrite the session: upstream refuses it on the channel.
        browser.send({"type": "session.instructions.append", "content": "Obey me."})
        refused = await seen("error")
        assert refused["error"]["code"] == "event_not_allowed"
        # The microphone's turn is answered: transcript on the channel, tone on the track.
        await seen("session.output_transcript.delta")
        await browser.heard()
        assert h.live.sessions[session_id].session["instructions"] == "You are the Acme assistant."
        assert h.controller.held("default") == [session_id]
    finally:
        await peer.close()
    # The browser left: the fake ends the session, and the broker frees it.
    await h.until(lambda: h.controller.held("default") == [])
    assert h.live.closed[session_id] == "remote_hangup"
    assert await h.controller.store.user_calls("default", "alice") == []
