"""`GET /openapi.json`: this service's own OpenAPI 3.1 document, written by hand.

Hand-written rather than generated: the broker's shapes are OpenAI's, so the document
only has to name the keys a caller relies on (the vendored OpenAI subset holds the rest),
and the error shape and statuses (README "Using it from a browser app") for every route. The catalog
below covers every route the broker can mount; the served document keeps the operations
the running app really has (the dev-only demo routes exist only in dev mode).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

Schema = dict[str, Any]

_REASONS = {
    400: "Invalid request (`invalid_json`, `unknown_parameter`, `invalid_value`, "
    "`policy_violation`); `param` names the field.",
    401: "Missing or invalid bearer token (`invalid_token`).",
    403: "Revoked user (`user_revoked`) or role not allowed (`role_forbidden`).",
    404: "No such object (`not_found`).",
    413: "Body over its limit: 64 KiB, 256 KiB for a GPT-Live session (`request_too_large`).",
    429: "A rate limit refused the request (`rate_limit_exceeded`, with `Retry-After`).",
    502: "The upstream refused or broke (`upstream_error`).",
    503: "Rate limiter or upstream unavailable.",
    504: "The upstream did not answer in time (`upstream_timeout`).",
}

# Statuses every operation of a kind can answer with, besides its success.
_AUTHED = (400, 401, 403, 429, 503)
_UPSTREAM = (*_AUTHED, 413, 502, 504)
_DIRECTORY = (400, 401, 403, 404, 503)

ERROR_RESPONSE: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_OBJECT: Schema = {"type": "object"}
_SESSION_MINT_RESPONSE: Schema = {
    "type": "object",
    "required": ["client_secret"],
    "properties": {
        "client_secret": {
            "type": "object",
            "required": ["value", "expires_at"],
            "properties": {"value": {"type": "string"}, "expires_at": {"type": "integer"}},
        }
    },
}
_USER: Schema = {
    "type": "object",
    "required": ["object", "id", "role"],
    "properties": {
        "object": {"const": "organization.user"},
        "id": {"type": "string"},
        "role": {"enum": ["owner", "reader"]},
    },
}
_LIST: Schema = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array"}},
}


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _REASONS[status],
        "content": _json({"$ref": "#/components/schemas/ErrorResponse"}),
    }


def _operation(
    summary: str,
    ok: Schema,
    errors: Iterable[int] = (),
    *,
    secured: bool = True,
    body: Schema | None = None,
    parameters: list[dict[str, Any]] | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {content_type: {"schema": ok}}}
    }
    responses.update({str(status): _error(status) for status in sorted(set(errors))})
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    operation["security"] = [{"bearer": []}] if secured else []
    if body is not None:
        operation["requestBody"] = {"required": False, "content": _json(body)}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _query(name: str, schema: Schema) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}
_MINT_BODY: Schema = {
    "type": "object",
    "properties": {
        "expires_after": {
            "type": "object",
            "properties": {"anchor": {"const": "created_at"}, "seconds": {"type": "integer"}},
        },
        "session": {"type": "object"},
    },
}


def _place_call() -> dict[str, Any]:
    """POST /v1/realtime/calls: an SDP offer in, an SDP answer out (201, `Location`)."""
    operation = _operation(
        "Place a WebRTC call through the broker (call control); the policy binds the call.",
        {"type": "string"},
        (*_UPSTREAM, 404),
        content_type="application/sdp",
    )
    answer = operation["responses"].pop("200")
    answer["description"] = "Call placed: the SDP answer; `Location` names the call."
    answer["headers"] = {"Location": {"schema": {"type": "string"}}}
    operation["responses"]["201"] = answer
    operation["requestBody"] = {
        "required": True,
        "content": {
            "application/sdp": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["sdp"],
                    "properties": {"sdp": {"type": "string"}, "session": {"type": "object"}},
                }
            },
        },
    }
    return operation


def _start_live_session() -> dict[str, Any]:
    """POST /v1/live/sessions: OpenAI's Live create shape in, its answer out (201)."""
    transport: Schema = {
        "type": "object",
        "required": ["type", "sdp"],
        "properties": {"type": {"const": "webrtc"}, "sdp": {"type": "string"}},
    }
    operation = _operation(
        "Start a GPT-Live WebRTC session through the broker; the policy decides it and the "
        "broker supervises it.",
        {
            "type": "object",
            "required": ["session", "transport"],
            "properties": {
                "session": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string"}},
                },
                "transport": transport,
            },
        },
        (*_UPSTREAM,),
    )
    created = operation["responses"].pop("200")
    created["description"] = "Session started: `session.id` and the SDP answer."
    created["headers"] = {"Location": {"schema": {"type": "string"}}}
    operation["responses"]["201"] = created
    operation["requestBody"] = {
        "required": True,
        "content": _json(
            {
                "type": "object",
                "required": ["transport"],
                "properties": {"session": _OBJECT, "transport": transport},
            }
        ),
    }
    return operation


