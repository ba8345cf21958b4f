"""Pure ASGI middleware: request ids and the access log line.

Pure ASGI rather than BaseHTTPMiddleware: it adds no task or stream wrapping on the
hot path, and it sees every response, including the ones error handlers produce.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BrokerError
from service.logs import REQUEST_ID
from service.web.errors import note_error, render_broker_error

access_logger = logging.getLogger("service.access")
error_logger = logging.getLogger("service.web")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class _RandomIds:
    """128-bit random ids from the OS's CSPRNG, read 256 at a time: one `getrandom`
    call per id cost ~7 µs of a mint on this VM (a system call per request), a slice of
    a buffer costs well under one. A forked child starts with an empty buffer, so two
    processes never hand out the same ids."""

    _BATCH = 256

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._buffer, self._offset = b"", 0

    def next_hex(self) -> str:
        offset = self._offset
        if offset >= len(self._buffer):
            self._buffer, offset = os.urandom(16 * self._BATCH), 0
        self._offset = offset + 16
        return self._buffer[offset : offset + 16].hex()


_random_ids = _RandomIds()


def request_id_from(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"x-request-id":
            try:
                candidate = value.decode("ascii")
            except UnicodeDecodeError:
                break
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
            break
    # 128 random bits as 32 hex digits, like uuid4().hex without building a UUID.
    return _random_ids.next_hex()


def route_template(scope: Scope) -> str | None:
    """The matched route's template (`/v1/organization/users/{user_id:path}`), never the
    raw path, so that a metric label stays bounded; None when no route matched."""
    route = scope.get("route")
    if route is None and "endpoint" in scope:
        # Starlette before 1.1 does not put the route in the scope: find it by endpoint.
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
        route = next((r for r in routes if getattr(r, "endpoint", None) is scope["endpoint"]), None)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


# on_request(scope, status, seconds): called once per request when it has ended.
RequestObserver = Callable[[Scope, int, float], None]


class RequestContextMiddleware:
    """Gives every request an id (echoing a valid incoming X-Request-ID), puts it on
    every response, and writes one access line per request; `on_request` (the metrics
    hook) is told of every request's end."""

    def __init__(self, app: ASGIApp, *, on_request: RequestObserver | None = None) -> None:
        self.app = app
        self.on_request = on_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        # For the lines written on this request's behalf below the web layer (audit).
        bound = REQUEST_ID.set(request_id)
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Rendered here, not by Starlette's ServerErrorMiddleware, so that even an
            # unexpected failure gets the error shape and the request id. The traceback
            # goes to the log only.
            error_logger.exception("unhandled error", extra={"request_id": request_id})
            if started_response:
                raise
            error = BrokerError("Internal server error.")
            note_error(scope, error)
            await render_broker_error(error)(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(bound)
            elapsed = time.perf_counter() - started
            if self.on_request is not None:
                self.on_request(scope, status, elapsed)
            if access_logger.isEnabledFor(logging.INFO):
                line = {
                    "event": "access",
                    "request_id": request_id,
                    "method": scope.get("method"),
                    # The route's template, as the metrics have it: never the query (a
                    # client may put its JWT there, `?access_token=`, refused, not
                    # logged), nor a user id of the path (the line's `user_hash` is the
                    # keyed hash: an id beside it would pair the two), nor an unmatched
                    # path (whatever a caller sent: "other").
                    "path": route_template(scope) or "other",
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 3),
                    "tenant": state.get("tenant"),
                    "user_hash": state.get("user_hash"),
                }
                if status >= 400:
                    # The error's code, and a refused token's reason (a fixed word):
                    # what the caller was told, and why, at info level.
                    line["error"] = state.get("error")
                    if "reason" in state:
                        line["reason"] = state["reason"]
                access_logger.info("request", extra=line)
