"""`/openapi.json`: it covers every route the app mounts, and schemathesis, run over the
real app in-process, finds no server error and no response the document does not allow."""

from __future__ import annotations

import dataclasses
import json
import time
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

from service.auth.tokens import sign_dev_token
from service.dev import create_dev_app
from service.web.openapi import CATALOG_PATHS, openapi_document, route_operations
from tests.web.conftest import SECRET, make_settings

ADMIN_KEY = "admin-key-for-schemathesis-0123456789"
# High limits: schemathesis sends hundreds of requests, and a 429 would hide the rest.
POLICY = {
    "default_role": "owner",
    "tenant_limits": ["100000/minute"],
    "roles": {"owner": {"limits": ["100000/minute"]}},
}
# README "Using it from a browser app", plus the dev-only demo routes.
DESIGNED = {
    ("/v1/realtime/client_secrets", "post"),
    ("/v1/realtime/sessions", "post"),
    ("/v1/realtime/transcription_sessions", "post"),
    ("/v1/organization/users", "get"),
    ("/v1/organization/users/{user_id}", "get"),
    ("/v1/organization/users/{user_id}", "post"),
    ("/v1/organization/users/{user_id}", "delete"),
    ("/v1/realtime/calls", "post"),
    ("/v1/realtime/calls", "get"),
    ("/v1/realtime/calls/{call_id}/hangup", "post"),
    ("/v1/live/sessions", "post"),
    ("/v1/vector_stores", "get"),
    ("/v1/vector_stores", "post"),
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/metrics", "get"),
    ("/openapi.json", "get"),
    ("/", "get"),
    ("/dev/token", "post"),
}


def broker_app(*, dev: bool) -> Starlette:
    settings = make_settings(
        {"BROKER_POLICY": json.dumps(POLICY), "BROKER_ADMIN_API_KEY": ADMIN_KEY}
    )
    return create_dev_app(dataclasses.replace(settings, dev=dev))


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def test_the_catalog_covers_the_designed_routes() -> None:
    everything = openapi_document([]) | {"paths": {}}
    assert everything["paths"] == {}
    assert {path for path, _ in DESIGNED} == set(CATALOG_PATHS)


@pytest.mark.parametrize("dev", [False, True])
async def test_the_document_lists_exactly_the_mounted_routes(dev: bool) -> None:
    app = broker_app(dev=dev)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert documented(document) == route_operations(app.routes)
    assert (("/", "get") in documented(document)) is dev


def test_every_error_response_uses_the_error_shape() -> None:
    document = openapi_document(broker_app(dev=True).routes)
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}


def test_every_route_the_app_mounts_is_documented() -> None:
    # The served document drops undocumented routes, so check the catalog itself.
    mounted = route_operations(broker_app(dev=True).routes)
    assert mounted - DESIGNED == set()


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
