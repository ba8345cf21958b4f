"""HTTP handlers: parse, call one Broker method, render."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.broker import Broker
from service.redact import user_hash
from service.session import Endpoint
from service.web.bodies import read_json_object

Handler = Callable[[Request], Awaitable[Response]]


def broker_of(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def authorization_values(request: Request) -> list[str]:
    return request.headers.getlist("authorization")


def mint_handler(endpoint: Endpoint) -> Handler:
    async def mint(request: Request) -> Response:
        broker = broker_of(request)
        body = await read_json_object(request, empty={})
        minted = await broker.mint(endpoint, authorization_values(request), body)
        request.scope["state"]["tenant"] = minted.identity.tenant
        request.scope["state"]["user_hash"] = user_hash(
            minted.identity.tenant, minted.identity.user_id
        )
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
