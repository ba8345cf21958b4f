"""`GET` and `POST /v1/vector_stores`: the tenant's vector stores, proxied with the server key.

Order matters: authenticate (401), then validate (400) before anything touches the store
or the upstream, then admit and check the role (403, 429), then forward. The upstream's
JSON is passed back as it came, so the official SDKs (pagination included) work unchanged.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.vector_stores.checks import LIST_ORDERS, check_object_id, validate_create
from service.vector_stores.proxy import (
    CREATE_ROLES,
    LIST_ROLES,
    VECTOR_STORES_PATH,
    Proxied,
    UpstreamCall,
    forward,
)
from service.web.bodies import read_json_object
from service.web.handlers import authenticate, broker_of, parse_page_query
from service.web.openapi import (
    LIMIT,
    LIST,
    OBJECT,
    STRING,
    UPSTREAM,
    DocumentedRoute,
    Operation,
    json_body,
    query,
)

PATH = "/v1/vector_stores"
LIST_STORES = Operation(
    "List the tenant's vector stores (proxied).",
    LIST,
    (*UPSTREAM, 404),
    parameters=(
        query("limit", LIMIT),
        query("order", {"enum": sorted(LIST_ORDERS)}),
        query("after", STRING),
        query("before", STRING),
    ),
)
CREATE_STORE = Operation(
    "Create a vector store (owner; validated, then proxied).",
    {"type": "object", "required": ["id", "object"]},
    (*UPSTREAM, 404),
    request=json_body(OBJECT),
)


def _render(proxied: Proxied) -> Response:
    # A user's knowledge base is private: no shared cache may keep it.
    headers = {"Cache-Control": "no-store", **proxied.headers}
    return JSONResponse(proxied.body, headers=headers)


async def list_vector_stores(request: Request) -> Response:
    broker = broker_of(request)
    identity = await authenticate(request)
    page = parse_page_query(
        request.query_params.multi_items(),
        cursor=check_object_id,
        cursors=("after", "before"),
        orders=LIST_ORDERS,
    )
    params = {"limit": str(page.limit), "order": page.order or LIST_ORDERS[0], **page.cursors}
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
        DocumentedRoute(PATH, list_vector_stores, get=LIST_STORES),
        DocumentedRoute(PATH, create_vector_store, post=CREATE_STORE),
    ]
