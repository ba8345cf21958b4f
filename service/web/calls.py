"""The call-control endpoints (README "Call control"): parse, call one function, render.

POST /v1/realtime/calls                     a browser places a call (SDP offer in,
                                            SDP answer out, 201 + Location)
GET  /v1/realtime/calls                     the tenant's active calls (owner/admin key)
POST /v1/realtime/calls/{call_id}/hangup    hang one up (owner/admin key)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.calls.controller import CallController
from service.calls.placing import place_call
from service.calls.sdp import MAX_SDP_BYTES, check_offer
from service.clock import Clock, system_clock
from service.directory import Directory
from service.errors import InvalidJSON, InvalidValue
from service.web.bodies import MAX_BODY_BYTES, parse_json, read_body
from service.web.handlers import authenticate, authorize, broker_of, parse_page_query
from service.web.multipart import read_form
from service.web.openapi import (
    DIRECTORY,
    LIMIT,
    LIST,
    STRING,
    UPSTREAM,
    DocumentedRoute,
    Operation,
    path_param,
    query,
)

CALLS_PATH = "/v1/realtime/calls"

PLACE_CALL = Operation(
    "Place a WebRTC call through the broker (call control); the policy binds the call.",
    STRING,
    (*UPSTREAM, 404),
    status=201,
    description="Call placed: the SDP answer; `Location` names the call.",
    media_type="application/sdp",
    headers=("Location",),
    request={
        "application/sdp": STRING,
        "multipart/form-data": {
            "type": "object",
            "required": ["sdp"],
            "properties": {"sdp": STRING, "session": {"type": "object"}},
        },
    },
    request_required=True,
)
LIST_CALLS = Operation(
    "The tenant's supervised calls, by call id (owner or admin key).",
    LIST,
    (400, 401, 403, 503),
    parameters=(query("limit", LIMIT), query("after", STRING)),
)
HANG_UP = Operation(
    "Hang up an active call (owner or admin key).",
    {
        "type": "object",
        "required": ["object", "id", "hung_up"],
        "properties": {"object": {"const": "realtime.call"}},
    },
    (*DIRECTORY, 502, 504),
    parameters=(path_param("call_id"),),
)


def controller_of(request: Request) -> CallController:
    controller: CallController = request.app.state.calls
    return controller


# A mint's whole body may be a session, so a call's `session` part may be as large.
OFFER_PARTS = {"sdp": MAX_SDP_BYTES, "session": MAX_BODY_BYTES}


async def _offer_and_session(request: Request) -> tuple[str, dict[str, Any] | None]:
    """The offer, and the session if one came: read only once the caller is known."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/sdp"):
        return check_offer(await read_body(request)), None
    if not content_type.startswith("multipart/form-data"):
        raise InvalidValue(
            "Send the SDP offer as application/sdp, or as multipart/form-data with "
            "`sdp` and an optional `session`.",
            param=None,
        )
    parts = await read_form(request, OFFER_PARTS)
    if "sdp" not in parts:
        raise InvalidValue("Missing required parameter: 'sdp'.", param="sdp")
    session: dict[str, Any] | None = None
    if "session" in parts:
        value = parse_json(parts["session"])
        if not isinstance(value, dict):
            raise InvalidJSON("`session` must be a JSON object.")
        session = value
    return check_offer(parts["sdp"]), session


MAX_CALL_ID_CHARS = 256


def _call_id(param: str, value: str) -> str:
    if not 0 < len(value) <= MAX_CALL_ID_CHARS:
        raise InvalidValue(f"'{param}' must be a call id.", param=param)
    return value


def call_routes(*, clock: Clock = system_clock) -> list[Route]:
    async def create(request: Request) -> Response:
        # The caller first: an anonymous request costs a 401 and nothing of its body.
        identity = await authenticate(request)
        offer, session = await _offer_and_session(request)
        placed = await place_call(
            broker_of(request), controller_of(request), identity, offer, session
        )
        headers = {**placed.headers, "Location": f"{CALLS_PATH}/{placed.call_id}"}
        return Response(
            placed.answer, status_code=201, media_type="application/sdp", headers=headers
        )

    def directory_of(request: Request) -> Directory:
        broker = broker_of(request)
        return Directory(broker.store, broker.settings.tenants, clock=clock)

    async def list_calls(request: Request) -> Response:
        actor = await authorize(request, directory_of(request))
        page = parse_page_query(request.query_params.multi_items(), cursor=_call_id)
        rows, more = await controller_of(request).listing(
            actor.tenant, limit=page.limit, after=page.after
        )
        data = [
            {
                "object": "realtime.call",
                "id": row.record.call_id,
                # "realtime" (a Realtime call) or "live" (a GPT-Live session).
                "kind": row.record.kind,
                "user_id": row.record.user_id,
                "role": row.record.policy.role,
                "started_at": int(row.record.started_at),
                "deadline": int(row.record.deadline),
                "supervised": bool(row.owner) and row.heartbeat_until > clock(),
            }
            for row in rows
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": more,
            }
        )

    async def hangup(request: Request) -> Response:
        actor = await authorize(request, directory_of(request))
        call_id = request.path_params["call_id"]
        tenant = broker_of(request).tenant(actor.tenant)
        await controller_of(request).hangup(tenant, call_id, "admin")
        return JSONResponse({"object": "realtime.call", "id": call_id, "hung_up": True})

    return [
        DocumentedRoute(CALLS_PATH, create, post=PLACE_CALL),
        DocumentedRoute(CALLS_PATH, list_calls, get=LIST_CALLS),
        DocumentedRoute(CALLS_PATH + "/{call_id}/hangup", hangup, post=HANG_UP),
    ]
