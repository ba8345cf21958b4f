"""The fake upstream's GPT-Live sessions: `POST /v1/live/sessions` (WebRTC: the browser's
offer in, `{session: {id}, transport: {type, sdp}}` out, 201), the REST hangup
(`POST /v1/live/sessions/{id}/hangup`) and the sideband (`/v1/live/sessions/{id}/attach`),
so that the broker's GPT-Live path runs in dev mode and tests
(tests/schemas/openai-live-subset.yaml is what it follows).

One session, two doors, as in service.fake.calls: the browser's data channel and the
sidebands. The data channel is held to the session's `client.data_channel` allow-lists
(an event not allowed is answered with an `error` and has no effect; server events not
allowed are not delivered to it); the sideband is trusted and sees everything.

What the session does: `session.started` on the browser's channel when it opens; at the
end of a spoken turn (voice activity, service.fake.webrtc) output transcript deltas while
the peer "speaks"; `response.create` runs the delegated Responses backend
(`response.event`s, the last a `response.completed` with `FAKE_USAGE`);
`session.instructions.append` adds to the instructions; `session.close` (or the REST
`POST /v1/live/sessions/{id}/hangup`) ends it with `session.closed` (reason
`close_requested`, the final usage). Cumulative usage
(`session.usage.updated`, audio seconds from the fake's clock since the session started)
goes to the sidebands every `usage_interval` seconds while any is attached, and with
every `session.closed`. Fake-only routes under `/v1/_fake/live/...` let a test play the
browser and look inside.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from service.calls.sdp import answer_for
from service.clock import Clock
from service.fake import webrtc
from service.fake.calls import FAKE_USAGE, KEPT_ENDED, KEPT_EVENTS, TRANSCRIPT
from service.fake.events import Event, Line, attach_sideband, merge, new_event, new_line, put
from service.fake.validate import Refusal, Shape

Handler = Callable[[Request], Awaitable[Response]]
DEFAULT_VOICE = "marin"
DEFAULT_INSTRUCTIONS = "You are a helpful voice assistant."


@dataclass
class FakeLiveSession:
    id: str
    session: dict[str, Any]
    started_at: float
    lines: list[Line] = field(default_factory=list)
    channels: list[Callable[[Event], None]] = field(default_factory=list)
    closers: list[Callable[[], object]] = field(default_factory=list)

    def allows_client(self, kind: str) -> bool:
        allowed = _data_channel(self.session).get("allowed_client_events", "all")
        return allowed == "all" or kind in allowed

    def allows_server(self, event: Event) -> bool:
        allowed = _data_channel(self.session).get("allowed_server_events", "all")
        if allowed == "all":
            return True
        kind = event.get("type")
        nested = event.get("event", {}).get("type") if kind == "response.event" else None
        for selector in allowed:
            if isinstance(selector, str) and selector == kind:
                return True
            if (
                isinstance(selector, dict)
                and selector.get("type") == kind
                and (kind != "response.event" or selector.get("response_event") == nested)
            ):
                return True
        return False


class FakeLiveSessions:
    """The fake's Live sessions and their sideband lines (one queue per listener)."""

    def __init__(self, *, clock: Clock, usage_interval: float = 1.0) -> None:
        self.sessions: dict[str, FakeLiveSession] = {}
        # Why each ended session ended (session id → reason), in order; the last
        # KEPT_ENDED (for `GET /v1/_fake/live/sessions/{id}`).
        self.closed: dict[str, str] = {}
        self.sideband_events: deque[Event] = deque(maxlen=KEPT_EVENTS)
        self._clock = clock
        self._usage_interval = usage_interval
        self._ticker: asyncio.Task[None] | None = None

    def create(self, session: dict[str, Any]) -> str:
        session_id = "live_" + secrets.token_hex(12)
        full = {
            "id": session_id,
            "object": "live.session",
            "status": "active",
            "instructions": DEFAULT_INSTRUCTIONS,
            "audio": {"output": {"voice": DEFAULT_VOICE}},
            "delegation": {"type": "client"},
            "input": [],
            "store": False,
        }
        merge(full, json.loads(json.dumps(session)))
        self.sessions[session_id] = FakeLiveSession(session_id, full, self._clock())
        return session_id

    def usage(self, live: FakeLiveSession) -> dict[str, float]:
        return {"seconds": round(max(0.0, self._clock() - live.started_at), 3)}

    # --- the sideband ----------------------------------------------------------------

    def open_line(self, session_id: str) -> Line | None:
        live = self.sessions.get(session_id)
        if live is None:
            return None
        line = new_line()
        live.lines.append(line)
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick())
        return line

    def close_line(self, session_id: str, line: Line) -> None:
        live = self.sessions.get(session_id)
        if live is not None and line in live.lines:
            live.lines.remove(line)

    def drop_lines(self, session_id: str) -> bool:
        """Close every sideband of the session, which goes on (a network drop)."""
        live = self.sessions.get(session_id)
        if live is None:
            return False
        for line in live.lines:
            put(line, None)
        return True

    def report_usage(self, session_id: str) -> bool:
        live = self.sessions.get(session_id)
        if live is None:
            return False
        self._to_sidebands(live, new_event("session.usage.updated", usage=self.usage(live)))
        return True

    async def _tick(self) -> None:
        while any(live.lines for live in self.sessions.values()):
            await asyncio.sleep(self._usage_interval)
            for live in list(self.sessions.values()):
                if live.lines:
                    self.report_usage(live.id)

    # --- events ----------------------------------------------------------------------

    def receive(self, session_id: str, event: Event, *, sideband: bool = False) -> None:
        """A client event from the browser's data channel (or, `sideband=True`, from the
        app's trusted server)."""
        live = self.sessions.get(session_id)
        if live is None:
            return
        kind = event.get("type")
        if sideband:
            self.sideband_events.append(event)
        elif not isinstance(kind, str) or not live.allows_client(kind):
            refusal = f"'{kind}' is not allowed on this data channel."
            self._to_channels(live, _error(event, "event_not_allowed", refusal))
            return
        if kind == "session.close":
            self.close(session_id, "close_requested")
        elif kind == "session.instructions.append" and isinstance(event.get("content"), str):
            live.session["instructions"] = f"{live.session['instructions']}\n\n{event['content']}"
            self._emit(live, new_event("session.instructions.appended", content=event["content"]))
        elif kind == "response.create":
            self._delegate(live)
        elif kind in ("session.update", "session.start"):
            # Model, voice and instructions are immutable; only delegation settings may
            # change, and the broker's tests never need that.
            self._emit(
                live, _error(event, "immutable_session", "This session's settings cannot change.")
            )

    def close(self, session_id: str, reason: str) -> bool:
        live = self.sessions.pop(session_id, None)
        if live is None:
            return False
        self.closed[session_id] = reason
        if len(self.closed) > KEPT_ENDED:
            del self.closed[next(iter(self.closed))]
        closed = new_event(
            "session.closed",
            reason=reason,
            session={k: v for k, v in live.session.items() if k != "client"},
            usage=self.usage(live),
        )
        self._emit(live, closed)
        for line in live.lines:
            put(line, None)
        for close in live.closers:
            close()
        return True

    def _delegate(self, live: FakeLiveSession) -> None:
        response = {"id": "resp_" + secrets.token_hex(8), "object": "response"}
        delegation = {"delegation_id": "dlg_" + secrets.token_hex(6)}
        created = {"type": "response.created", "response": {**response, "status": "in_progress"}}
        done = {
            "type": "response.completed",
            "response": {**response, "status": "completed", "usage": FAKE_USAGE},
        }
        self._emit(live, new_event("response.event", **delegation, event=created))
        self._emit(live, new_event("response.event", **delegation, event=done))

    def _speak(self, live: FakeLiveSession) -> None:
        item = {"item_id": "item_" + secrets.token_hex(8)}
        for piece in TRANSCRIPT:
            self._emit(live, new_event("session.output_transcript.delta", **item, delta=piece))

    def _emit(self, live: FakeLiveSession, event: Event) -> None:
        self._to_sidebands(live, event)
        self._to_channels(live, event)

    def _to_sidebands(self, live: FakeLiveSession, event: Event) -> None:
        for line in live.lines:
            put(line, json.loads(json.dumps(event)))

    def _to_channels(self, live: FakeLiveSession, event: Event) -> None:
        if event.get("type") != "error" and not live.allows_server(event):
            return
        for deliver in live.channels:
            deliver(json.loads(json.dumps(event)))

    # --- the browser's media peer (service.fake.webrtc) ------------------------------

    def attach_channel(self, session_id: str, deliver: Callable[[Event], None]) -> None:
        live = self.sessions.get(session_id)
        if live is not None:
            live.channels.append(deliver)
            started = new_event(
                "session.started",
                session={k: v for k, v in live.session.items() if k != "client"},
            )
            if live.allows_server(started):
                deliver(started)

    def on_hangup(self, session_id: str, close: Callable[[], object]) -> None:
        live = self.sessions.get(session_id)
        if live is not None:
            live.closers.append(close)

    def speech(self, session_id: str, *, started: bool) -> None:
        live = self.sessions.get(session_id)
        if live is not None and not started:
            self._speak(live)

    def hangup(self, session_id: str) -> bool:
        """The browser's peer went away."""
        return self.close(session_id, "remote_hangup")


