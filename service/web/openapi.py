"""`GET /openapi.json`: this service's own OpenAPI 3.1 document, built from the app's routes.

Each route says what the document holds of it beside its handler: a `DocumentedRoute`
carries one `Operation` per method (web/handlers.py, admin.py, calls.py, live.py,
vector_stores.py, demo.py, and `/metrics` in app.py). The document is built from the
app's routes at the first GET and kept on the app, so it lists exactly the operations the
running app mounts: the dev-only demo routes in dev mode only, `/metrics` only when it is
not served on a port of its own. The relay is a WebSocket, which OpenAPI cannot describe.

Only the keys a caller relies on are described (the broker's shapes are OpenAI's, and the
vendored OpenAI subset holds the rest), and every error is an `ErrorResponse`
(README "Using it from a browser app").
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
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
    503: "Rate limiter, state store or upstream unavailable.",
    504: "The upstream did not answer in time (`upstream_timeout`).",
}

# Statuses every operation of a kind can answer with, besides its success.
AUTHED = (400, 401, 403, 429, 503)
UPSTREAM = (*AUTHED, 413, 502, 504)
DIRECTORY = (400, 401, 403, 404, 503)

# Google's error shape (google.rpc.Status in JSON), which google-genai and @google/genai
# raise their typed errors from: the Gemini routes answer with it (service.web.gemini).
GOOGLE_ERROR_RESPONSE: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "status"],
            "properties": {
                "code": {"type": "integer"},
                "message": {"type": "string"},
                "status": {"type": "string"},
                "details": {"type": "array"},
            },
        }
    },
}
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
OBJECT: Schema = {"type": "object"}
STRING: Schema = {"type": "string"}
LIST: Schema = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array"}},
}
LIMIT: Schema = {"type": "integer", "minimum": 1, "maximum": 100}


def query(name: str, schema: Schema) -> Schema:
    """An optional query parameter."""
    return {"name": name, "in": "query", "required": False, "schema": schema}


def path_param(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": STRING}


def json_body(schema: Schema) -> dict[str, Schema]:
    return {"application/json": schema}


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says of one method of one route: its success (`status`, a body
    of `media_type` described by `ok`, `headers` by name), the error statuses it can
    answer with, whether it takes a bearer token, its request body (by media type) and
    its parameters."""

    summary: str
    ok: Schema
    errors: tuple[int, ...] = ()
    secured: bool = True
    status: int = 200
    description: str = "OK"
    media_type: str = "application/json"
    headers: tuple[str, ...] = ()
    request: Mapping[str, Schema] | None = None
    request_required: bool = False
    parameters: tuple[Schema, ...] = ()
    # The component its errors are: Google's shape on the Gemini routes (DESIGN 12).
    error_schema: str = "ErrorResponse"

    def document(self) -> dict[str, Any]:
        success: dict[str, Any] = {
            "description": self.description,
            "content": {self.media_type: {"schema": self.ok}},
        }
        if self.headers:
            success["headers"] = {name: {"schema": STRING} for name in self.headers}
        responses: dict[str, Any] = {str(self.status): success}
        responses.update(
            {str(status): _error(status, self.error_schema) for status in sorted(set(self.errors))}
        )
        operation: dict[str, Any] = {
            "summary": self.summary,
            "responses": responses,
            "security": [{"bearer": []}] if self.secured else [],
        }
        if self.request is not None:
            operation["requestBody"] = {
                "required": self.request_required,
                "content": {kind: {"schema": schema} for kind, schema in self.request.items()},
            }
        if self.parameters:
            operation["parameters"] = list(self.parameters)
        # A copy: the schemas are shared constants, and the document is the caller's.
        return copy.deepcopy(operation)


def _error(status: int, schema: str) -> dict[str, Any]:
    return {
        "description": _REASONS[status],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


class DocumentedRoute(Route):
    """A route with its operations, one per method, named by keyword:
    `DocumentedRoute("/v1/vector_stores", handler, get=LIST_STORES, post=CREATE_STORE)`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **operations: Operation) -> None:
        super().__init__(path, endpoint, methods=[method.upper() for method in operations])
        self.operations = {method.lower(): operation for method, operation in operations.items()}


_CONVERTER = re.compile(r"{(\w+):\w+}")


def openapi_path(path: str) -> str:
    """A route's path as OpenAPI writes it: `{user_id:path}` → `{user_id}`."""
    return _CONVERTER.sub(r"{\1}", path)


def route_operations(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(OpenAPI path, lower-case method) of every HTTP route; HEAD is implied by GET."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Route):
            path = openapi_path(route.path)
            found.update((path, m.lower()) for m in route.methods or () if m != "HEAD")
    return found


def openapi_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The document of an app with `routes`: the operations of its documented routes."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if isinstance(route, DocumentedRoute):
            item = paths.setdefault(openapi_path(route.path), {})
            for method, operation in route.operations.items():
                item[method] = operation.document()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Realtime token broker",
            "version": "0.1.0",
            "description": "Mints short-lived OpenAI Realtime client secrets for browser apps. "
            "Request and response shapes are OpenAI's (Google's on the Gemini routes); "
            "every error is an `ErrorResponse` (a `GoogleErrorResponse` there).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {
                "ErrorResponse": copy.deepcopy(ERROR_RESPONSE),
                "GoogleErrorResponse": copy.deepcopy(GOOGLE_ERROR_RESPONSE),
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The app user's JWT, or the admin key on the "
                    "organization-users and call-control endpoints.",
                }
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    # Built at the first GET rather than in create_app: dev mode adds routes after it.
    state = request.app.state
    body: bytes | None = getattr(state, "openapi", None)
    if body is None:
        document = openapi_document(request.app.routes)
        body = state.openapi = json.dumps(document, separators=(",", ":")).encode()
    return Response(body, media_type="application/json")


OPENAPI = Operation("This document.", OBJECT, secured=False)


def openapi_routes() -> list[Route]:
    return [DocumentedRoute("/openapi.json", openapi_json, get=OPENAPI)]
