"""HTTP handlers: parse, call one Broker method, render; and the steps every handler shares.

Every handler that takes a body authenticates its caller first: a request without a
valid token is a 401 that reads nothing of its body (an anonymous caller's bytes are
never parsed), and the body is parsed only after that, within its caps. The caller is
noted for the access line in one place (`note_caller`, through `authenticate` and
`authorize`), and a list's query string is read by one parser (`parse_page_query`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.auth.tokens import Identity
from service.directory import Actor, Directory
from service.errors import InvalidValue, ServiceUnavailable, UnknownParameter
from service.mint.broker import Broker
from service.redact import user_hash
from service.session.model import Endpoint
from service.timing import PhaseTimer
from service.web.bodies import read_body
from service.web.openapi import OBJECT, UPSTREAM, DocumentedRoute, Operation, json_body

Handler = Callable[[Request], Awaitable[Response]]


def broker_of(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def authorization_values(request: Request) -> list[str]:
    return request.headers.getlist("authorization")


def note_caller(request: Request, tenant: str, user_id: str | None) -> None:
    """Known from here on, so the access line and CORS see the tenant even when the
    request is refused (429, 400, 502): the tenant and a hash, never the user id (an
    admin key has no user)."""
    state = request.scope.setdefault("state", {})
    state["tenant"] = tenant
    if user_id is not None:
        state["user_hash"] = user_hash(tenant, user_id)


# The routes that reach OpenAI's API (mints, calls, GPT-Live, vector stores): a tenant
# whose upstream is Gemini has none of them (its mint is POST /v1alpha/auth_tokens).
OPENAI_ROUTES = ("/v1/realtime", "/v1/live", "/v1/vector_stores")


async def authenticate(request: Request, *, mint: bool = False) -> Identity:
    """The caller's JWT, before anything of the body is read; a mint's refusal also
    counts as an unauthorized mint (metrics). A Gemini tenant's caller on one of OpenAI's
    routes is a 404 that says where its mint is (`Broker.openai_upstream`)."""
    broker = broker_of(request)
    values = authorization_values(request)
    identity = await (broker.identify(values) if mint else broker.authenticate(values))
    note_caller(request, identity.tenant, identity.user_id)
    if request.scope["path"].startswith(OPENAI_ROUTES):
        broker.openai_upstream(identity.tenant)
    return identity


async def authorize(request: Request, directory: Directory) -> Actor:
    """A tenant's admin key or one of its owners (the organization-users and
    call-control endpoints); a JWT is noted as soon as it verifies, so that an owner
    refused for its role still shows in the access line."""

    async def verify(values: Sequence[str]) -> Identity:
        return await authenticate(request)

    actor = await directory.authorize(authorization_values(request), verify)
    note_caller(request, actor.tenant, actor.user_id)
    return actor


# ---------------------------------------------------------------------------------------
# The query string of a list (calls, organization users, vector stores)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# ASCII digits only: `str.isdigit` also takes "²", which `int` then refuses (a 500), and
# `int` takes " 5", "+5" and "5_0"; three digits are enough for 100.
_LIMIT = re.compile(r"[0-9]{1,3}")
# An unknown parameter's name is the caller's text: echoed, but no longer than this.
_MAX_SHOWN_NAME = 64

# Checks one cursor's value: (param, value) → the value, or raises InvalidValue.
CursorCheck = Callable[[str, str], str]


@dataclass(frozen=True, slots=True)
class PageQuery:
    """A list's query, checked: the page size, the cursors given, the order (if any)."""

    limit: int = DEFAULT_LIMIT
    cursors: Mapping[str, str] = field(default_factory=dict)
    order: str | None = None

    @property
    def after(self) -> str | None:
        return self.cursors.get("after")


def parse_page_query(
    items: Iterable[tuple[str, str]],
    *,
    cursor: CursorCheck,
    cursors: tuple[str, ...] = ("after",),
    orders: tuple[str, ...] = (),
) -> PageQuery:
    """`limit` (1 to 100, default 20), the `cursors` (each checked by `cursor`) and, when
    `orders` names its values, `order` (default: the first). Pass every pair as received
    (`request.query_params.multi_items()`): a repeated parameter is refused, not
    collapsed, and so is any other parameter; each refusal is a 400 naming its `param`."""
    known = {"limit", *cursors, *(("order",) if orders else ())}
    given: dict[str, str] = {}
    for name, value in items:
        if name not in known:
            shown = name if len(name) <= _MAX_SHOWN_NAME else name[:_MAX_SHOWN_NAME] + "…"
            raise UnknownParameter(f"Unknown parameter: '{shown}'.", param=shown)
        if name in given:
            raise InvalidValue(f"'{name}' must be given at most once.", param=name)
        given[name] = value
    limit = DEFAULT_LIMIT
    if "limit" in given:
        text = given["limit"]
        if _LIMIT.fullmatch(text) is None or not 1 <= int(text) <= MAX_LIMIT:
            raise InvalidValue(f"'limit' must be an integer from 1 to {MAX_LIMIT}.", param="limit")
        limit = int(text)
    order = given.get("order", orders[0]) if orders else None
    if order is not None and order not in orders:
        allowed = " or ".join(f"'{value}'" for value in sorted(orders))
        raise InvalidValue(f"'order' must be {allowed}.", param="order")
    checked = {name: cursor(name, given[name]) for name in cursors if name in given}
    return PageQuery(limit=limit, cursors=checked, order=order)


