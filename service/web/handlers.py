"""HTTP handlers: parse, call one Broker method, render."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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


def mint_handler(endpoint: Endpoint) -> Handler:
    async def mint(request: Request) -> Response:
        broker = broker_of(request)
        raw = await read_body(request)
        # Server-Timing splits the mint so that a slow phase shows from the outside.
        timer = PhaseTimer()
        # Authentication first: an anonymous caller learns nothing about its body.
        identity = await broker.identify(authorization_values(request))
        timer.mark("jwt")
        # Known from here on, so the access line and CORS see the tenant even when the
        # mint is refused (429, 400, 502).
        request.scope["state"]["tenant"] = identity.tenant
        request.scope["state"]["user_hash"] = user_hash(identity.tenant, identity.user_id)
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
