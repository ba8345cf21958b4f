"""`GET` and `POST /v1/vector_stores`: the tenant's vector stores, proxied with the server key.

Order matters: authenticate (401), then validate (400) before anything touches the store
or the upstream, then admit and check the role (403, 429), then forward. The upstream's
JSON is passed back as it came, so the official SDKs (pagination included) work unchanged.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.vector_stores.checks import parse_list_params, validate_create
from service.vector_stores.proxy import (
    CREATE_ROLES,
    LIST_ROLES,
    VECTOR_STORES_PATH,
    Proxied,
    UpstreamCall,
    forward,
)
from service.web.bodies import read_json_object
from service.web.handlers import authenticate, broker_of


def _render(proxied: Proxied) -> Response:
    # A user's knowledge base is private: no shared cache may keep it.
    headers = {"Cache-Control": "no-store", **proxied.headers}
    return JSONResponse(proxied.body, headers=headers)


async def list_vector_stores(request: Request) -> Response:
    broker = broker_of(request)
    identity = await authenticate(request)
    # multi_items, so that a repeated parameter is refused rather than silently collapsed.
    params = parse_list_params(request.query_params.multi_items())
    call = UpstreamCall("GET", VECTOR_STORES_PATH, params=params)
    return _render(await forward(broker, identity, call, roles=LIST_ROLES))


async def create_vector_store(request: Request) -> Response:
    broker = broker_of(request)
    # Before the body is read: an anonymous caller's bytes are never parsed.
    identity = await authenticate(request)
    # Every field is optional: an empty body is an empty object, as for the mints.
    body = validate_create(await read_json_object(request, empty={}))
    call = UpstreamCall("POST", VECTOR_STORES_PATH, json_body=body)
    return _render(await forward(broker, identity, call, roles=CREATE_ROLES))


def vector_store_routes() -> list[Route]:
    """The routes to add to the app: one path, one handler per method."""
    return [
        Route("/v1/vector_stores", list_vector_stores, methods=["GET"]),
        Route("/v1/vector_stores", create_vector_store, methods=["POST"]),
    ]
