"""An app on the in-process fake upstream and memory store, driven over ASGI."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping

import httpx
import pytest
from starlette.applications import Starlette

from service.auth.tokens import sign_dev_token
from service.config.settings import Settings, load_settings
from service.dev import create_dev_app

SECRET = "test-secret-0123456789-abcdefghijklmnop"
BASE_ENV = {"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": SECRET}

TokenFactory = Callable[..., str]


def make_settings(extra: Mapping[str, str] | None = None) -> Settings:
    return load_settings({**BASE_ENV, **(extra or {})})


@pytest.fixture
def token() -> TokenFactory:
    def make(sub: str = "alice", role: str | None = "reader", **kwargs: object) -> str:
        return sign_dev_token(SECRET, sub=sub, role=role, now=time.time(), **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def app() -> Starlette:
    return create_dev_app(make_settings())


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://broker") as c:
        yield c
