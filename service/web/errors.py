"""The one place errors become HTTP responses: OpenAI's error shape, always JSON."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.errors import BrokerError, InvalidToken

logger = logging.getLogger("service.web")

_HTTP_CODES = {
    404: ("invalid_request_error", "not_found", "No such route."),
    405: ("invalid_request_error", "method_not_allowed", "Method not allowed on this route."),
}


def error_response(
    status: int, type_: str, code: str, message: str, param: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def render_broker_error(exc: BrokerError) -> Response:
    response = JSONResponse(exc.body(), status_code=exc.status)
    response.headers.update(exc.headers)
    return response


async def broker_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BrokerError)
    if isinstance(exc, InvalidToken) and exc.reason:
        # The reason helps an operator debug an identity-provider setup; it never holds
        # the token itself.
        logger.debug("token refused: %s", exc.reason)
    return render_broker_error(exc)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    type_, code, message = _HTTP_CODES.get(
        exc.status_code, ("invalid_request_error", "invalid_request", "Invalid request.")
    )
    response = error_response(exc.status_code, type_, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def server_error_handler(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this handler so the server still logs the traceback;
    # the caller only ever sees the error shape, never a stack trace.
    return error_response(500, "server_error", "internal_error", "Internal server error.")
