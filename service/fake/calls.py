"""The fake upstream's WebRTC calls: POST /realtime/calls, hangup, and the sideband
WebSocket (`/realtime?call_id=...`), so that call control runs in dev mode and tests.

A call's "browser" is simulated: `FakeCalls.receive(call_id, event)` is what the
client's data channel would send (tests call it directly, or through the fake-only
route `POST /v1/_fake/realtime/calls/{call_id}/events` when the fake runs as its own
process; `GET /v1/_fake/realtime/calls/{call_id}` shows a call's session and how many
sidebands it has, `POST .../drop_sidebands` closes them while the call goes on, and
`GET /v1/_fake/realtime/hangups` lists the calls hung up). A sideband asked for a call
that does not exist is refused with HTTP 404. Every
`session.update` (client or sideband) is merged into the call's session
and answered with `session.updated` carrying the full session; `response.create` is
answered with a `response.done` carrying `FAKE_USAGE`. Hangup ends every sideband.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from service.calls.sdp import answer_for, check_offer, parse_multipart
from service.errors import InvalidValue
from service.fake import webrtc
from service.fake.events import Event, attach_sideband, new_line, put
from service.fake.events import merge as _merge
from service.fake.events import new_event as _event
from service.fake.validate import Refusal, Shape

Handler = Callable[[Request], Awaitable[Response]]
# Shaped like OpenAI's `response.done` usage, with its proportions (a short spoken turn:
# instructions and history as text, part of it cached, audio at 10 tokens a second in and
# 20 out; the transcript as output text).
FAKE_USAGE: dict[str, Any] = {
    "total_tokens": 100,
    "input_tokens": 40,
    "output_tokens": 60,
    "input_token_details": {
        "text_tokens": 10,
        "audio_tokens": 30,
        "image_tokens": 0,
        "cached_tokens": 8,
        "cached_tokens_details": {"text_tokens": 6, "audio_tokens": 2, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 15, "audio_tokens": 45},
}
# A test (or the benchmark) may ask for a response with usage of its own: a fake-only
# `usage` key on the `response.create` it sends through `/v1/_fake/.../events`.
FAKE_USAGE_KEY = "usage"
TRANSCRIPT = ("Hello", " from", " the fake", " upstream.")
# Secrets whose session a later call may start with (oldest forgotten first).
MINTED_KEPT = 1024
# What a long-running fake remembers for tests and the benchmark to look at, oldest
# forgotten first (here and in fake.live): ended calls and sessions, the broker's
# sideband events, revert times.
KEPT_ENDED = 10_000
KEPT_EVENTS = 1000
KEPT_REVERTS = 10_000
# The per-response overrides a `response.created` shows, as OpenAI's response object does.
RESPONSE_ECHOED = ("instructions", "tools", "audio", "output_modalities", "max_output_tokens")


@dataclass
class FakeCall:
    id: str
    session: dict[str, Any]
    lines: list[asyncio.Queue[Event | None]] = field(default_factory=list)
    # When a client's session.update last arrived (monotonic), until the sideband answers.
    overridden_at: float | None = None
    # The browser's data channels (service.fake.webrtc): each gets every event emitted.
    channels: list[Callable[[Event], None]] = field(default_factory=list)
    closers: list[Callable[[], object]] = field(default_factory=list)


class FakeCalls:
    """The fake's live calls and their sideband lines (one queue per listener)."""

    def __init__(self) -> None:
        self.calls: dict[str, FakeCall] = {}
        # Bounded lists (`keep_last`), not deques: tests compare them with lists.
        self.hung_up: list[str] = []
        self.sideband_events: list[Event] = []
        # Milliseconds from a client's session.update to the sideband's next one (the
        # broker's revert), for the benchmark of held calls (bench/calls.py).
        self.revert_ms: list[float] = []
        # Sessions of the secrets this fake minted (GA): a call placed with one starts with it.
        self.minted: dict[str, dict[str, Any]] = {}
        # Every secret this fake minted, with its `expires_at`: what places a call besides
        # the key, as at OpenAI. Both are bounded (oldest forgotten first).
        self.secrets: dict[str, float] = {}

    def remember(
        self, secret: str, expires_at: float, session: dict[str, Any] | None = None
    ) -> None:
        """A client secret this fake minted (and, GA, the session it was minted with)."""
        self.secrets[secret] = expires_at
        if len(self.secrets) > MINTED_KEPT:
            del self.secrets[next(iter(self.secrets))]
        if session is not None:
            self.minted[secret] = session
            if len(self.minted) > MINTED_KEPT:
                del self.minted[next(iter(self.minted))]

    def secret_valid(self, secret: str, now: float) -> bool:
        expires_at = self.secrets.get(secret)
        return expires_at is not None and now < expires_at

    def create(self, session: dict[str, Any]) -> str:
        call_id = "rtc_" + secrets.token_hex(12)
        full = {"object": "realtime.session", "id": "sess_" + secrets.token_hex(8), **session}
        full.setdefault("type", "realtime")
        self.calls[call_id] = FakeCall(call_id, full)
        return call_id

    def hangup(self, call_id: str) -> bool:
        call = self.calls.pop(call_id, None)
        if call is None:
            return False
        self.hung_up.append(call_id)
        keep_last(self.hung_up, KEPT_ENDED)
        for line in call.lines:
            put(line, None)
        for close in call.closers:
            close()
        return True

    def attach_channel(self, call_id: str, deliver: Callable[[Event], None]) -> None:
        """The browser's data channel opened: it sees the session, then every event."""
        call = self.calls.get(call_id)
        if call is not None:
            call.channels.append(deliver)
            deliver(_event("session.created", session=call.session))

    def on_hangup(self, call_id: str, close: Callable[[], object]) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.closers.append(close)

    def open_line(self, call_id: str) -> asyncio.Queue[Event | None] | None:
        """A new sideband listener (primed with `session.created`); None if no such call."""
        call = self.calls.get(call_id)
        if call is None:
            return None
        line = new_line()
        call.lines.append(line)
        put(line, _event("session.created", session=call.session))
        return line

    def drop_lines(self, call_id: str) -> bool:
        """Close every sideband of the call, which goes on (a network drop)."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        for line in call.lines:
            put(line, None)
        return True

    def close_line(self, call_id: str, line: asyncio.Queue[Event | None]) -> None:
        call = self.calls.get(call_id)
        if call is not None and line in call.lines:
            call.lines.remove(line)

    def receive(self, call_id: str, event: Event, *, sideband: bool = False) -> None:
        """A client event from the browser (or, `sideband=True`, from the broker)."""
        call = self.calls.get(call_id)
        if call is None:
            return
        kind = event.get("type")
        if sideband:
            self.sideband_events.append(event)
            keep_last(self.sideband_events, KEPT_EVENTS)
            if kind == "session.update" and call.overridden_at is not None:
                self.revert_ms.append((time.monotonic() - call.overridden_at) * 1000)
                keep_last(self.revert_ms, KEPT_REVERTS)
                call.overridden_at = None
        elif kind == "session.update":
            call.overridden_at = time.monotonic()
        if kind == "session.update" and isinstance(event.get("session"), dict):
            _merge(call.session, event["session"])
            self._emit(call, _event("session.updated", session=call.session))
        elif kind == "response.create":
            given = event.get("response")
            usage = event.get(FAKE_USAGE_KEY) if not sideband else None
            self.respond(
                call,
                given if isinstance(given, dict) else {},
                usage=usage if isinstance(usage, dict) else None,
            )
        elif kind == "response.cancel":
            self._emit(call, _event("response.cancelled", response_id=event.get("response_id")))

    def respond(
        self, call: FakeCall, overrides: dict[str, Any], *, usage: dict[str, Any] | None = None
    ) -> None:
        """A whole response, as OpenAI streams one: created, transcript deltas, the end
        of its audio, done with usage."""
        response = {
            "object": "realtime.response",
            "id": "resp_" + secrets.token_hex(8),
            "status": "in_progress",
            **{k: v for k, v in overrides.items() if k in RESPONSE_ECHOED},
        }
        ids = {"response_id": response["id"], "item_id": "item_" + secrets.token_hex(8)}
        self._emit(call, _event("response.created", response=response))
        for piece in TRANSCRIPT:
            self._emit(call, _event("response.output_audio_transcript.delta", **ids, delta=piece))
        transcript = "".join(TRANSCRIPT)
        self._emit(
            call, _event("response.output_audio_transcript.done", **ids, transcript=transcript)
        )
        self._emit(call, _event("response.output_audio.done", **ids))
        done = {**response, "status": "completed", "usage": usage or FAKE_USAGE}
        self._emit(call, _event("response.done", response=done))

    def speech(self, call_id: str, *, started: bool) -> None:
        """Voice activity on the browser's microphone (service.fake.webrtc): the end of a
        turn commits the audio and gets a response, as server VAD does."""
        call = self.calls.get(call_id)
        if call is None:
            return
        item = {"item_id": "item_" + secrets.token_hex(8)}
        if started:
            self._emit(call, _event("input_audio_buffer.speech_started", **item))
            return
        self._emit(call, _event("input_audio_buffer.speech_stopped", **item))
        self._emit(call, _event("input_audio_buffer.committed", **item))
        self.respond(call, {})

    def _emit(self, call: FakeCall, event: Event) -> None:
        for line in call.lines:
            put(line, json.loads(json.dumps(event)))
        for deliver in call.channels:
            deliver(json.loads(json.dumps(event)))


def keep_last(items: list[Any], kept: int) -> None:
    """Forget the oldest of `items` beyond the last `kept`."""
    if len(items) > kept:
        del items[: len(items) - kept]


def fake_call_routes(
    calls: FakeCalls,
    *,
    endpoint: Callable[[Handler], Handler],
    session_shape: Shape,
    authorized: Callable[[str, str], bool],
    secret_endpoint: Callable[[Handler], Handler] | None = None,
) -> list[BaseRoute]:
    """The routes, wrapped by the fake's `endpoint` (auth, call counting), or, for placing
    a call (which OpenAI also opens to a client secret it minted), by `secret_endpoint`.
    `session_shape` validates a GA session; `authorized(authorization header, api-key
    header)` guards the WebSocket."""

    async def create(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        try:
            if content_type.startswith("multipart/form-data"):
                parts = parse_multipart(content_type, body)
                if "sdp" not in parts:
                    raise InvalidValue("Missing required parameter: 'sdp'.", param="sdp")
                offer = check_offer(parts["sdp"])
                session = json.loads(parts["session"]) if "session" in parts else {}
            elif content_type.startswith("application/sdp"):
                offer, session = check_offer(body), {}
            else:
                raise InvalidValue("Unsupported content type.", param=None)
        except (InvalidValue, ValueError) as exc:
            message = exc.message if isinstance(exc, InvalidValue) else "Invalid session JSON."
            raise Refusal(400, message, param="sdp", code="invalid_value") from None
        if not isinstance(session, dict):
            raise Refusal(400, "Invalid 'session': expected an object.", param="session")
        session_shape({"session": session} if session else {}, "")
        bearer = request.headers.get("authorization", "").partition(" ")[2].strip()
        if not session and bearer in calls.minted:
            session = {k: v for k, v in calls.minted[bearer].items() if k != "client_secret"}
        call_id = calls.create(session)
        if webrtc.available() and "a=fingerprint:" in offer and "a=ice-ufrag:" in offer:
            # A real peer's offer (a browser, aiortc): a real answer, and media.
            sdp = await webrtc.answer(calls, call_id, offer)
        else:
            sdp = answer_for(offer)
        return Response(
            sdp,
            status_code=201,
            media_type="application/sdp",
            headers={"Location": f"/v1/realtime/calls/{call_id}"},
        )

    async def hangup(request: Request) -> Response:
        if not calls.hangup(request.path_params["call_id"]):
            raise Refusal(404, "No call with that id.", code="not_found")
        return Response(status_code=200)

    async def client_event(request: Request) -> Response:
        try:
            event = json.loads(await request.body())
        except ValueError:
            event = None
        if not isinstance(event, dict) or request.path_params["call_id"] not in calls.calls:
            raise Refusal(404, "No call with that id, or not an event.", code="not_found")
        calls.receive(request.path_params["call_id"], event)
        return JSONResponse({"ok": True})

    async def show(request: Request) -> Response:
        call = calls.calls.get(request.path_params["call_id"])
        if call is None:
            raise Refusal(404, "No call with that id.", code="not_found")
        return JSONResponse({"id": call.id, "session": call.session, "sidebands": len(call.lines)})

    async def drop(request: Request) -> Response:
        if not calls.drop_lines(request.path_params["call_id"]):
            raise Refusal(404, "No call with that id.", code="not_found")
        return JSONResponse({"ok": True})

    async def hangups(request: Request) -> Response:
        return JSONResponse({"data": list(calls.hung_up)})

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "calls": len(calls.calls),
                "sidebands": sum(len(call.lines) for call in calls.calls.values()),
                "hung_up": len(calls.hung_up),
                "revert_ms": calls.revert_ms,
            }
        )

    async def sideband(websocket: WebSocket) -> None:
        await attach_sideband(
            websocket, calls, websocket.query_params.get("call_id", ""), authorized
        )

    return [
        Route("/v1/realtime/calls", (secret_endpoint or endpoint)(create), methods=["POST"]),
        Route("/v1/realtime/calls/{call_id}/hangup", endpoint(hangup), methods=["POST"]),
        Route(
            "/v1/_fake/realtime/calls/{call_id}/events", endpoint(client_event), methods=["POST"]
        ),
        Route("/v1/_fake/realtime/calls/{call_id}", endpoint(show), methods=["GET"]),
        Route(
            "/v1/_fake/realtime/calls/{call_id}/drop_sidebands", endpoint(drop), methods=["POST"]
        ),
        Route("/v1/_fake/realtime/hangups", endpoint(hangups), methods=["GET"]),
        Route("/v1/_fake/realtime/stats", endpoint(stats), methods=["GET"]),
        WebSocketRoute("/v1/realtime", sideband),
    ]
