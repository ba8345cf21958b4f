"""Dev mode only: the demo page at `/` and `POST /dev/token`, which signs a JWT for a chosen
user and role with the dev secret so the page can sign in without an identity provider,
and the page's scripts under `/dev/static/` (its Gemini mode, and Google's @google/genai
bundled for the browser: service/web/static/genai.mjs, built from tests/js).

The composition root mounts these routes only when `settings.dev` is set: outside dev
mode `/` and `/dev/token` do not exist (404), so no deployment can hand out tokens.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from service.auth.tokens import sign_dev_token
from service.clock import Clock, system_clock
from service.config.settings import Settings
from service.directory import ALLOWED_ROLES, validate_user_id
from service.errors import InvalidValue, UnknownParameter
from service.policy.parse import render_policy
from service.stores.base import ROLES
from service.web.bodies import read_json_object
from service.web.openapi import STRING, DocumentedRoute, Operation, json_body

DEMO_PAGE = Path(__file__).parent / "static" / "demo.html"
DEV_TOKEN_TTL_SECONDS = 3600

SHOW_DEMO_PAGE = Operation(
    "The demo page (dev mode only).", STRING, secured=False, media_type="text/html"
)
SIGN_DEV_TOKEN = Operation(
    "A JWT signed with the dev secret (dev mode only).",
    {
        "type": "object",
        "required": ["token", "expires_at", "upstream"],
        "properties": {
            "token": STRING,
            "expires_at": {"type": "integer"},
            "upstream": STRING,
            "policy": {"type": "object"},
            "gemini_live_url": STRING,
        },
    },
    (400, 413),
    secured=False,
    request=json_body(
        {
            "type": "object",
            "properties": {"user_id": STRING, "role": {"enum": ["owner", "reader"]}},
        }
    ),
)


def demo_routes(
    settings: Settings, *, clock: Clock = system_clock, page: Path = DEMO_PAGE
) -> list[BaseRoute]:
    """`GET /` and `POST /dev/token` for a dev-mode app, and the page's scripts; tokens are
    for the first tenant. The page (`page`, the packaged demo by default) is read once,
    here; it is told the tenant's upstream (`<body data-upstream=...>`), whose mode it
    shows from the start."""
    tenant = settings.tenants[0]
    if tenant.jwt_secret is None:
        raise ValueError("dev mode needs an HMAC JWT secret to sign its tokens")
    secret = tenant.jwt_secret
    html = page.read_text(encoding="utf-8").replace(
        "<body>", f'<body data-upstream="{tenant.upstream}">', 1
    )

    async def demo_page(request: Request) -> Response:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def dev_token(request: Request) -> Response:
        body = await read_json_object(request, empty={})
        for name in body:
            if name not in ("user_id", "role"):
                raise UnknownParameter(f"Unknown parameter `{name[:64]}`.", param=name[:64])
        raw_user = body.get("user_id", "dev-user")
        if not isinstance(raw_user, str):
            raise InvalidValue("`user_id` must be a string.", param="user_id")
        user_id = validate_user_id(raw_user)
        role = body.get("role", "owner")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidValue(f"`role` must be one of: {ALLOWED_ROLES}.", param="role")
        now = clock()
        token = sign_dev_token(
            secret.reveal(),
            sub=user_id,
            role=role,
            now=now,
            ttl_seconds=DEV_TOKEN_TTL_SECONDS,
            issuer=tenant.jwt_issuer,
            audience=tenant.jwt_audience,
        )
        # `upstream` lets the page say why WebRTC cannot work with the fake upstream;
        # `policy` (the tenant's, as BROKER_POLICY spells it) lets it show the role's rules.
        payload: dict[str, object] = {
            "token": token,
            "expires_at": int(now) + DEV_TOKEN_TTL_SECONDS,
            "upstream": tenant.upstream,
            "policy": render_policy(tenant.policy),
        }
        if tenant.upstream == "gemini":
            payload["gemini_live_url"] = _gemini_live_url(request, tenant.upstream_url)
        return JSONResponse(payload, headers={"Cache-Control": "no-store"})

    return [
        DocumentedRoute("/", demo_page, get=SHOW_DEMO_PAGE),
        DocumentedRoute("/dev/token", dev_token, post=SIGN_DEV_TOKEN),
        Mount("/dev/static", app=StaticFiles(directory=DEMO_PAGE.parent), name="dev-static"),
    ]


def _gemini_live_url(request: Request, upstream_url: str) -> str:
    """Where the page opens its Gemini Live sessions: this origin when dev mode serves the
    fake Gemini's Live peer itself (`token-broker dev --upstream gemini`: service.dev puts
    the fakes in `app.state.fake_gemini`), else the tenant's Gemini."""
    fakes = getattr(request.app.state, "fake_gemini", None)
    return str(request.base_url).rstrip("/") if fakes else upstream_url
