"""The keys of user_hash: the configured USER_HASH_KEY, else one kept in the state store
and shared by every replica; and what the app then logs and sends upstream."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import httpx
import pytest

from service.auth.hash_keys import STORED_NAME, UserHashKeys
from service.auth.tokens import sign_dev_token
from service.clock import ManualClock
from service.config.settings import load_settings
from service.dev import create_dev_app
from service.errors import StoreUnavailable
from service.fake.app import create_fake_app
from service.redact import Secret, keyed_user_hash, user_hash
from service.stores.memory import MemoryStore
from service.stores.redis import RedisStore
from tests.eventually import eventually, settle
from tests.redis_servers import RedisServer

SECRET = "hash-keys-secret-0123456789-abcdefghij"
KEY = "configured-user-hash-key-0123456789-abcdef"
UPSTREAM_KEY = "test-hash-keys-upstream-0123456789"
MINT = "/v1/realtime/client_secrets"
MINT_BODY = {"session": {"type": "realtime"}}


class Unreachable(MemoryStore):
    """A store that cannot answer until `up`; counts the questions."""

    def __init__(self) -> None:
        super().__init__()
        self.up = False
        self.asked = 0

    async def tenant_secret(self, tenant: str, name: str, candidate: str) -> str:
        self.asked += 1
        if not self.up:
            raise StoreUnavailable("redis evalsha failed (ConnectionError)")
        return await super().tenant_secret(tenant, name, candidate)


async def test_a_configured_key_is_used_and_the_store_never_asked() -> None:
    store = Unreachable()
    keys = UserHashKeys({"hk-configured": Secret(KEY)}, store)

    await keys.start()

    assert store.asked == 0
    assert keys.pending == ()
    expected = hmac.new(KEY.encode(), b"hk-configured\x00alice", hashlib.sha256)
    assert user_hash("hk-configured", "alice") == expected.hexdigest()[:32]


async def test_without_one_the_stored_key_is_used() -> None:
    store = MemoryStore()
    await UserHashKeys({"hk-stored": None}, store).start()

    stored = await store.tenant_secret("hk-stored", STORED_NAME, "unused")

    assert len(stored) >= 32
    assert user_hash("hk-stored", "alice") == keyed_user_hash(stored.encode(), "hk-stored", "alice")


@pytest.mark.redis
async def test_two_replicas_on_one_redis_hash_a_user_alike(clean_redis: RedisServer) -> None:
    first, second = RedisStore.from_url(clean_redis.url), RedisStore.from_url(clean_redis.url)
    try:
        await UserHashKeys({"hk-shared": None}, first).start()
        by_first = user_hash("hk-shared", "alice")
        await UserHashKeys({"hk-shared": None}, second).start()  # a replica starting later
        by_second = user_hash("hk-shared", "alice")
    finally:
        await first.close()
        await second.close()

    assert by_first == by_second
    assert by_first != hashlib.sha256(b"hk-shared\x00alice").hexdigest()[:32]


async def test_a_store_down_at_startup_is_asked_again_until_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Unreachable()
    keys = UserHashKeys({"hk-late": None}, store, retry_seconds=0.01)

    await keys.start()  # does not wait for the store
    meanwhile = user_hash("hk-late", "alice")
    store.up = True
    await eventually(lambda: not keys.pending, seconds=3, what="the stored key loaded")
    await keys.aclose()

    stored = await store.tenant_secret("hk-late", STORED_NAME, "unused")
    assert keys.pending == ()
    assert user_hash("hk-late", "alice") == keyed_user_hash(stored.encode(), "hk-late", "alice")
    assert meanwhile != user_hash("hk-late", "alice")  # a key of the process meanwhile
    assert "the user_hash key is not loaded" in caplog.text


async def test_closing_stops_the_retries() -> None:
    store = Unreachable()
    # No pause between retries: one still running would ask again at every turn of the loop.
    keys = UserHashKeys({"hk-closed": None}, store, retry_seconds=0)
    await keys.start()
    await settle()
    assert store.asked > 1  # retrying
    await keys.aclose()
    asked = store.asked

    await settle()

    assert store.asked == asked
    assert keys.pending == ("hk-closed",)


# --- through the app: the access line and OpenAI's safety identifier ---------------------


class Recording(httpx.AsyncBaseTransport):
    """The fake upstream, remembering the safety identifier of every request."""

    def __init__(self, clock: ManualClock) -> None:
        self._inner = httpx.ASGITransport(app=create_fake_app(clock=clock, api_key=UPSTREAM_KEY))
        self.identifiers: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.identifiers.append(request.headers.get("OpenAI-Safety-Identifier"))
        return await self._inner.handle_async_request(request)


async def _mint_as_alice(
    env: dict[str, str], tenants: dict[str, str], caplog: pytest.LogCaptureFixture
) -> tuple[list[str], list[str | None]]:
    """Start an app (its lifespan loads the keys), mint once as alice per tenant (name →
    issuer); the access lines' user hashes and the safety identifiers sent upstream."""
    clock = ManualClock(time.time())
    upstream = Recording(clock)
    app = create_dev_app(load_settings(env), transport=upstream, clock=clock)
    caplog.clear()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client,
    ):
        for issuer in tenants.values():
            token = sign_dev_token(
                SECRET, sub="alice", role="reader", now=clock.now, issuer=issuer, audience="b"
            )
            minted = await client.post(
                MINT, json=MINT_BODY, headers={"Authorization": f"Bearer {token}"}
            )
            assert minted.status_code == 200, minted.text
    hashes = [r.__dict__["user_hash"] for r in caplog.records if r.name == "service.access"]
    return hashes, upstream.identifiers


