"""HTTP handlers: parse, call one Broker method, render.

Every handler that takes a body authenticates its caller first: a request without a
valid token is a 401 that reads nothing of its body (an anonymous caller's bytes are
never parsed), and the body is parsed only after that, within its caps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.auth.tokens import Identity
from service.mint.broker import Broker
from service.redact import user_hash
from service.session.model import Endpoint
from service.timing import PhaseTimer
from service.web.bodies import read_body

Handler = Callable[[Request], Awaitable[Response]]


def broker_of(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def authorization_values(request: Request) -> list[str]:
    return request.headers.getlist("authorization")


def note_caller(request: Request, identity: Identity) -> None:
    """Known from here on, so the access line and CORS see the tenant even when the
    request is refused (429, 400, 502): the tenant and a hash, never the user id."""
    request.scope["state"]["tenant"] = identity.tenant
    request.scope["state"]["user_hash"] = user_hash(identity.tenant, identity.user_id)


async def authenticate(request: Request) -> Identity:
    """The caller, before anything of the body is read."""
    identity = await broker_of(request).authenticate(authorization_values(request))
    note_caller(request, identity)
    return identity


def mint_handler(endpoint: Endpoint) -> Handler:
    async def mint(request: Request) -> Response:
        broker = broker_of(request)
        # Server-Timing splits the mint so that a slow phase shows from the outside.
        timer = PhaseTimer()
        # Authentication first: an anonymous caller's body is neither read nor parsed.
        identity = await broker.identify(authorization_values(request))
        timer.mark("jwt")
        note_caller(request, identity)
        raw = await read_body(request)
        # Receiving the body is the network's time, not a phase of the mint.
        timer.skip()
        minted = await broker.mint(endpoint, identity, raw, timer=timer)
        return JSONResponse(minted.body, headers=minted.headers)

    return mint


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    broker = broker_of(request)
    if await broker.store.ping():
        return JSONResponse({"status": "ready"})
    return JSONResponse(
        {
            "error": {
                "message": "The state store is unreachable.",
                "type": "service_unavailable",
                "param": None,
                "code": "store_unavailable",
            }
        },
        status_code=503,
    )
