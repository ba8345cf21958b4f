"""The fake Gemini's routes, at Google's paths: `POST /{v1alpha,v1beta}/auth_tokens` (the
API key in `x-goog-api-key` or `?key=`), the Live WebSocket
(`/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContentConstrained`),
and, for tests looking in from another process, `GET /_fake/gemini/auth_tokens` (the create
requests received, credentials as digests) and `GET /_fake/gemini/sessions` (the sessions
started, with their effective setups).

The SDKs build the Live URL as their base URL plus `/ws/...`, and a base URL ending in `/`
makes that `//ws/...` (Google answers both): so does the fake.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from service.clock import Clock
from service.fake.gemini.live import serve_session
from service.fake.gemini.shapes import GeminiShapes
from service.fake.gemini.status import GoogleError, invalid_payload
from service.fake.gemini.tokens import FakeAuthTokens
from service.fake.validate import Refusal

VERSIONS = ("v1alpha", "v1beta")
LIVE_PATH = (
    "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContentConstrained"
)
Handler = Callable[[Request], Awaitable[Response]]


class FakeGemini:
    """The fake Gemini's state: `tokens` (service.fake.gemini.tokens) and the shapes it
    holds requests to. `api_key`, when given, is the only key it accepts."""

    def __init__(self, *, clock: Clock, api_key: str | None = None) -> None:
        self.tokens = FakeAuthTokens(clock=clock)
        self.shapes = GeminiShapes.build()
        self.api_key = api_key

    def check_key(self, request: Request) -> None:
        key = _credentials(request).get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise GoogleError(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if self.api_key is not None and key != self.api_key:
            raise GoogleError(
                400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID"
            )

    def routes(self) -> list[BaseRoute]:
        return [
            *(
                Route(f"/{version}/auth_tokens", self._create(version), methods=["POST"])
                for version in VERSIONS
            ),
            Route("/_fake/gemini/auth_tokens", self._guarded(self._received), methods=["GET"]),
            Route("/_fake/gemini/sessions", self._guarded(self._sessions), methods=["GET"]),
            *self.live_routes(),
        ]

    def live_routes(self) -> list[BaseRoute]:
        """The Live WebSocket alone (dev mode serves it beside the broker's routes)."""
        paths = [LIVE_PATH.format(version=version) for version in VERSIONS]
        return [WebSocketRoute(p, self._live) for path in paths for p in (path, "/" + path)]

    def _create(self, version: str) -> Handler:
        async def create(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else {}
            except (UnicodeDecodeError, ValueError):
                body = None
            entry = self.tokens.record(version, _credentials(request), body)
            try:
                self.check_key(request)
                if not isinstance(body, dict):
                    raise GoogleError(400, "Invalid JSON payload received. Expected an object.")
                try:
                    read = self.shapes.read_token(body)
                except Refusal as refusal:
                    raise invalid_payload(refusal) from None
                token = self.tokens.issue(read)
            except GoogleError as error:
                entry["status"] = error.code
                return JSONResponse(error.body(), status_code=error.code)
            entry["status"] = 200
            # Google answers with the token's name: every other field is input only.
            return JSONResponse({"name": token.name})

        return create

    def _guarded(self, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                self.check_key(request)
            except GoogleError as error:
                return JSONResponse(error.body(), status_code=error.code)
            return await handler(request)

        return run

    async def _received(self, request: Request) -> Response:
        return JSONResponse({"data": list(self.tokens.received)})

    async def _sessions(self, request: Request) -> Response:
        return JSONResponse({"data": list(self.tokens.sessions)})

    async def _live(self, websocket: WebSocket) -> None:
        await serve_session(websocket, self.tokens, self.shapes)


def _credentials(request: Request) -> dict[str, str]:
    """Where credentials came in this request (what the recorded requests show)."""
    found = {
        name: request.headers[name]
        for name in ("x-goog-api-key", "authorization")
        if request.headers.get(name)
    }
    if request.query_params.get("key"):
        found["?key"] = request.query_params["key"]
    return found