def _data_channel(session: dict[str, Any]) -> dict[str, Any]:
    client = session.get("client")
    channel = client.get("data_channel") if isinstance(client, dict) else None
    return channel if isinstance(channel, dict) else {}


def _error(cause: Event, code: str, message: str) -> Event:
    fields: dict[str, Any] = {
        "error": {"type": "invalid_request_error", "code": code, "message": message}
    }
    if isinstance(cause.get("event_id"), str):
        fields["client_event_id"] = cause["event_id"]
    return new_event("error", **fields)


def fake_live_routes(
    sessions: FakeLiveSessions,
    *,
    endpoint: Callable[[Handler], Handler],
    create_shape: Shape,
    authorized: Callable[[str, str], bool],
) -> list[BaseRoute]:
    """The routes, wrapped by the fake's `endpoint` (auth, call counting).
    `authorized(authorization header, api-key header)` guards the sideband."""

    async def create(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Refusal(400, "We could not parse the JSON body of your request.")
        create_shape(body, "")
        offer = body["transport"]["sdp"]
        session_id = sessions.create(body["session"])
        if webrtc.available() and "a=fingerprint:" in offer and "a=ice-ufrag:" in offer:
            sdp = await webrtc.answer(sessions, session_id, offer)
        else:
            sdp = answer_for(offer)
        return JSONResponse(
            {"session": {"id": session_id}, "transport": {"type": "webrtc", "sdp": sdp}},
            status_code=201,
        )

    async def client_event(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        try:
            event = json.loads(await request.body())
        except ValueError:
            event = None
        if not isinstance(event, dict) or session_id not in sessions.sessions:
            raise Refusal(404, "No session with that id, or not an event.", code="not_found")
        seen: list[Event] = []
        live = sessions.sessions[session_id]
        live.channels.append(seen.append)
        try:
            sessions.receive(session_id, event)
        finally:
            if seen.append in live.channels:
                live.channels.remove(seen.append)
        # What the browser's data channel got back (an error, or what the event caused).
        return JSONResponse({"events": seen})

    async def show(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        live = sessions.sessions.get(session_id)
        if live is None:
            if session_id in sessions.closed:
                return JSONResponse({"id": session_id, "closed": sessions.closed[session_id]})
            raise Refusal(404, "No session with that id.", code="not_found")
        return JSONResponse(
            {"id": live.id, "session": live.session, "sidebands": len(live.lines), "closed": None}
        )

    async def action(request: Request) -> Response:
        session_id, what = request.path_params["session_id"], request.path_params["action"]
        done = {
            "drop_sidebands": sessions.drop_lines,
            "report_usage": sessions.report_usage,
            "hangup": sessions.hangup,
        }.get(what)
        if done is None or not done(session_id):
            raise Refusal(404, "No session with that id.", code="not_found")
        return JSONResponse({"ok": True})

    async def hangup(request: Request) -> Response:
        # The app's REST hangup: the session ends as with `session.close` on a sideband.
        if not sessions.close(request.path_params["session_id"], "close_requested"):
            raise Refusal(404, "No session with that id.", code="not_found")
        return Response(status_code=200)

    async def sideband(websocket: WebSocket) -> None:
        await attach_sideband(websocket, sessions, websocket.path_params["session_id"], authorized)

    base = "/v1/_fake/live/sessions/{session_id}"
    return [
        Route("/v1/live/sessions", endpoint(create), methods=["POST"]),
        Route("/v1/live/sessions/{session_id}/hangup", endpoint(hangup), methods=["POST"]),
        Route(base + "/events", endpoint(client_event), methods=["POST"]),
        Route(base, endpoint(show), methods=["GET"]),
        Route(base + "/{action}", endpoint(action), methods=["POST"]),
        WebSocketRoute("/v1/live/sessions/{session_id}/attach", sideband),
    ]
