"""Tenant isolation and secret hygiene.

Two tenants on one app (and one store): neither sees the other's users, limits or
directory, and neither's keys work for the other. The upstream key, client secrets and
user JWTs never appear in a response other than the secret's own mint, in a log record
(message, arguments or structured fields), nor in /metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from service.auth.tokens import sign_dev_token
from service.clock import ManualClock
from service.config.settings import load_settings
from service.dev import create_dev_app
from service.fake.app import create_fake_app
from tests.security.conftest import MINT, MINT_BODY, UPSTREAM_KEY, bearer

USERS = "/v1/organization/users"
TENANTS = {
    "acme": ("acme-secret-0123456789-abcdefghijklmnop", "acme-admin-key-0123456789-abcdefghij"),
    "globex": ("globex-secret-0123456789-abcdefghijklmn", "globex-admin-key-0123456789-abcdefgh"),
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())


@pytest.fixture
async def client(clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "BROKER_TENANTS": "acme,globex",
        "BROKER_UPSTREAM_API_KEY": UPSTREAM_KEY,
        "BROKER_LOG_LEVEL": "debug",
    }
    for tenant, (secret, admin) in TENANTS.items():
        prefix = f"BROKER_{tenant.upper()}_"
        env |= {
            prefix + "JWT_SECRET": secret,
            prefix + "JWT_ISSUER": f"https://{tenant}.example",
            prefix + "JWT_AUDIENCE": "broker",
            prefix + "ADMIN_API_KEY": admin,
        }
    fake = httpx.ASGITransport(app=create_fake_app(clock=clock, api_key=UPSTREAM_KEY))
    app = create_dev_app(load_settings(env), transport=fake, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c,
    ):
        yield c


def _token(tenant: str, clock: ManualClock, sub: str = "alice", role: str = "reader") -> str:
    secret = TENANTS[tenant][0]
    return sign_dev_token(
        secret, sub=sub, role=role, now=clock.now, issuer=f"https://{tenant}.example",
        audience="broker", name=f"{sub} of {tenant}", email=f"{sub}@{tenant}.example",
    )  # fmt: skip


def _admin(tenant: str) -> dict[str, str]:
    return bearer(TENANTS[tenant][1])


async def test_directories_are_per_tenant(client: httpx.AsyncClient, clock: ManualClock) -> None:
    minted = await client.post(MINT, json=MINT_BODY, headers=bearer(_token("acme", clock)))

    acme_list = await client.get(USERS, headers=_admin("acme"))
    globex_list = await client.get(USERS, headers=_admin("globex"))
    globex_get = await client.get(f"{USERS}/alice", headers=_admin("globex"))
    globex_delete = await client.delete(f"{USERS}/alice", headers=_admin("globex"))
    acme_owner_of_globex = await client.get(
        USERS, headers=bearer(_token("acme", clock, sub="root", role="owner"))
    )
    after = await client.post(MINT, json=MINT_BODY, headers=bearer(_token("acme", clock)))

    assert minted.status_code == 200
    assert [u["id"] for u in acme_list.json()["data"]] == ["alice"]
    assert globex_list.status_code == 200
    assert globex_list.json()["data"] == []
    assert "acme" not in globex_list.text
    assert globex_get.status_code == 404
    assert globex_delete.status_code == 404
    assert after.status_code == 200  # globex's DELETE did not revoke acme's alice
    # An acme owner sees acme's directory only.
    assert "globex" not in acme_owner_of_globex.text


async def test_limits_are_per_tenant(client: httpx.AsyncClient, clock: ManualClock) -> None:
    acme = [
        (await client.post(MINT, json=MINT_BODY, headers=bearer(_token("acme", clock)))).status_code
        for _ in range(11)
    ]
    globex = await client.post(MINT, json=MINT_BODY, headers=bearer(_token("globex", clock)))

    assert acme == [200] * 10 + [429]
    assert globex.status_code == 200  # same user id, other tenant, untouched bucket


async def test_admin_key_of_one_tenant_is_useless_for_the_other_tokens(
    client: httpx.AsyncClient,
) -> None:
    mint_with_admin_key = await client.post(MINT, json=MINT_BODY, headers=_admin("acme"))
    wrong_key = await client.get(USERS, headers=bearer(TENANTS["acme"][1] + "x"))

    assert mint_with_admin_key.status_code == 401
    assert wrong_key.status_code == 401


async def test_secrets_never_leak(
    client: httpx.AsyncClient, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [_token(tenant, clock) for tenant in TENANTS]
    expired = sign_dev_token(TENANTS["acme"][0], sub="late", role="reader", now=clock.now - 7200)
    responses = [await client.post(MINT, json=MINT_BODY, headers=bearer(t)) for t in tokens]
    minted = [r.json()["value"] for r in responses]
    others = [
        await client.post(MINT, json=MINT_BODY, headers=bearer(expired)),
        await client.post(MINT, content=b"{bad", headers=bearer(tokens[0])),
        await client.get(USERS, headers=_admin("acme")),
        await client.get(USERS, headers=bearer(tokens[0])),
        await client.get("/readyz"),
        await client.get("/metrics"),
    ]
    secrets = [UPSTREAM_KEY, expired, *tokens, *minted, *(admin for _, admin in TENANTS.values())]
    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {vars(record)!r}" for record in caplog.records
    )

    assert all(value.startswith("ek_") for value in minted)
    assert caplog.records  # the requests were logged, so the check below means something
    for secret in secrets:
        assert secret not in logged
        for response in others:
            assert secret not in response.text
            assert all(secret not in v for v in response.headers.values())
    for response, value in zip(responses, minted, strict=True):
        assert UPSTREAM_KEY not in response.text
        assert response.text.count("ek_") == response.text.count(value)  # only its own secret
