"""Shared material for the security and fault suite: keys, token forging, apps.

Tokens are built by hand here (not only with PyJWT) because most attacks are tokens a
well-behaved library refuses to produce: unsigned, duplicated claims, odd headers.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette

from service.clock import Clock, system_clock
from service.config.settings import load_settings
from service.dev import create_dev_app

ISSUER = "https://idp.example"
AUDIENCE = "broker"
JWKS_URL = "http://127.0.0.1:9/jwks.json"  # never dialled: jwks_transport answers
UPSTREAM_KEY = "test-security-suite-key-0123"

# Sync or async, as httpx.MockTransport takes either.
Handler = Callable[[httpx.Request], Any]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: object) -> str:
    return b64(json.dumps(value).encode())


@dataclass(frozen=True)
class Keys:
    rsa: RSAPrivateKey
    ec: EllipticCurvePrivateKey
    attacker: RSAPrivateKey

    @property
    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwks(self, *, rsa_kid: str = "rsa-1", ec_kid: str = "ec-1") -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        return {
            "keys": [
                {**rsa_jwk, "kid": rsa_kid, "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": ec_kid, "use": "sig", "alg": "ES256"},
            ]
        }


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        attacker=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def claims(now: float | None = None, **overrides: Any) -> dict[str, Any]:
    issued = int(time.time() if now is None else now)
    base: dict[str, Any] = {
        "sub": "alice",
        "role": "reader",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def rs256(keys: Keys, payload: Mapping[str, Any], *, kid: str = "rsa-1", **headers: Any) -> str:
    return jwt.encode(dict(payload), keys.rsa, algorithm="RS256", headers={"kid": kid, **headers})


def jwks_handler(document: Callable[[], object], calls: list[float] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(time.monotonic())
        return httpx.Response(200, json=document())

    return handle


def jwks_env(**extra: str) -> dict[str, str]:
    return {
        "BROKER_UPSTREAM": "fake",
        "BROKER_JWT_JWKS_URL": JWKS_URL,
        "BROKER_JWT_ALGORITHMS": "RS256,ES256",
        "BROKER_JWT_ISSUER": ISSUER,
        "BROKER_JWT_AUDIENCE": AUDIENCE,
        **extra,
    }


def jwks_app(
    keys: Keys,
    *,
    handler: Handler | None = None,
    clock: Clock = system_clock,
    env: Mapping[str, str] | None = None,
) -> Starlette:
    transport = httpx.MockTransport(handler or jwks_handler(keys.jwks))
    settings = load_settings(jwks_env(**(env or {})))
    return create_dev_app(settings, jwks_transport=transport, clock=clock)


@pytest.fixture
async def jwks_client(keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    app = jwks_app(keys)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c,
    ):
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


MINT = "/v1/realtime/client_secrets"
MINT_BODY: dict[str, Any] = {"session": {"type": "realtime"}}