# ---------------------------------------------------------------------------------------
# The mints and the health checks

_EXPIRES_AFTER = {
    "type": "object",
    "properties": {"anchor": {"const": "created_at"}, "seconds": {"type": "integer"}},
}
_MINT_BODY = {
    "type": "object",
    "properties": {"expires_after": _EXPIRES_AFTER, "session": OBJECT},
}
_SESSION_MINT_RESPONSE = {
    "type": "object",
    "required": ["client_secret"],
    "properties": {
        "client_secret": {
            "type": "object",
            "required": ["value", "expires_at"],
            "properties": {"value": {"type": "string"}, "expires_at": {"type": "integer"}},
        }
    },
}
_TRANSLATION_BODY = {
    "type": "object",
    "properties": {
        "expires_after": _EXPIRES_AFTER,
        "session": {
            "type": "object",
            "properties": {"model": {"type": "string"}, "audio": OBJECT},
        },
    },
}
_HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}

MINTS: dict[Endpoint, tuple[str, Operation]] = {
    "client_secrets": (
        "/v1/realtime/client_secrets",
        Operation(
            "Mint a client secret (GA shape).",
            {"type": "object", "required": ["value", "expires_at", "session"]},
            UPSTREAM,
            request=json_body(_MINT_BODY),
        ),
    ),
    "sessions": (
        "/v1/realtime/sessions",
        Operation(
            "Mint a session and its client secret (beta shape).",
            _SESSION_MINT_RESPONSE,
            UPSTREAM,
            request=json_body(OBJECT),
        ),
    ),
    "transcription_sessions": (
        "/v1/realtime/transcription_sessions",
        Operation(
            "Mint a transcription session (beta shape).",
            _SESSION_MINT_RESPONSE,
            UPSTREAM,
            request=json_body(OBJECT),
        ),
    ),
    "translations": (
        "/v1/realtime/translations/client_secrets",
        Operation(
            "Mint a Realtime translation client secret (GA shape): the role's "
            "translation_models and translation_languages apply.",
            {
                "type": "object",
                "required": ["value", "expires_at", "session"],
                "properties": {
                    "session": {
                        "type": "object",
                        "required": ["id", "type", "model", "audio", "expires_at"],
                        "properties": {"type": {"const": "translation"}},
                    }
                },
            },
            UPSTREAM,
            request=json_body(_TRANSLATION_BODY),
        ),
    ),
}
HEALTHZ = Operation("Liveness: the process only.", _HEALTH, secured=False)
READYZ = Operation(
    "Readiness: configuration loaded, the state store answers.", _HEALTH, (503,), secured=False
)


def mint_handler(endpoint: Endpoint) -> Handler:
    async def mint(request: Request) -> Response:
        broker = broker_of(request)
        # Server-Timing splits the mint so that a slow phase shows from the outside.
        timer = PhaseTimer()
        # Authentication first: an anonymous caller's body is neither read nor parsed.
        identity = await authenticate(request, mint=True)
        timer.mark("jwt")
        raw = await read_body(request)
        # Receiving the body is the network's time, not a phase of the mint.
        timer.skip()
        minted = await broker.mint(endpoint, identity, raw, timer=timer)
        return JSONResponse(minted.body, headers=minted.headers)

    return mint


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if not await broker_of(request).store.ping():
        raise ServiceUnavailable("The state store is unreachable.", code="store_unavailable")
    return JSONResponse({"status": "ready"})


def mint_routes() -> list[Route]:
    return [
        DocumentedRoute(path, mint_handler(endpoint), post=operation)
        for endpoint, (path, operation) in MINTS.items()
    ]


def health_routes() -> list[Route]:
    return [
        DocumentedRoute("/healthz", healthz, get=HEALTHZ),
        DocumentedRoute("/readyz", readyz, get=READYZ),
    ]
