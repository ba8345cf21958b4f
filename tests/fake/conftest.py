"""Fixtures for the fake upstream's tests: the vendored OpenAPI schemas and a fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.applications import Starlette

from service.clock import ManualClock
from service.fake.app import create_fake_app

SPEC_PATH = Path(__file__).parents[1] / "schemas" / "openai-openapi-subset.yaml"
SPEC_URI = "urn:openai-openapi-subset"
FAKE_KEY = "test-fake-test-key-1234567890"

SchemaCheck = Callable[[str, Any], None]


@pytest.fixture(scope="session")
def check_schema() -> SchemaCheck:
    """`check_schema("VectorStoreObject", data)` raises when data does not validate.

    The whole spec is one resource, so its `#/components/schemas/...` references resolve
    inside it; OpenAPI 3.1 schemas are JSON Schema 2020-12.
    """
    spec = yaml.safe_load(SPEC_PATH.read_text())
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )

    def check(name: str, instance: Any) -> None:
        assert name in spec["components"]["schemas"], name
        schema = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
        jsonschema.Draft202012Validator(schema, registry=registry).validate(instance)

    return check


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_750_000_000.0)


@pytest.fixture
def fake_app(clock: ManualClock) -> Starlette:
    """A fresh fake upstream that accepts only FAKE_KEY."""
    return create_fake_app(clock=clock, api_key=FAKE_KEY)


@pytest.fixture
async def fake(fake_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=fake_app),
        base_url="http://fake",
        headers={"Authorization": f"Bearer {FAKE_KEY}"},
    ) as client:
        yield client
