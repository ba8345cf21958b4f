"""`/openapi.json` and the route table: each route declares its operations beside its
handler, the document is built from the app's routes (once per app) and lists exactly
what the app mounts, the README's endpoint table lists exactly the app's public routes,
and schemathesis, run over the real app in-process, finds no server error and no response
the document does not allow."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from service.auth.tokens import sign_dev_token
from service.dev import create_dev_app
from service.web.openapi import (
    STRING,
    DocumentedRoute,
    Operation,
    openapi_document,
    openapi_path,
    route_operations,
)
from tests.web.conftest import SECRET, make_settings

ADMIN_KEY = "admin-key-for-schemathesis-0123456789"
# High limits: schemathesis sends hundreds of requests, and a 429 would hide the rest.
POLICY = {
    "default_role": "owner",
    "tenant_limits": ["100000/minute"],
    "roles": {"owner": {"limits": ["100000/minute"]}},
}
README = Path(__file__).resolve().parents[2] / "README.md"


def broker_app(*, dev: bool, **env: str) -> Starlette:
    settings = make_settings(
        {"BROKER_POLICY": json.dumps(POLICY), "BROKER_ADMIN_API_KEY": ADMIN_KEY, **env}
    )
    return create_dev_app(dataclasses.replace(settings, dev=dev))


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


async def get_document(app: Starlette) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        return await client.get("/openapi.json")


async def nothing(request: Request) -> Response:
    return Response()


def test_the_document_holds_what_the_routes_declare_and_nothing_else() -> None:
    operation = Operation("A thing.", STRING, (401,))
    routes: list[BaseRoute] = [
        DocumentedRoute("/things/{thing_id:path}", nothing, get=operation, delete=operation),
        Route("/undeclared", nothing, methods=["GET"]),
    ]

    document = openapi_document(routes)

    assert openapi_document([])["paths"] == {}
    assert document["paths"] == {
        "/things/{thing_id}": {"get": operation.document(), "delete": operation.document()}
    }
    assert document["paths"]["/things/{thing_id}"]["get"]["responses"]["401"]["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
    }


@pytest.mark.parametrize("dev", [False, True])
async def test_the_document_lists_exactly_the_mounted_routes(dev: bool) -> None:
    app = broker_app(dev=dev)

    response = await get_document(app)

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert documented(document) == route_operations(app.routes)
    assert (("/", "get") in documented(document)) is dev


def test_every_http_route_declares_its_operations() -> None:
    # A route added without an Operation would be missing from the document.
    app = broker_app(dev=True)
    undeclared = [
        route.path
        for route in app.routes
        if isinstance(route, Route) and not isinstance(route, DocumentedRoute)
    ]
    assert undeclared == []


async def test_metrics_on_a_port_of_its_own_is_not_in_the_document() -> None:
    app = broker_app(dev=False, BROKER_METRICS_PORT="9191")

    document = (await get_document(app)).json()

    assert "/metrics" not in document["paths"]
    assert "/healthz" in document["paths"]


async def test_the_document_is_built_once_per_app() -> None:
    app = broker_app(dev=False)
    first = await get_document(app)
    # A route added afterwards does not rebuild it: the first GET's document is kept.
    app.router.routes.append(
        DocumentedRoute("/late", nothing, get=Operation("Late.", STRING, secured=False))
    )

    second = await get_document(app)

    assert second.content == first.content
    assert "/late" not in second.json()["paths"]


GOOGLE = ("/v1alpha/", "/v1beta/")


def test_every_error_response_uses_the_error_shape() -> None:
    document = openapi_document(broker_app(dev=True).routes)
    checked = 0
    for path, item in document["paths"].items():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    # Google's shape on Google's paths (the SDKs raise typed errors from it).
                    shape = "GoogleErrorResponse" if path.startswith(GOOGLE) else "ErrorResponse"
                    assert schema == {"$ref": f"#/components/schemas/{shape}"}, (path, status)
                    checked += 1
    assert checked > 20


# --- the README's endpoint table -------------------------------------------------------

# `| POST | `/v1/realtime/calls` | who | what |`; a cell of methods may say
# `GET (WebSocket)` or `GET, POST, DELETE`, one of paths may hold several paths.
_ROW = re.compile(r"^\|\s*([A-Z][A-Za-z ,()]*?)\s*\|\s*(`[^|]*?)\s*\|\s*([^|]*?)\s*\|")
_PATH = re.compile(r"`(/[^`?]*)[^`]*`")
DEV_ONLY = "dev mode only"


def readme_rows() -> dict[tuple[str, str], str]:
    """(method, path) → who, from the endpoint table of "Using it from a browser app";
    a WebSocket route's method is `WEBSOCKET`."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using it from a browser app", 1)[1].split("\n## ", 1)[0]
    rows: dict[tuple[str, str], str] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        methods, paths, who = match.groups()
        if "(WebSocket)" in methods:
            names = ["WEBSOCKET"]
        else:
            names = [m.strip() for m in methods.split(",")]
        for path in _PATH.findall(paths):
            for method in names:
                assert (method, path) not in rows, f"{method} {path} is listed twice"
                rows[(method, path)] = who
    return rows


def public_routes(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    """(method, path) of every HTTP and WebSocket route; mounted apps (dev mode's fake at
    /dev/fake) are the fake's API, not the broker's."""
    found = {(method.upper(), path) for path, method in route_operations(routes)}
    found |= {("WEBSOCKET", r.path) for r in routes if isinstance(r, WebSocketRoute)}
    return {(method, openapi_path(path)) for method, path in found}


def test_the_readme_table_lists_exactly_the_apps_routes() -> None:
    rows = readme_rows()
    listed = {key for key, who in rows.items() if who != DEV_ONLY}
    dev_only = {key for key, who in rows.items() if who == DEV_ONLY}
    served = public_routes(broker_app(dev=False).routes)
    in_dev_mode = public_routes(broker_app(dev=True).routes)

    assert listed == served
    # The rows that say "dev mode only" are exactly the routes dev mode adds.
    assert dev_only == in_dev_mode - served


def test_metrics_leaves_the_api_port_when_it_has_a_port_of_its_own() -> None:
    # The README's /metrics row: "only on BROKER_METRICS_PORT when set".
    served = public_routes(broker_app(dev=False, BROKER_METRICS_PORT="9191").routes)

    assert ("GET", "/metrics") in readme_rows()
    assert ("GET", "/metrics") not in served
    assert served | {("GET", "/metrics")} == public_routes(broker_app(dev=False).routes)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def authorization_for(path: str) -> str:
    if path.startswith("/v1/organization/users"):
        return f"Bearer {ADMIN_KEY}"
    token = sign_dev_token(SECRET, sub="schemathesis", role="owner", now=time.time())
    return f"Bearer {token}"


def test_schemathesis_finds_no_server_error_and_no_nonconforming_response() -> None:
    # Hypothesis driven directly rather than through schemathesis' pytest plugin, whose
    # lazy fixture loader does not work with the pytest version in use.
    api = schemathesis.openapi.from_asgi("/openapi.json", broker_app(dev=True))
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), f"schemathesis cannot read the document: {result!r}"
        operations.append(result.ok())
    assert len(operations) >= 10

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            headers = {"Authorization": authorization_for(case.path)}
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
