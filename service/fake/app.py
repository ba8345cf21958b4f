"""The built-in fake upstream: an in-process ASGI app speaking OpenAI's mint and vector-store
endpoints, for dev mode, tests and benchmarks (`token-broker fake-upstream --port N`), and,
beside them at Google's paths, the fake Gemini (service.fake.gemini: ephemeral tokens and
the Live peer).

It is honest where it matters to the broker: responses validate against the reference
OpenAPI schemas, secrets are `ek_...` with a real `expires_at` (from the injected clock),
and requests OpenAI would refuse are refused with OpenAI's error shape (unknown fields such
as `temperature` in a GA session, wrong types, out-of-range values, a missing key).

All state (vector stores, the call counter) lives on the app instance.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.clock import Clock, system_clock
from service.fake.calls import FakeCalls, fake_call_routes
from service.fake.gemini import FakeGemini
from service.fake.live import FakeLiveSessions, fake_live_routes
from service.fake.sessions import (
    beta_session,
    beta_transcription_session,
    ga_client_secret,
    translation_client_secret,
)
from service.fake.shapes import RequestShapes
from service.fake.validate import Refusal, Shape, choice
from service.fake.vector_stores import VectorStores

Handler = Callable[[Request], Awaitable[Response]]


def _masked(key: str) -> str:
    # OpenAI echoes a wrong key this way; the broker must never pass that text on.
    return f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _check_auth(request: Request, api_key: str | None) -> None:
    presented = _bearer(request) or request.headers.get("api-key", "").strip()
    if not presented:
        raise Refusal(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    if api_key is not None and presented != api_key:
        raise Refusal(
            401,
            f"Incorrect API key provided: {_masked(presented)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = None
    if not isinstance(body, dict):
        raise Refusal(
            400,
            "We could not parse the JSON body of your request. The OpenAI API expects a "
            "JSON object as the body.",
            code="invalid_json",
        )
    return body


def _query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise Refusal(
            400,
            f"Invalid '{name}': expected an integer between {lo} and {hi}, but got {raw!r}.",
            param=name,
            code="invalid_value",
        )
    return value


def create_fake_app(
    *, clock: Clock = system_clock, api_key: str | None = None, usage_interval: float = 1.0
) -> Starlette:
    """Build a fresh fake upstream with its own, empty state.

    `clock` dates secrets and vector stores. `api_key`, when given, is the only key the fake
    accepts (others get OpenAI's 401 `invalid_api_key`), except that a client secret it
    minted, until it expires, places a call (`POST /v1/realtime/calls`), as at OpenAI; by
    default any non-empty key passes.
    `app.state.calls` counts requests per "METHOD /path", for tests; `app.state.realtime_calls`
    is the registry of WebRTC calls (service.fake.calls), `app.state.live_sessions` that of
    GPT-Live sessions (service.fake.live), which report their usage every `usage_interval`
    seconds; `app.state.gemini` is the fake Gemini (its tokens, the requests it received,
    its Live sessions), which takes the same `api_key` in `x-goog-api-key`.
    """
    shapes = RequestShapes.build()
    stores = VectorStores()
    calls: Counter[str] = Counter()
    order_shape = choice("asc", "desc")
    realtime_calls = FakeCalls()
    live_sessions = FakeLiveSessions(clock=clock, usage_interval=usage_interval)
    gemini = FakeGemini(clock=clock, api_key=api_key)

    def sideband_authorized(authorization: str, azure_key: str = "") -> bool:
        # A bearer token (OpenAI), or Azure's `api-key` header.
        scheme, _, token = authorization.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        token = token or azure_key.strip()
        return bool(token) and (api_key is None or token == api_key)

    def endpoint(handler: Handler, *, client_secrets: bool = False) -> Handler:
        async def run(request: Request) -> Response:
            calls[f"{request.method} {request.url.path}"] += 1
            if not (client_secrets and realtime_calls.secret_valid(_bearer(request), clock())):
                _check_auth(request, api_key)
            return await handler(request)

        return run

    def secret_endpoint(handler: Handler) -> Handler:
        return endpoint(handler, client_secrets=True)

    def mint(
        shape: Shape,
        build: Callable[[dict[str, Any], float], dict[str, Any]],
        *,
        places_calls: bool = True,
    ) -> Handler:
        async def handle(request: Request) -> Response:
            body = await _json_object(request)
            shape(body, "")
            minted = build(body, clock())
            if not places_calls:
                # A translation secret opens translation sessions, not Realtime calls.
                return JSONResponse(minted)
            # A call placed with this secret (dev mode's demo page) starts with its session.
            issued = minted if "value" in minted else minted.get("client_secret", {})
            secret, expires_at = issued.get("value"), issued.get("expires_at")
            if isinstance(secret, str) and isinstance(expires_at, int):
                session = minted.get("session")
                realtime_calls.remember(
                    secret, expires_at, session if isinstance(session, dict) else None
                )
            return JSONResponse(minted)

        return endpoint(handle)

    async def list_vector_stores(request: Request) -> Response:
        query = request.query_params
        order = query.get("order", "desc")
        order_shape(order, "order")
        page = stores.page(
            limit=_query_int(request, "limit", 20, 1, 100),
            order=order,
            after=query.get("after") or None,
            before=query.get("before") or None,
        )
        return JSONResponse(page)

    async def create_vector_store(request: Request) -> Response:
        body = await _json_object(request)
        shapes.vector_store_create(body, "")
        return JSONResponse(stores.create(body, clock()))

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = f"Invalid URL ({request.method} {request.url.path})"
        if exc.status_code == 405:
            message = f"Method not allowed ({request.method} {request.url.path})"
        body = Refusal(exc.status_code, message).body()
        return JSONResponse(body, status_code=exc.status_code)

    app = Starlette(
        routes=[
            Route(
                "/v1/realtime/client_secrets",
                mint(shapes.ga_client_secret, ga_client_secret),
                methods=["POST"],
            ),
            Route(
                "/v1/realtime/translations/client_secrets",
                mint(
                    shapes.translation_client_secret, translation_client_secret, places_calls=False
                ),
                methods=["POST"],
            ),
            Route(
                "/v1/realtime/sessions",
                mint(shapes.beta_session, beta_session),
                methods=["POST"],
            ),
            Route(
                "/v1/realtime/transcription_sessions",
                mint(shapes.beta_transcription, beta_transcription_session),
                methods=["POST"],
            ),
            Route("/v1/vector_stores", endpoint(list_vector_stores), methods=["GET"]),
            Route("/v1/vector_stores", endpoint(create_vector_store), methods=["POST"]),
            *fake_call_routes(
                realtime_calls,
                endpoint=endpoint,
                session_shape=shapes.ga_client_secret,
                authorized=sideband_authorized,
                secret_endpoint=secret_endpoint,
            ),
            *fake_live_routes(
                live_sessions,
                endpoint=endpoint,
                create_shape=shapes.live_create,
                authorized=sideband_authorized,
            ),
            *gemini.routes(),
        ],
        exception_handlers={Refusal: refused, HTTPException: http_error},
    )
    app.state.calls = calls
    app.state.realtime_calls = realtime_calls
    app.state.live_sessions = live_sessions
    app.state.gemini = gemini
    return app
