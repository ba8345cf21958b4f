"""CORS per tenant (CORS_ORIGINS), as a pure ASGI middleware.

Hand-written rather than Starlette's CORSMiddleware: that one has a single origin list
and adds its headers before the app runs, while here the allowed origins depend on the
tenant, which is only known once the handler has authenticated the request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PermissionDenied
from service.web.errors import render_broker_error
from service.web.middleware import request_id_from

logger = logging.getLogger(__name__)

# Location: the call id of POST /v1/realtime/calls (the Agents SDK reads it).
EXPOSED_HEADERS = (
    "Location, Retry-After, X-Request-ID, X-Policy-Adjusted, Server-Timing, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
# What the official SDKs send (OpenAI's; Google's puts its key, here the app JWT, in
# x-goog-api-key); used when a preflight names no headers.
DEFAULT_ALLOWED_HEADERS = (
    "Authorization, Content-Type, X-Request-ID, OpenAI-Beta, x-goog-api-key, x-goog-api-client"
)
MAX_AGE = "600"
ANY = "*"
# An echoed Access-Control-Request-Headers value: header names, commas and spaces only.
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~\-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~\-]+)*$")
# Refused preflights: one summary line per interval, at most this many distinct origins
# remembered meanwhile (anyone can send them, unauthenticated), and a few named as examples.
REFUSAL_INTERVAL = 60.0
MAX_TRACKED_ORIGINS = 1000
REFUSAL_EXAMPLES = 3
HINT = "add the origin to BROKER_CORS_ORIGINS (or the tenant's BROKER_<TENANT>_CORS_ORIGINS)"


class RefusalLog:
    """The log lines of refused preflights, bounded in memory and in lines whatever
    callers send. The first refusal after a quiet interval is logged at once, naming its
    origin; those that follow within `interval` seconds are counted, and one line sums
    them up when the interval ends: how many, from how many distinct origins (counted up
    to `max_tracked`, which bounds the memory), a few of them as examples. A flood is
    then one line per interval, however many origins it comes from.

    `clock` (monotonic seconds) is injectable so that tests need not wait an interval.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = REFUSAL_INTERVAL,
        max_tracked: int = MAX_TRACKED_ORIGINS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._max_tracked = max_tracked
        self._clock = clock
        # When the current interval ends; None: quiet, the next refusal is logged at once.
        self._ends_at: float | None = None
        self._held = 0
        # Insertion-ordered, so that the examples are the first origins seen.
        self._origins: dict[str, None] = {}
        self._more_origins = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def tracked(self) -> int:
        """Distinct origins remembered now (never more than `max_tracked`)."""
        return len(self._origins)

    def refused(self, origin: str) -> None:
        now = self._clock()
        if self._ends_at is not None and now >= self._ends_at:
            self.flush()
        if self._ends_at is None:
            self._ends_at = now + self._interval
            self._logger.warning(
                "CORS: a preflight from %s was refused; %s", origin, HINT, extra={"origin": origin}
            )
            return
        self._held += 1
        if origin not in self._origins:
            if len(self._origins) < self._max_tracked:
                self._origins[origin] = None
            else:
                self._more_origins = True
        if self._timer is None:
            self._schedule(self._ends_at - now)

    def flush(self) -> None:
        """End the current interval: one line for the refusals held back, if any. Called
        when the interval is over (a timer on the running loop, or the next refusal)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._held:
            self._ends_at = None
            return
        distinct = f"{len(self._origins)}{'+' if self._more_origins else ''}"
        examples = ", ".join(list(self._origins)[:REFUSAL_EXAMPLES])
        self._logger.warning(
            "CORS: %d more preflights refused in the last %.0f s, from %s distinct origins "
            "(e.g. %s); %s",
            self._held,
            self._interval,
            distinct,
            examples,
            HINT,
            extra={"refused": self._held, "origins": distinct},
        )
        # The flood may go on: a new interval starts now, and sums up its own refusals.
        self._ends_at = self._clock() + self._interval
        self._held = 0
        self._origins = {}
        self._more_origins = False

    def _schedule(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a direct call): the next refusal after the interval flushes
        self._timer = loop.call_later(max(delay, 0.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()


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
    One from an origin that is not allowed gets a 403 saying so, rather than the router's
    405, and is logged by `refusals` (a line naming BROKER_CORS_ORIGINS, then one summary
    per interval while they go on; see RefusalLog). `scheme://host:*` in a list
    allows any port of that host (dev mode allows http://localhost:* and
    http://127.0.0.1:* by default).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        origins: Mapping[str, Iterable[str]],
        refusals: RefusalLog | None = None,
    ) -> None:
        self.app = app
        self._by_tenant = {tenant: frozenset(values) for tenant, values in origins.items()}
        self._any_tenant = frozenset().union(*self._by_tenant.values())
        self.refusals = refusals or RefusalLog(logger)

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
                await self._refuse(scope, origin, receive, send)
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

    async def _refuse(self, scope: Scope, origin: str, receive: Receive, send: Send) -> None:
        self.refusals.refused(origin[:100].encode("ascii", "replace").decode())
        refusal = PermissionDenied(
            "This origin is not allowed to call the broker: its operator lists allowed "
            "origins in BROKER_CORS_ORIGINS.",
            code="origin_not_allowed",
        )
        response = render_broker_error(refusal)
        # Answered before RequestContextMiddleware runs: the request id is set here.
        response.headers["X-Request-ID"] = request_id_from(scope)
        response.headers["Vary"] = "Origin"
        await response(scope, receive, send)

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
