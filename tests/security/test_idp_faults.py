"""Identity-provider faults, through the app: the JWKS endpoint down, slow, garbage,
rotating, and flooded with unknown `kid`s. A broken provider must cost a 401 (the token
cannot be verified), never a 500 and never a hang; a flood must cost the provider at
most one fetch per cooldown."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from service.auth.jwks import JwksCache
from service.clock import ManualClock
from service.errors import InvalidToken
from tests.security.conftest import (
    JWKS_URL,
    MINT,
    MINT_BODY,
    Handler,
    Keys,
    bearer,
    claims,
    jwks_app,
    jwks_handler,
    rs256,
)

COOLDOWN = 30  # JwksCache's default, which the app uses


@asynccontextmanager
async def app_client(
    keys: Keys, handler: Handler, clock: ManualClock
) -> AsyncIterator[httpx.AsyncClient]:
    app = jwks_app(keys, handler=handler, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c,
    ):
        yield c


def _failing(make: Callable[[], httpx.Response], calls: list[float]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        return make()

    return handle


def _refused() -> httpx.Response:
    raise httpx.ConnectError("connection refused")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_refused, id="down"),
        pytest.param(lambda: httpx.Response(500, text="oops"), id="http-500"),
        pytest.param(lambda: httpx.Response(200, text="<html>not json"), id="garbage-html"),
        pytest.param(lambda: httpx.Response(200, json={"keys": "nope"}), id="garbage-keys"),
        pytest.param(lambda: httpx.Response(200, content=b"\xff\xfe{}"), id="garbage-bytes"),
        pytest.param(
            lambda: httpx.Response(
                200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa-1"}]}
            ),
            id="hmac-key-in-jwks",
        ),
        pytest.param(lambda: httpx.Response(200, content=b"[" * 300_000), id="oversized"),
    ],
)
async def test_broken_provider_means_401_not_500(
    make: Callable[[], httpx.Response], keys: Keys
) -> None:
    clock = ManualClock(time.time())
    calls: list[float] = []
    async with app_client(keys, _failing(make, calls), clock) as client:
        responses = [
            await client.post(MINT, json=MINT_BODY, headers=bearer(rs256(keys, claims(clock.now))))
            for _ in range(5)
        ]

    assert [r.status_code for r in responses] == [401] * 5
    assert {r.json()["error"]["code"] for r in responses} == {"invalid_token"}
    assert len(calls) == 1  # one attempt, then the cooldown protects the provider


async def test_slow_provider_is_cut_at_its_timeout_and_last_good_keys_kept(keys: Keys) -> None:
    clock = ManualClock(time.time())
    slow = False
    fetches = 0

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        if slow:
            await asyncio.sleep(5)
        return httpx.Response(200, json=keys.jwks())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        cache = JwksCache(JWKS_URL, http=http, clock=clock, max_age=60, timeout=0.2)
        first = await cache.key_for("rsa-1", "RS256")
        slow = True
        clock.advance(120)  # the set is stale: the next call refreshes, slowly
        started = time.monotonic()
        kept = await cache.key_for("rsa-1", "RS256")
        stale_elapsed = time.monotonic() - started
        with pytest.raises(InvalidToken):
            await cache.key_for("unknown", "RS256")

    assert kept is first
    assert cache.failures == 1
    # Cut at the cache's 0.2 s timeout, not held for the provider's 5 s.
    assert stale_elapsed < 1.0
    assert fetches == 2  # within the cooldown: no second slow fetch for the unknown key


async def test_slow_provider_without_keys_gives_401_within_deadline(keys: Keys) -> None:
    async def handle(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200, json=keys.jwks())

    clock = ManualClock(time.time())
    started = time.monotonic()
    async with app_client(keys, handle, clock) as client:
        response = await client.post(
            MINT, json=MINT_BODY, headers=bearer(rs256(keys, claims(clock.now)))
        )
    elapsed = time.monotonic() - started

    assert response.status_code == 401
    # Cut at the app's 2 s JWKS timeout (with the app's start-up and a loaded machine's
    # slack), not held for the provider's 30 s.
    assert elapsed < 6.0


async def test_rotated_key_is_accepted_after_one_refresh(keys: Keys) -> None:
    clock = ManualClock(time.time())
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    document = keys.jwks()
    calls: list[float] = []
    async with app_client(keys, jwks_handler(lambda: document, calls), clock) as client:
        old = await client.post(
            MINT, json=MINT_BODY, headers=bearer(rs256(keys, claims(clock.now)))
        )
        new_jwk = json.loads(RSAAlgorithm.to_jwk(new_key.public_key()))
        document = {"keys": [{**new_jwk, "kid": "rsa-2", "use": "sig", "alg": "RS256"}]}
        clock.advance(COOLDOWN + 1)
        new_token = jwt.encode(
            claims(clock.now, sub="bob"), new_key, algorithm="RS256", headers={"kid": "rsa-2"}
        )
        new = await client.post(MINT, json=MINT_BODY, headers=bearer(new_token))
        fetches_after_rotation = len(calls)
        again = await client.post(MINT, json=MINT_BODY, headers=bearer(new_token))
        dropped = await client.post(
            MINT, json=MINT_BODY, headers=bearer(rs256(keys, claims(clock.now, sub="carol")))
        )

    assert old.status_code == 200
    assert new.status_code == 200, new.text
    assert fetches_after_rotation == 2  # the first load, then exactly one refresh
    assert again.status_code == 200
    assert dropped.status_code == 401  # the removed key no longer verifies new tokens
    assert len(calls) == 2


async def test_unknown_kid_flood_costs_one_fetch_per_cooldown(keys: Keys) -> None:
    clock = ManualClock(time.time())
    calls: list[float] = []

    def forged() -> dict[str, str]:
        return bearer(rs256(keys, claims(clock.now), kid=uuid.uuid4().hex))

    async with app_client(keys, jwks_handler(keys.jwks, calls), clock) as client:
        first = await asyncio.gather(
            *(client.post(MINT, json=MINT_BODY, headers=forged()) for _ in range(200))
        )
        fetches_first_window = len(calls)
        clock.advance(COOLDOWN + 1)
        second = await asyncio.gather(
            *(client.post(MINT, json=MINT_BODY, headers=forged()) for _ in range(200))
        )
        genuine = await client.post(
            MINT, json=MINT_BODY, headers=bearer(rs256(keys, claims(clock.now)))
        )

    assert {r.status_code for r in [*first, *second]} == {401}
    assert fetches_first_window == 1
    assert len(calls) == 2
    assert genuine.status_code == 200  # the flood did not lock out real users
