"""The fake's realtime peer over real WebRTC (aiortc): it answers a browser's offer (ICE,
DTLS, SRTP, BUNDLE/rtcp-mux), accepts the `oai-events` data channel and talks back.

One session, two doors: the data channel is the browser's door to the fake call that
`FakeCalls` (a Realtime call) or `FakeLiveSessions` (a GPT-Live session) keeps, the
sideband the broker's. A client event on the data channel is `receive(call_id, event)`;
every event the call emits goes to both. Audio: while
"talking" (after a response is asked for) the peer sends a tone on its track, otherwise
silence. The call ends (`FakeCalls.hangup`) when the peer connection closes or fails.

aiortc is a dev/test extra (`pip install -e '.[dev]'`): without it the fake answers with a
syntactic SDP, as before, and no media flows.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import json
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

try:
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack
    from av import AudioFrame

    AVAILABLE = True
except ImportError:  # pragma: no cover - the extra is installed by the test command
    AVAILABLE = False

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
TONE_HZ = 440.0
# Voice activity: a frame whose peak (16-bit) passes this is speech; this much quiet ends
# a turn.
SPEECH_LEVEL = 1500
SILENCE_SECONDS = 0.5
# A browser that has not connected by then never will (it left, or cannot reach us): the
# call ends, and the broker frees its lease.
ICE_TIMEOUT = 15.0
# Peer connections of this process, so that they are not collected while a call runs.
_PEERS: set[Any] = set()
_TASKS: set[asyncio.Future[None]] = set()


# The events that start the fake's voice on the audio track.
SPEAKING = ("response.created", "session.output_transcript.delta")


def available() -> bool:
    return AVAILABLE


class Calls(Protocol):
    """The fake's registry of calls (Realtime) or sessions (GPT-Live), seen by the peer."""

    def attach_channel(self, call_id: str, deliver: Callable[[dict[str, Any]], None]) -> None: ...
    def receive(self, call_id: str, event: dict[str, Any], *, sideband: bool = False) -> None: ...
    def speech(self, call_id: str, *, started: bool) -> None: ...
    def hangup(self, call_id: str) -> bool: ...
    def on_hangup(self, call_id: str, close: Callable[[], object]) -> None: ...


class _Voice(MediaStreamTrack):
    """20 ms frames of a tone while the fake "speaks", silence otherwise."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.speaking_until = 0.0
        self._pts = 0
        self._started: float | None = None

    def speak(self, seconds: float) -> None:
        self.speaking_until = asyncio.get_running_loop().time() + seconds

    async def recv(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._started is None:
            self._started = loop.time()
        # Real time: a frame every 20 ms.
        due = self._started + self._pts / SAMPLE_RATE
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        if loop.time() < self.speaking_until:
            samples = bytes(
                b
                for n in range(FRAME_SAMPLES)
                for b in int(
                    8000 * math.sin(2 * math.pi * TONE_HZ * (self._pts + n) / SAMPLE_RATE)
                ).to_bytes(2, "little", signed=True)
            )
        else:
            samples = bytes(2 * FRAME_SAMPLES)
        frame.planes[0].update(samples)
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._pts += FRAME_SAMPLES
        return frame


async def answer(calls: Calls, call_id: str, offer: str) -> str:
    """A real SDP answer to `offer` for the fake call `call_id`."""
    peer = RTCPeerConnection()
    _PEERS.add(peer)
    voice = _Voice()
    peer.addTrack(voice)

    @peer.on("datachannel")
    def on_channel(channel: Any) -> None:
        if channel.label != "oai-events":
            return

        calls.attach_channel(call_id, deliverer(peer, channel, voice))

        @channel.on("message")  # type: ignore[untyped-decorator]
        def on_message(message: object) -> None:
            try:
                event = json.loads(message) if isinstance(message, str) else None
            except ValueError:
                event = None
            if isinstance(event, dict):
                calls.receive(call_id, event)

    @peer.on("track")
    def on_track(track: Any) -> None:
        # The microphone: its level drives the fake's voice activity (speech started, and
        # after SILENCE_SECONDS of quiet, stopped, committed, and a response).
        async def drain() -> None:
            speaking, quiet_since = False, 0.0
            loop = asyncio.get_running_loop()
            try:
                while True:
                    frame = await track.recv()
                    loud = _peak(frame) > SPEECH_LEVEL
                    if loud and not speaking:
                        speaking = True
                        calls.speech(call_id, started=True)
                    if loud:
                        quiet_since = loop.time()
                    elif speaking and loop.time() - quiet_since >= SILENCE_SECONDS:
                        speaking = False
                        calls.speech(call_id, started=False)
            except Exception:
                return

        _TASKS.add(task := asyncio.ensure_future(drain()))
        task.add_done_callback(_TASKS.discard)

    @peer.on("connectionstatechange")
    async def on_state() -> None:
        if peer.connectionState in ("failed", "closed"):
            calls.hangup(call_id)
            _PEERS.discard(peer)
            await peer.close()

    await peer.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await peer.setLocalDescription(await peer.createAnswer())
    sdp: str = peer.localDescription.sdp
    calls.on_hangup(call_id, lambda: asyncio.ensure_future(_close(peer)))

    async def give_up_unless_connected() -> None:
        await asyncio.sleep(ICE_TIMEOUT)
        if peer.connectionState != "connected":
            logger.info("fake call %s: no browser connected; ended", call_id)
            calls.hangup(call_id)

    _TASKS.add(watchdog := asyncio.ensure_future(give_up_unless_connected()))
    watchdog.add_done_callback(_TASKS.discard)
    return sdp


def deliverer(peer: Any, channel: Any, voice: Any) -> Callable[[dict[str, Any]], None]:
    """The call's events onto its data channel while the browser is there. A channel
    still says "open" for a moment after the browser left; a send then fails inside
    aiortc's own task ("Task exception was never retrieved ... Cannot send encrypted
    data, not connected"), so the peer's state is asked too: a browser leaving is a
    normal end, not an error in the log."""

    def deliver(event: dict[str, Any]) -> None:
        if channel.readyState == "open" and peer.connectionState == "connected":
            channel.send(json.dumps(event))
        if event.get("type") in SPEAKING:
            voice.speak(1.0)

    return deliver


def _peak(frame: Any) -> int:
    """The frame's peak sample (16-bit PCM; other formats count as silence)."""
    if frame.format.name != "s16":
        return 0
    samples = array.array("h", bytes(frame.planes[0]))
    return max((abs(s) for s in samples), default=0)


async def _close(peer: Any) -> None:
    _PEERS.discard(peer)
    await peer.close()
