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
from service.errors import InvalidJSON, InvalidValue, UnknownParameter
from service.web.bodies import MAX_BODY_BYTES, parse_json, read_body
from service.web.handlers import authenticate, authorization_values, broker_of
from service.web.multipart import read_form

CALLS_PATH = "/v1/realtime/calls"


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


LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 20, 100


def page_params(request: Request) -> tuple[int, str | None]:
    """`limit` (1..100, default 20) and `after` (a call id) of the admin listing."""
    unknown = set(request.query_params) - {"limit", "after"}
    if unknown:
        raise UnknownParameter(f"Unknown parameter: '{sorted(unknown)[0][:64]}'.")
    raw = request.query_params.get("limit")
    limit = LIST_LIMIT_DEFAULT
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= LIST_LIMIT_MAX:
            raise InvalidValue(
                f"'limit' must be an integer from 1 to {LIST_LIMIT_MAX}.", param="limit"
            )
        limit = int(raw)
    after = request.query_params.get("after")
    if after is not None and not 0 < len(after) <= 256:
        raise InvalidValue("'after' must be a call id.", param="after")
    return limit, after


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

    async def list_calls(request: Request) -> Response:
        broker = broker_of(request)
        directory = Directory(broker.store, broker.settings.tenants, clock=clock)
        actor = await directory.authorize(authorization_values(request), broker.authenticate)
        limit, after = page_params(request)
        rows, more = await controller_of(request).listing(actor.tenant, limit=limit, after=after)
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
        broker = broker_of(request)
        directory = Directory(broker.store, broker.settings.tenants, clock=clock)
        actor = await directory.authorize(authorization_values(request), broker.authenticate)
        call_id = request.path_params["call_id"]
        await controller_of(request).hangup(broker.tenant(actor.tenant), call_id, "admin")
        return JSONResponse({"object": "realtime.call", "id": call_id, "hung_up": True})

    return [
        Route(CALLS_PATH, create, methods=["POST"]),
        Route(CALLS_PATH, list_calls, methods=["GET"]),
        Route(CALLS_PATH + "/{call_id}/hangup", hangup, methods=["POST"]),
    ]
