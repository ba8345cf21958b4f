"""The fake Gemini's tests: tests/schemas/gemini-live-subset.yaml as a validator, and a
fake upstream whose Gemini takes one key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.clock import ManualClock
from service.fake.app import create_fake_app

SPEC = yaml.safe_load(
    (Path(__file__).parents[2] / "schemas" / "gemini-live-subset.yaml").read_text()
)
URI = "urn:gemini-live-subset"
REGISTRY: Registry[Any] = Registry().with_resource(
    URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)
KEY = "AIza-fake-gemini-test-key-0123456789"
AUTH = {"x-goog-api-key": KEY}
MODEL = "models/gemini-live-2.5-flash-preview"
LIVE = "ws://testserver/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"


def valid(name: str, instance: Any) -> bool:
    """Whether `instance` validates against the subset's component `name`."""
    assert name in SPEC["components"]["schemas"], name
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{URI}#/components/schemas/{name}"}, registry=REGISTRY
    )
    return bool(validator.is_valid(instance))


def check(name: str, instance: Any) -> None:
    assert valid(name, instance), (name, instance)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_750_000_000.0)


@pytest.fixture
def fake_app(clock: ManualClock) -> Starlette:
    return create_fake_app(clock=clock, api_key=KEY)


@pytest.fixture
def http(fake_app: Starlette) -> Iterator[TestClient]:
    with TestClient(fake_app) as client:
        yield client
