"""JwksCache: lazy single-flight fetches, cooldown, last good keys, key selection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

from service.auth.jwks import MAX_JWKS_BYTES, JwksCache, JwksFetchError, parse_jwks
from service.clock import ManualClock
from service.errors import InvalidToken

URL = "https://idp.example/.well-known/jwks.json"


@pytest.fixture(scope="module")
def rsa_a() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_b() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: Any, kid: str | None, **extra: Any) -> dict[str, Any]:
    public = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        data["kid"] = kid
    data.update(extra)
    return data


class FakeIdp:
    """A JWKS endpoint behind httpx.MockTransport whose answer the test changes at will."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.document: bytes = json.dumps({"keys": keys}).encode()
        self.status = 200
        self.hang = False
        self.requests: list[httpx.Request] = []
        self.gate: asyncio.Event | None = None

    def serve(self, keys: list[dict[str, Any]]) -> None:
        self.document = json.dumps({"keys": keys}).encode()

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.hang:
            await asyncio.Event().wait()
        return httpx.Response(self.status, content=self.document)


@pytest.fixture
async def http() -> AsyncIterator[Callable[[FakeIdp], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(idp: FakeIdp) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_fetches_lazily_once_and_returns_the_kid_key(
    http: Callable[[FakeIdp], httpx.AsyncClient], rsa_a: rsa.RSAPrivateKey
) -> None:
    idp = FakeIdp([jwk(rsa_a, "a")])
    cache = JwksCache(URL, http=http(idp), clock=ManualClock())
    assert idp.requests == []

    key = await cache.key_for("a", "RS256")
    again = await cache.key_for("a", "PS256")

    assert isinstance(key, rsa.RSAPublicKey)
    assert key.public_numbers() == rsa_a.public_key().public_numbers()
    assert again is key
    assert len(idp.requests) == 1
    assert str(idp.requests[0].url) == URL
    assert cache.refreshes == 1


async def test_concurrent_first_lookups_share_one_fetch(
    http: Callable[[FakeIdp], httpx.AsyncClient], rsa_a: rsa.RSAPrivateKey
) -> None:
    idp = FakeIdp([jwk(rsa_a, "a")])
    idp.gate = asyncio.Event()
    cache = JwksCache(URL, http=http(idp), clock=ManualClock())

    lookups = [asyncio.create_task(cache.key_for("a", "RS256")) for _ in range(100)]
    await asyncio.sleep(0)  # let every lookup reach the in-flight fetch
    idp.gate.set()
    keys = await asyncio.gather(*lookups)

    assert len({id(k) for k in keys}) == 1
    assert len(idp.requests) == 1


async def test_unknown_kid_refreshes_at_most_once_per_cooldown(
    http: Callable[[FakeIdp], httpx.AsyncClient], rsa_a: rsa.RSAPrivateKey
) -> None:
    clock = ManualClock()
    idp = FakeIdp([jwk(rsa_a, "a")])
    cache = JwksCache(URL, http=http(idp), clock=clock, cooldown=30)
    await cache.key_for("a", "RS256")

    with pytest.raises(InvalidToken):
        await cache.key_for("nope", "RS256")
    assert len(idp.requests) == 1  # fetched just now: within the cooldown

    clock.advance(31)
    results = await asyncio.gather(
        *(cache.key_for(f"unknown-{i}", "RS256") for i in range(100)), return_exceptions=True
    )

    assert all(isinstance(r, InvalidToken) for r in results)
    assert len(idp.requests) == 2
    assert cache.refreshes == 2


async def test_rotation_is_picked_up_after_the_cooldown(
    http: Callable[[FakeIdp], httpx.AsyncClient],
    rsa_a: rsa.RSAPrivateKey,
    rsa_b: rsa.RSAPrivateKey,
) -> None:
    clock = ManualClock()
    idp = FakeIdp([jwk(rsa_a, "a")])
    cache = JwksCache(URL, http=http(idp), clock=clock, cooldown=30)
    await cache.key_for("a", "RS256")
    idp.serve([jwk(rsa_b, "b")])

    clock.advance(10)
    with pytest.raises(InvalidToken):
        await cache.key_for("b", "RS256")
    clock.advance(21)
    key_b = await cache.key_for("b", "RS256")

    assert isinstance(key_b, rsa.RSAPublicKey)
    assert key_b.public_numbers() == rsa_b.public_key().public_numbers()
    with pytest.raises(InvalidToken):  # the old key went away with the new set
        await cache.key_for("a", "RS256")


async def test_stale_set_is_refetched_after_max_age(
    http: Callable[[FakeIdp], httpx.AsyncClient], rsa_a: rsa.RSAPrivateKey
) -> None:
    clock = ManualClock()
    idp = FakeIdp([jwk(rsa_a, "a")])
    cache = JwksCache(URL, http=http(idp), clock=clock, max_age=300)
    await cache.key_for("a", "RS256")

    clock.advance(299)
    await cache.key_for("a", "RS256")
    assert len(idp.requests) == 1
    clock.advance(1)
    await cache.key_for("a", "RS256")
    assert len(idp.requests) == 2


@pytest.mark.parametrize(
    "breakage",
    ["http_500", "hang", "not_json", "not_utf8", "no_keys", "no_usable_key", "too_large"],
)
async def test_last_good_keys_survive_a_broken_provider(
    http: Callable[[FakeIdp], httpx.AsyncClient], rsa_a: rsa.RSAPrivateKey, breakage: str
) -> None:
    clock = ManualClock()
    idp = FakeIdp([jwk(rsa_a, "a")])
    cache = JwksCache(URL, http=http(idp), clock=clock, max_age=300, cooldown=30, timeout=0.01)
    good = await cache.key_for("a", "RS256")
    if breakage == "http_500":
        idp.status = 500
    elif breakage == "hang":
        idp.hang = True
    elif breakage == "not_json":
        idp.document = b"<html>oops</html>"
    elif breakage == "not_utf8":
        idp.document = b'{"keys": "\xff"}'
    elif breakage == "no_keys":
        idp.document = b'{"keys": []}'
    elif breakage == "no_usable_key":
        idp.serve([{"kty": "oct", "k": "c2VjcmV0", "kid": "a"}])
    else:
        idp.document = b'{"keys": [' + b" " * MAX_JWKS_BYTES + b"]}"

    clock.advance(301)
    first = await cache.key_for("a", "RS256")
    second = await cache.key_for("a", "RS256")

    assert first is good
    assert second is good
    assert len(idp.requests) == 2  # the failed refresh is not retried within the cooldown
    assert cache.failures == 1


async def test_provider_down_from_the_start_refuses_then_recovers(
    http: Callable[[FakeIdp], httpx.AsyncClient], rsa_a: rsa.RSAPrivateKey
) -> None:
    clock = ManualClock()
    idp = FakeIdp([jwk(rsa_a, "a")])
    idp.status = 503
    cache = JwksCache(URL, http=http(idp), clock=clock, cooldown=30)

    with pytest.raises(InvalidToken):
        await cache.key_for("a", "RS256")
    idp.status = 200
    with pytest.raises(InvalidToken):
        await cache.key_for("a", "RS256")
    assert len(idp.requests) == 1
    clock.advance(30)
    assert isinstance(await cache.key_for("a", "RS256"), rsa.RSAPublicKey)


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    http: Callable[[FakeIdp], httpx.AsyncClient], rsa_a: rsa.RSAPrivateKey
) -> None:
    idp = FakeIdp([jwk(rsa_a, "a")])
    idp.gate = asyncio.Event()
    cache = JwksCache(URL, http=http(idp), clock=ManualClock())
    quitter = asyncio.create_task(cache.key_for("a", "RS256"))
    stayer = asyncio.create_task(cache.key_for("a", "RS256"))
    await asyncio.sleep(0)

    quitter.cancel()
    idp.gate.set()

    assert isinstance(await stayer, rsa.RSAPublicKey)
    assert quitter.cancelled()
    assert len(idp.requests) == 1


async def test_key_must_fit_the_alg(
    http: Callable[[FakeIdp], httpx.AsyncClient], rsa_a: rsa.RSAPrivateKey
) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    ed = ed25519.Ed25519PrivateKey.generate()
    idp = FakeIdp(
        [
            jwk(rsa_a, "rsa-pinned", alg="RS256"),
            jwk(p256, "p256"),
            jwk(p384, "p384"),
            jwk(ed, "ed"),
        ]
    )
    cache = JwksCache(URL, http=http(idp), clock=ManualClock())

    assert isinstance(await cache.key_for("rsa-pinned", "RS256"), rsa.RSAPublicKey)
    assert isinstance(await cache.key_for("p256", "ES256"), ec.EllipticCurvePublicKey)
    assert isinstance(await cache.key_for("p384", "ES384"), ec.EllipticCurvePublicKey)
    assert isinstance(await cache.key_for("ed", "EdDSA"), ed25519.Ed25519PublicKey)
    for kid, alg in [
        ("rsa-pinned", "PS256"),  # the JWK pins RS256
        ("p384", "ES256"),  # wrong curve
        ("p256", "RS256"),
        ("ed", "ES256"),
        ("p256", "HS256"),
        ("p256", "none"),
    ]:
        with pytest.raises(InvalidToken):
            await cache.key_for(kid, alg)


async def test_without_kid_only_an_unambiguous_key_is_used(
    http: Callable[[FakeIdp], httpx.AsyncClient],
    rsa_a: rsa.RSAPrivateKey,
    rsa_b: rsa.RSAPrivateKey,
) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    idp = FakeIdp([jwk(rsa_a, "a"), jwk(p256, "p")])
    cache = JwksCache(URL, http=http(idp), clock=ManualClock())
    assert isinstance(await cache.key_for(None, "ES256"), ec.EllipticCurvePublicKey)

    idp2 = FakeIdp([jwk(rsa_a, "a"), jwk(rsa_b, "b")])
    cache2 = JwksCache(URL, http=http(idp2), clock=ManualClock())
    with pytest.raises(InvalidToken):
        await cache2.key_for(None, "RS256")


def test_parse_skips_keys_that_cannot_verify(rsa_a: rsa.RSAPrivateKey) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private = RSAAlgorithm.to_jwk(rsa_a, as_dict=True)
    keys = [
        {"kty": "oct", "k": HMACAlgorithm.to_jwk(b"s" * 32, as_dict=True)["k"], "kid": "oct"},
        {**private, "kid": "private"},
        jwk(weak, "weak"),
        jwk(rsa_a, "enc", use="enc"),
        {"kty": "XYZ", "kid": "xyz"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {"kty": "RSA", "kid": 7, "n": jwk(rsa_a, None)["n"], "e": "AQAB"},
        "not an object",
        jwk(rsa_a, "good", use="sig"),
    ]

    parsed = parse_jwks(json.dumps({"keys": keys}).encode())

    assert [k.kid for k in parsed] == ["good"]


@pytest.mark.parametrize("document", [b"[]", b'{"keys": {}}', b'{"keys": [1, 2]}', b"\xff"])
def test_parse_refuses_documents_without_usable_keys(document: bytes) -> None:
    with pytest.raises(JwksFetchError):
        parse_jwks(document)
