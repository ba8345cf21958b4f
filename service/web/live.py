"""The GPT-Live endpoint (README "GPT-Live"): parse, call one function, render.

POST /v1/live/sessions    a browser starts a session: OpenAI's Live create shape in
                          (`{session, transport: {type: "webrtc", sdp}}`, with the app
                          JWT), OpenAI's answer out (201, `Location`). The session is
                          supervised like a call: listed and ended through
                          /v1/realtime/calls.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.live.placing import place_live_session
from service.web.bodies import parse_json_object, read_body
from service.web.calls import controller_of
from service.web.handlers import authenticate, broker_of
from service.web.openapi import OBJECT, STRING, UPSTREAM, DocumentedRoute, Operation, json_body

LIVE_PATH = "/v1/live/sessions"
# An SDP offer (a few KiB) and up to 16,384 tokens of instructions and history.
MAX_LIVE_BODY_BYTES = 256 * 1024

_TRANSPORT = {
    "type": "object",
    "required": ["type", "sdp"],
    "properties": {"type": {"const": "webrtc"}, "sdp": STRING},
}
START_LIVE_SESSION = Operation(
    "Start a GPT-Live WebRTC session through the broker; the policy decides it and the "
    "broker supervises it.",
    {
        "type": "object",
        "required": ["session", "transport"],
        "properties": {
            "session": {"type": "object", "required": ["id"], "properties": {"id": STRING}},
            "transport": _TRANSPORT,
        },
    },
    UPSTREAM,
    status=201,
    description="Session started: `session.id` and the SDP answer.",
    headers=("Location",),
    request=json_body(
        {
            "type": "object",
            "required": ["transport"],
            "properties": {"session": OBJECT, "transport": _TRANSPORT},
        }
    ),
    request_required=True,
)


def live_routes() -> list[Route]:
    async def create(request: Request) -> Response:
        # The caller first: an anonymous request costs a 401, and its body (up to 256 KiB
        # of JSON) is neither read nor parsed.
        identity = await authenticate(request)
        body = parse_json_object(await read_body(request, MAX_LIVE_BODY_BYTES))
        placed = await place_live_session(
            broker_of(request), controller_of(request), identity, body
        )
        headers = {**placed.headers, "Location": f"{LIVE_PATH}/{placed.session_id}"}
        return JSONResponse(placed.created, status_code=201, headers=headers)

    return [DocumentedRoute(LIVE_PATH, create, post=START_LIVE_SESSION)]
