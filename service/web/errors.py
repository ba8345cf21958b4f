"""The one place errors become HTTP responses: OpenAI's error shape, always JSON.

Every refusal is a `BrokerError` (service.errors draws the tree) and
`render_broker_error` is its only renderer: the exception handlers below, the
middleware's 500 and the relay's denial all answer through it. Starlette's own refusals
(no route, wrong method) are translated into `BrokerError`s first. Each handler also
notes the error's code (and a refused token's reason) for the request's access line
(web.middleware).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from service.errors import BrokerError, InvalidRequest, InvalidToken, NotFound


class MethodNotAllowed(InvalidRequest):
    status = 405
    code = "method_not_allowed"


def render_broker_error(exc: BrokerError) -> Response:
    """The error's JSON body (`BrokerError.body`), status and headers."""
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


def note_error(scope: Scope, exc: BrokerError) -> None:
    """For the access line: the error's code, and why a token was refused (a fixed word,
    never the token); the caller's body stays the same whatever the reason."""
    state = scope.setdefault("state", {})
    state["error"] = exc.code
    if isinstance(exc, InvalidToken) and exc.reason:
        state["reason"] = exc.reason


def http_error(exc: HTTPException) -> BrokerError:
    """Starlette's refusals as the broker's own errors."""
    error: BrokerError
    if exc.status_code == 404:
        error = NotFound("No such route.")
    elif exc.status_code == 405:
        error = MethodNotAllowed("Method not allowed on this route.")
    else:
        error = InvalidRequest("Invalid request.", code="invalid_request")
        error.status = exc.status_code
    error.headers.update(exc.headers or {})
    return error


async def broker_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BrokerError)
    note_error(request.scope, exc)
    return render_broker_error(exc)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = http_error(exc)
    note_error(request.scope, error)
    return render_broker_error(error)