def _env(**extra: str) -> dict[str, str]:
    return {"BROKER_JWT_SECRET": SECRET, "BROKER_UPSTREAM_API_KEY": UPSTREAM_KEY, **extra}


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="service.access")
    return caplog


async def test_a_configured_key_keys_the_access_line_and_the_safety_identifier(
    access: pytest.LogCaptureFixture,
) -> None:
    env = _env(BROKER_USER_HASH_KEY=KEY)

    hashes, identifiers = await _mint_as_alice(env, {"default": "https://idp"}, access)

    expected = hmac.new(KEY.encode(), b"default\x00alice", hashlib.sha256).hexdigest()[:32]
    assert hashes == [expected]
    assert identifiers == [expected]
    assert expected != hashlib.sha256(b"default\x00alice").hexdigest()[:32]


async def test_one_user_in_two_tenants_has_two_hashes(access: pytest.LogCaptureFixture) -> None:
    tenants = {"acme": "https://acme.example", "globex": "https://globex.example"}
    env = _env(BROKER_TENANTS="acme,globex")
    for tenant, issuer in tenants.items():
        env[f"BROKER_{tenant.upper()}_JWT_ISSUER"] = issuer
        env[f"BROKER_{tenant.upper()}_JWT_AUDIENCE"] = "b"

    hashes, identifiers = await _mint_as_alice(env, tenants, access)

    assert len(hashes) == 2
    assert hashes[0] != hashes[1]
    assert identifiers == hashes


@pytest.mark.redis
async def test_two_apps_on_one_redis_log_one_hash_for_a_user(
    clean_redis: RedisServer, access: pytest.LogCaptureFixture
) -> None:
    env = _env(BROKER_REDIS_URL=clean_redis.url, BROKER_REDIS_TIMEOUT_MS="2000")

    first, _ = await _mint_as_alice(env, {"default": "https://idp"}, access)
    second, _ = await _mint_as_alice(env, {"default": "https://idp"}, access)  # a restart

    assert first == second
    assert first[0] != hashlib.sha256(b"default\x00alice").hexdigest()[:32]
