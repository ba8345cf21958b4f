"""The relay (README "Call control"): `GET /v1/realtime?call_id=...`, a WebSocket through
which a browser sends and receives its call's events when its offer carried audio only.

Auth is the app JWT, in `Authorization: Bearer ...` or, from a browser (which cannot set
headers on a WebSocket), in the subprotocol `openai-insecure-api-key.<JWT>` next to
`realtime`, as OpenAI's own browser WebSocket does; never in the URL. Only the call's own
user may attach, one relay per call. Refusals happen at the handshake (an HTTP answer,
no WebSocket). Events in both directions go through `relay.policing.RelayPolicy`; whichever
replica the browser reaches, the call's supervisor sends and receives them
(`relay.hub.RelayHub`).

Every frame the browser sends, text or binary, counts against the relay's bounds: at most
`MAX_FRAME_BYTES` (larger closes the relay, 1009), `RATE` a second in bursts of `BURST`
(beyond, an error each; past `MAX_REFUSED` of those the relay closes, 1008). Events are
JSON text, so a binary frame is answered with an error like any other malformed event.
The ASGI server reads a whole message before the relay sees it, and no ASGI message lets
an application set the WebSocket's maximum message size: the server's own limit (uvicorn's
`ws_max_size`, for every WebSocket it serves; the relay is the broker's only one) must be
`MAX_FRAME_BYTES` too, so that a larger frame is refused as it arrives, not buffered.

A browser that leaves, a call that ends, a relay that closes on a bound: all normal ends,
none logged above info.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from service.auth.tokens import MISSING
from service.calls.controller import CallController
from service.errors import (
    BrokerError,
    Conflict,
    InvalidRequest,
    InvalidToken,
    InvalidValue,
    PermissionDenied,
    ServiceUnavailable,
    StoreUnavailable,
    UserRevoked,
)
from service.mint.broker import Broker
from service.redact import user_hash
from service.relay.hub import CLAIM_SECONDS, Relay, RelayHub
from service.relay.policing import RelayPolicy, error_event
from service.session.strict_json import parse_json_text
from service.web.errors import render_broker_error

logger = logging.getLogger(__name__)

RELAY_PATH = "/v1/realtime"
SUBPROTOCOL_KEY = "openai-insecure-api-key."
# A browser's frame, text or binary, at most (the server's `ws_max_size` should match).
MAX_FRAME_BYTES = 64 * 1024
# Per relay: a burst of BURST frames, refilled at RATE a second; a browser that keeps
# flooding after MAX_REFUSED refusals is disconnected.
RATE, BURST, MAX_REFUSED = 20.0, 50.0, 20


def _credential(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for protocol in websocket.scope.get("subprotocols") or ():
        if isinstance(protocol, str) and protocol.startswith(SUBPROTOCOL_KEY):
            return protocol[len(SUBPROTOCOL_KEY) :] or None
    return None


async def _deny(websocket: WebSocket, error: BrokerError) -> None:
    try:
        await websocket.send_denial_response(render_broker_error(error))
    except RuntimeError:
        # A server without the denial-response extension: a plain refusal (HTTP 403).
        await websocket.close(code=1008)


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self) -> None:
        self.tokens, self.at = BURST, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.at) * RATE)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


async def relay_endpoint(websocket: WebSocket) -> None:
    broker: Broker = websocket.app.state.broker
    calls: CallController = websocket.app.state.calls
    hub: RelayHub = websocket.app.state.relays
    call_id = websocket.query_params.get("call_id") or ""
    credential = _credential(websocket)
    try:
        if not credential:
            raise InvalidToken(MISSING)
        if not call_id or len(call_id) > 256:
            raise InvalidValue("Name the call: /v1/realtime?call_id=...", param="call_id")
        identity = await broker.authenticate([f"Bearer {credential}"])
        # A Gemini tenant has no calls: 404, as on every other OpenAI route.
        broker.openai_upstream(identity.tenant)
        tenant = broker.tenant(identity.tenant)
        record = await calls.store.record(tenant.id, call_id)
        if record is None or record.user_id != identity.user_id:
            # Another user's call and no call at all look the same from outside.
            raise PermissionDenied("No call of yours with that id.", code="call_forbidden")
        if record.kind != "realtime":
            # A GPT-Live session's browser channel is its data channel, held by the
            # allow-lists it was created with; its events are not Realtime events.
            raise InvalidValue(
                "GPT-Live sessions have no relay: use the session's data channel.",
                param="call_id",
            )
        user = await broker.store.get_user(tenant.id, identity.user_id)
        if user is not None and user.revoked:
            raise UserRevoked()
        relay = await hub.claim(tenant.id, call_id)
        if relay is None:
            raise Conflict("This call already has a relay.", code="relay_in_use")
    except StoreUnavailable:
        unavailable = ServiceUnavailable("Try again shortly.", code="store_unavailable")
        await _deny(websocket, unavailable)
        return
    except BrokerError as exc:
        await _deny(websocket, exc)
        return
    offered = websocket.scope.get("subprotocols") or ()
    policy = RelayPolicy(tenant.policy, record.policy.role)
    down: asyncio.Task[None] | None = None
    try:
        await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
        try:
            await hub.attach(relay)
        except StoreUnavailable:
            # Accepted already: a close code, not an HTTP denial (the browser may retry).
            await _close(websocket, 1011, "store unavailable")
            return
        logger.info(
            "relay attached",
            extra={
                "tenant": tenant.id,
                "user_hash": user_hash(tenant.id, identity.user_id),
                "call_id": call_id,
            },
        )
        down = asyncio.create_task(_down(websocket, hub, relay, policy))
        await _up(websocket, hub, relay, policy)
    finally:
        if down is not None:
            down.cancel()
        # Shielded: a relay cancelled with its server still frees its slot and tells the
        # supervisor, or the call could not get a relay again until the slot lapsed.
        await asyncio.shield(hub.detach(relay))
        await _close(websocket)


async def _down(websocket: WebSocket, hub: RelayHub, relay: Relay, policy: RelayPolicy) -> None:
    """The call's server events to the browser, filtered by `server_events`. The relay's
    slot is renewed on a schedule of its own, busy or idle: a slot that lapsed during a
    lively call would let a second relay claim the call."""
    loop = asyncio.get_running_loop()
    renew_at = loop.time() + CLAIM_SECONDS / 3
    while True:
        if loop.time() >= renew_at:
            await hub.renew(relay)
            renew_at = loop.time() + CLAIM_SECONDS / 3
        try:
            async with asyncio.timeout(max(0.0, renew_at - loop.time())):
                text = await relay.events.get()
        except TimeoutError:
            continue
        if text is None:
            # The call is over: so is its relay.
            await _close(websocket, 1000, "call ended")
            return
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            continue
        if policy.server_event_allowed(kind):
            try:
                await websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError):
                # The browser left: `_up` sees it too and ends the relay.
                return


async def _up(websocket: WebSocket, hub: RelayHub, relay: Relay, policy: RelayPolicy) -> None:
    """The browser's events to the call, each policed first."""
    bucket, refused = _Bucket(), 0
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        # Every frame counts, text or binary: its size first, then against the rate.
        if _too_large(message):
            await _close(websocket, 1009, "event too large")
            return
        if not bucket.take():
            refused += 1
            if refused > MAX_REFUSED:
                await _close(websocket, 1008, "too many events")
                return
            await _send(
                websocket, error_event("Too many events; slow down.", code="rate_limit_exceeded")
            )
            continue
        text = message.get("text")
        if text is None:
            await _send(websocket, error_event("Send events as JSON text.", code="invalid_event"))
            continue
        try:
            # Strict: no NaN or Infinity, nor a number a double cannot hold (`1e999`),
            # which the sideband would send on as `Infinity`, not JSON.
            event: Any = parse_json_text(text)
        except InvalidRequest:
            event = None
        policed = policy.police(event)
        if policed.error is not None:
            await _send(websocket, policed.error)
            continue
        assert policed.event is not None
        if not await hub.up(relay, policed.event):
            await _send(
                websocket,
                error_event("The call is not supervised right now.", code="call_unavailable"),
            )


def _too_large(message: Message) -> bool:
    data = message.get("bytes")
    if data is not None:
        return len(data) > MAX_FRAME_BYTES
    text: str = message.get("text") or ""
    # UTF-8 takes up to 4 bytes a character: encode only what the length cannot decide.
    return len(text) > MAX_FRAME_BYTES or (
        len(text) > MAX_FRAME_BYTES // 4 and len(text.encode()) > MAX_FRAME_BYTES
    )


async def _send(websocket: WebSocket, event: dict[str, Any]) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.send_text(json.dumps(event))


async def _close(websocket: WebSocket, code: int = 1000, reason: str | None = None) -> None:
    """Close the relay, unless the browser already did (or it is closed already): a
    browser that leaves is a normal end, not an error."""
    if WebSocketState.DISCONNECTED in (websocket.client_state, websocket.application_state):
        return
    # The browser may leave meanwhile: Starlette then raises WebSocketDisconnect (the
    # server's send failed) or RuntimeError (the relay was closed already).
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close(code=code, reason=reason)


def relay_routes() -> list[WebSocketRoute]:
    return [WebSocketRoute(RELAY_PATH, relay_endpoint)]