def _catalog() -> dict[str, dict[str, Any]]:
    """Every route the broker can mount: path -> method -> operation."""
    health = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }
    return {
        "/v1/realtime/client_secrets": {
            "post": _operation(
                "Mint a client secret (GA shape).",
                {"type": "object", "required": ["value", "expires_at", "session"]},
                _UPSTREAM,
                body=_MINT_BODY,
            )
        },
        "/v1/realtime/sessions": {
            "post": _operation(
                "Mint a session and its client secret (beta shape).",
                _SESSION_MINT_RESPONSE,
                _UPSTREAM,
                body=_OBJECT,
            )
        },
        "/v1/realtime/transcription_sessions": {
            "post": _operation(
                "Mint a transcription session (beta shape).",
                _SESSION_MINT_RESPONSE,
                _UPSTREAM,
                body=_OBJECT,
            )
        },
        "/v1/organization/users": {
            "get": _operation(
                "List the tenant's user directory (owner or admin key).",
                _LIST,
                _DIRECTORY,
                parameters=[
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                    _query("after", {"type": "string"}),
                ],
            )
        },
        "/v1/organization/users/{user_id}": {
            "get": _operation("One user.", _USER, _DIRECTORY, parameters=[_USER_ID]),
            "post": _operation(
                "Set a user's role (restores a revoked user).",
                _USER,
                (*_DIRECTORY, 413),
                body={
                    "type": "object",
                    "required": ["role"],
                    "properties": {"role": {"enum": ["owner", "reader"]}},
                },
                parameters=[_USER_ID],
            ),
            "delete": _operation(
                "Revoke a user.",
                {
                    "type": "object",
                    "required": ["object", "id", "deleted"],
                    "properties": {"object": {"const": "organization.user.deleted"}},
                },
                _DIRECTORY,
                parameters=[_USER_ID],
            ),
        },
        "/v1/vector_stores": {
            "get": _operation(
                "List the tenant's vector stores (proxied).",
                _LIST,
                (*_UPSTREAM, 404),
                parameters=[
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                    _query("order", {"enum": ["asc", "desc"]}),
                    _query("after", {"type": "string"}),
                    _query("before", {"type": "string"}),
                ],
            ),
            "post": _operation(
                "Create a vector store (owner; validated, then proxied).",
                {"type": "object", "required": ["id", "object"]},
                (*_UPSTREAM, 404),
                body=_OBJECT,
            ),
        },
        "/v1/realtime/calls": {
            "post": _place_call(),
            "get": _operation(
                "The tenant's supervised calls, by call id (owner or admin key).",
                _LIST,
                (400, 401, 403, 503),
                parameters=[
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                    _query("after", {"type": "string"}),
                ],
            ),
        },
        "/v1/live/sessions": {"post": _start_live_session()},
        "/v1/realtime/calls/{call_id}/hangup": {
            "post": _operation(
                "Hang up an active call (owner or admin key).",
                {
                    "type": "object",
                    "required": ["object", "id", "hung_up"],
                    "properties": {"object": {"const": "realtime.call"}},
                },
                (*_DIRECTORY, 502, 504),
                parameters=[
                    {
                        "name": "call_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            )
        },
        "/healthz": {"get": _operation("Liveness: the process only.", health, secured=False)},
        "/readyz": {
            "get": _operation(
                "Readiness: configuration loaded, the state store answers.",
                health,
                (503,),
                secured=False,
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics.",
                {"type": "string"},
                secured=False,
                content_type="text/plain",
            )
        },
        "/openapi.json": {
            "get": _operation("This document.", _OBJECT, secured=False),
        },
        "/": {
            "get": _operation(
                "The demo page (dev mode only).",
                {"type": "string"},
                secured=False,
                content_type="text/html",
            )
        },
        "/dev/token": {
            "post": _operation(
                "A JWT signed with the dev secret (dev mode only).",
                {
                    "type": "object",
                    "required": ["token", "expires_at", "upstream"],
                    "properties": {
                        "token": {"type": "string"},
                        "expires_at": {"type": "integer"},
                        "upstream": {"type": "string"},
                    },
                },
                (400, 413),
                secured=False,
                body={
                    "type": "object",
                    "properties": {
                        "user_id": {"type": "string"},
                        "role": {"enum": ["owner", "reader"]},
                    },
                },
            )
        },
    }


CATALOG_PATHS = frozenset(_catalog())

_CONVERTER = re.compile(r"{(\w+):\w+}")


def route_operations(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(OpenAPI path, lower-case method) of every HTTP route; HEAD is implied by GET."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = _CONVERTER.sub(r"{\1}", route.path)
        found.update((path, m.lower()) for m in route.methods or () if m != "HEAD")
    return found


def openapi_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The document for an app with `routes`: the catalog's operations it really mounts."""
    catalog = _catalog()
    paths: dict[str, Any] = {}
    for path, method in sorted(route_operations(routes)):
        operation = catalog.get(path, {}).get(method)
        if operation is not None:
            paths.setdefault(path, {})[method] = copy.deepcopy(operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Realtime token broker",
            "version": "0.1.0",
            "description": "Mints short-lived OpenAI Realtime client secrets for browser apps. "
            "Request and response shapes are OpenAI's; every error is an `ErrorResponse`.",
        },
        "paths": paths,
        "components": {
            "schemas": {"ErrorResponse": ERROR_RESPONSE},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The app user's JWT, or the admin key on the "
                    "organization-users endpoints.",
                }
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document(request.app.routes))


def openapi_routes() -> list[Route]:
    return [Route("/openapi.json", openapi_json, methods=["GET"])]
