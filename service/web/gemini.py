"""The Gemini Live token endpoints (README "Gemini Live"): Google's `auth_tokens` in
Google's shape, so that `google-genai` and `@google/genai` mint through the broker with
the app user's JWT as their API key.

POST /v1alpha/auth_tokens   an AuthToken in (`uses`, `expireTime`, `newSessionExpireTime`,
POST /v1beta/auth_tokens    `bidiGenerateContentSetup`, `fieldMask`), the token out
                            (`name`, and the locked setup and limits). The version the
                            broker calls upstream is the tenant's GEMINI_API_VERSION.

The JWT comes where the SDKs put a key, `x-goog-api-key`, or as `Authorization: Bearer`;
both at once is refused (which one would count?). Every error on these routes is
Google's `{"error": {code, message, status}}` (service.gemini.errors), so that the SDKs
raise their typed errors: an unexpected one too (500 `INTERNAL`, its traceback in the
log as the middleware logs any other).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.errors import BrokerError
from service.gemini.errors import google_error_body
from service.gemini.minting import GeminiMinting
from service.logs import current_request_id
from service.timing import PhaseTimer
from service.web.bodies import read_body
from service.web.errors import note_error
from service.web.handlers import authorization_values, note_caller
from service.web.openapi import OBJECT, STRING, UPSTREAM, DocumentedRoute, Operation, json_body

# The middleware's logger: an unexpected error's traceback goes where every other's goes.
error_logger = logging.getLogger("service.web")

PATHS = ("/v1alpha/auth_tokens", "/v1beta/auth_tokens")
KEY_HEADER = "x-goog-api-key"

_TIME = {"type": "string", "format": "date-time"}
_AUTH_TOKEN = {
    "type": "object",
    "properties": {
        "uses": {"type": "integer"},
        "expireTime": _TIME,
        "newSessionExpireTime": _TIME,
        "bidiGenerateContentSetup": OBJECT,
        "fieldMask": STRING,
    },
}


CREATE_AUTH_TOKEN = Operation(
    "Mint a Gemini Live ephemeral token (Google's AuthToken shape): the role's policy "
    "applied to its setup, the whole setup locked, one use, a bounded expiry.",
    {
        "type": "object",
        "required": ["name", "uses", "expireTime", "newSessionExpireTime"],
        "properties": {
            "name": STRING,
            "uses": {"const": 1},
            "expireTime": _TIME,
            "newSessionExpireTime": _TIME,
            "bidiGenerateContentSetup": OBJECT,
        },
    },
    (*UPSTREAM, 404),
    request=json_body(_AUTH_TOKEN),
    error_schema="GoogleErrorResponse",
)


def key_values(request: Request) -> list[str]:
    """The caller's credentials as `Authorization` values: an SDK's `x-goog-api-key`
    (the JWT), or the header itself."""
    keys = request.headers.getlist(KEY_HEADER)
    return [f"Bearer {key}" for key in keys] + authorization_values(request)


async def create_auth_token(request: Request) -> Response:
    try:
        return await _create(request)
    except BrokerError as exc:
        return _google_error(request, exc)
    except Exception:
        # Rendered here, not by the middleware, so that the SDKs read Google's shape even
        # from a bug; the traceback goes to the log only.
        error_logger.exception("unhandled error", extra={"request_id": current_request_id()})
        return _google_error(request, BrokerError("Internal server error."))


def _google_error(request: Request, exc: BrokerError) -> Response:
    note_error(request.scope, exc)
    return JSONResponse(google_error_body(exc), status_code=exc.status, headers=exc.headers)


async def _create(request: Request) -> Response:
    minting: GeminiMinting = request.app.state.gemini_minting
    # Server-Timing splits the mint so that a slow phase shows from the outside.
    timer = PhaseTimer()
    # The caller first: an anonymous request's body is neither read nor parsed.
    identity = await minting.broker.identify(key_values(request))
    note_caller(request, identity.tenant, identity.user_id)
    upstream = minting.upstream(identity)
    timer.mark("jwt")
    raw = await read_body(request)
    # Receiving the body is the network's time, not a phase of the mint.
    timer.skip()
    minted = await minting.mint(upstream, identity, raw, timer=timer)
    return JSONResponse(minted.body, headers=minted.headers)


def gemini_routes() -> list[Route]:
    return [DocumentedRoute(path, create_auth_token, post=CREATE_AUTH_TOKEN) for path in PATHS]
