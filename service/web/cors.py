"""CORS per tenant (CORS_ORIGINS), as a pure ASGI middleware.

Hand-written rather than Starlette's CORSMiddleware: that one has a single origin list
and adds its headers before the app runs, while here the allowed origins depend on the
tenant, which is only known once the handler has authenticated the request.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import Throttled
from service.web.middleware import request_id_from

logger = logging.getLogger(__name__)

# Location: the call id of POST /v1/realtime/calls (the Agents SDK reads it).
EXPOSED_HEADERS = (
    "Location, Retry-After, X-Request-ID, X-Policy-Adjusted, Server-Timing, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
# What the official SDKs send; used when a preflight names no headers.
DEFAULT_ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-ID, OpenAI-Beta"
MAX_AGE = "600"
ANY = "*"
# An echoed Access-Control-Request-Headers value: header names, commas and spaces only.
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~\-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~\-]+)*$")


class CORSMiddleware:
    """Adds CORS headers to every response of an allowed origin, errors included.

    Which origins are allowed: a request's tenant is not known before authentication,
    so an origin is allowed when ANY configured tenant allows it for preflights and
    for responses to requests that were not authenticated (401s, 404s, ...). Once a
    handler has authenticated the request (it sets `scope["state"]["tenant"]`), the
    origin must be in THAT tenant's list. `*` in a tenant's list allows any origin.
    The origin is echoed (with `Vary: Origin`); credentials mode is never allowed, as
    the browser sends its JWT in `Authorization`, not a cookie. A disallowed origin
    gets no CORS header at all.

    A preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin
    is answered here with 204 and never reaches the app; it still gets an X-Request-ID.
    One from an origin that is not allowed gets a 403 saying so (and a log line naming
    BROKER_CORS_ORIGINS), rather than the router's 405. `scheme://host:*` in a list
    allows any port of that host (dev mode allows http://localhost:* and
    http://127.0.0.1:* by default).
    """

    def __init__(self, app: ASGIApp, *, origins: Mapping[str, Iterable[str]]) -> None:
        self.app = app
        self._by_tenant = {tenant: frozenset(values) for tenant, values in origins.items()}
        self._any_tenant = frozenset().union(*self._by_tenant.values())
        self._refusals = Throttled(logger, interval=60.0)

    def allowed(self, origin: str, tenant: str | None) -> bool:
        if tenant is None or tenant not in self._by_tenant:
            allowed = self._any_tenant
        else:
            allowed = self._by_tenant[tenant]
        if ANY in allowed or origin in allowed:
            return True
        host, sep, port = origin.rpartition(":")
        return bool(sep) and port.isdigit() and f"{host}:*" in allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # With no origin configured only a preflight needs looking at (to refuse it).
        if scope["type"] != "http" or (not self._any_tenant and scope["method"] != "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            if self.allowed(origin, None):
                await self._preflight(scope, origin, headers, send)
            else:
                await self._refuse(scope, origin, send)
            return
        if not self._any_tenant:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                tenant = scope.get("state", {}).get("tenant")
                if self.allowed(origin, tenant):
                    response_headers = MutableHeaders(scope=message)
                    response_headers["Access-Control-Allow-Origin"] = origin
                    response_headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                    response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _refuse(self, scope: Scope, origin: str, send: Send) -> None:
        shown = origin[:100].encode("ascii", "replace").decode()
        self._refusals.warning(
            shown,
            "CORS: a preflight from %s was refused; add the origin to BROKER_CORS_ORIGINS "
            "(or the tenant's BROKER_<TENANT>_CORS_ORIGINS)",
            shown,
        )
        body = json.dumps(
            {
                "error": {
                    "message": "This origin is not allowed to call the broker: its operator "
                    "lists allowed origins in BROKER_CORS_ORIGINS.",
                    "type": "permission_error",
                    "param": None,
                    "code": "origin_not_allowed",
                }
            }
        ).encode()
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id_from(scope).encode()),
            (b"vary", b"Origin"),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    async def _preflight(self, scope: Scope, origin: str, headers: Headers, send: Send) -> None:
        requested = headers.get("access-control-request-headers", "").strip()
        # Echoing what the browser asks for is safe here: the origin is already allowed
        # and credentials are never allowed; it lets the SDKs' x-stainless-* headers in.
        allow_headers = requested if _HEADER_LIST.match(requested) else DEFAULT_ALLOWED_HEADERS
        response_headers = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
            (b"access-control-allow-headers", allow_headers.encode("latin-1")),
            (b"access-control-max-age", MAX_AGE.encode()),
            (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
            (b"vary", b"Origin"),
            (b"x-request-id", request_id_from(scope).encode()),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": response_headers})
        await send({"type": "http.response.body", "body": b""})
