"""The user directory without HTTP: validation, rendering, authorization, audit; and,
through HTTP, its promise that every user who can get in can be revoked."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.auth.tokens import REASONS, Identity, sign_dev_token
from service.auth.user_ids import is_user_id
from service.clock import ManualClock
from service.config.settings import Settings, load_settings
from service.dev import create_dev_app
from service.directory import (
    Actor,
    Authenticate,
    Directory,
    ListQuery,
    admin_tenant,
    effective_role,
    parse_role_update,
    render_deleted,
    render_list,
    render_user,
    validate_user_id,
)
from service.errors import (
    InvalidToken,
    InvalidValue,
    NotFound,
    RoleForbidden,
    ServiceUnavailable,
    StoreUnavailable,
    UnknownParameter,
    UserRevoked,
)
from service.redact import user_hash
from service.stores.base import AdmitRequest, UserProfile, UserRecord
from service.stores.memory import MemoryStore

ACME_KEY = "acme-admin-key-0123456789"
GLOBEX_KEY = "globex-admin-key-0123456789"
SECRET = "test-secret-0123456789-abcdefghijklmnop"


def two_tenants() -> Settings:
    env = {"BROKER_TENANTS": "acme,globex", "BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": SECRET}
    for tenant, key in (("ACME", ACME_KEY), ("GLOBEX", GLOBEX_KEY)):
        env[f"BROKER_{tenant}_JWT_ISSUER"] = f"https://{tenant.lower()}.example"
        env[f"BROKER_{tenant}_JWT_AUDIENCE"] = "broker"
        env[f"BROKER_{tenant}_ADMIN_API_KEY"] = key
    return load_settings(env)


def identity(user_id: str, role: str | None, tenant: str = "acme") -> Identity:
    return Identity(tenant=tenant, user_id=user_id, role=role, name=None, email=None, expires_at=0)


def authenticator(found: Identity | None) -> Authenticate:
    """An `authenticate` stand-in: the given identity, or the 401 of a bad token."""

    async def authenticate(authorization: Sequence[str]) -> Identity:
        if found is None:
            raise InvalidToken("test")
        return found

    return authenticate


async def seen(store: MemoryStore, user_id: str, tenant: str = "acme") -> None:
    """A first mint: what creates a directory record."""
    await store.admit(
        AdmitRequest(
            tenant=tenant,
            user_id=user_id,
            claimed_role="reader",
            user_limits={},
            profile=UserProfile(name=f"{user_id} name", email=f"{user_id}@example.com"),
        )
    )


class DownStore(MemoryStore):
    async def get_user(self, tenant: str, user_id: str) -> UserRecord | None:
        raise StoreUnavailable("down")

    async def list_users(
        self, tenant: str, *, after: str | None, limit: int
    ) -> tuple[list[UserRecord], bool]:
        raise StoreUnavailable("down")


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["u", "user_abc", "auth0|123", "a" * 256, "é-名前", "a/b", "/", "a%2Fb", "?#", "..."],
)
def test_valid_user_ids_pass(value: str) -> None:
    assert validate_user_id(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "a" * 257, "a b", " a", "a\x00b", "tab\there", "a\u200bb", "nl\n", "a\u00a0b", ".",
     "..", "a\ud800"],
)  # fmt: skip
def test_malformed_user_ids_are_400_naming_the_param(value: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        validate_user_id(value)
    assert caught.value.param == "user_id"
    assert caught.value.status == 400


@pytest.mark.parametrize("role", ["owner", "reader"])
def test_role_update_accepts_owner_and_reader(role: str) -> None:
    assert parse_role_update({"role": role}) == role


@pytest.mark.parametrize("body", [{"role": "member"}, {"role": "admin"}, {"role": 1}, {}])
def test_other_roles_are_400_naming_the_allowed_values(body: dict[str, object]) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_role_update(body)
    assert caught.value.param == "role"
    assert "owner, reader" in caught.value.message


@pytest.mark.parametrize("extra", ["role_id", "technical_level", "x"])
def test_unknown_body_fields_are_400(extra: str) -> None:
    with pytest.raises(UnknownParameter) as caught:
        parse_role_update({"role": "owner", extra: "v"})
    assert caught.value.param == extra


# --- rendering -------------------------------------------------------------------------


def test_user_object_shows_the_admin_role_else_the_claim_else_the_default() -> None:
    policy = two_tenants().tenants[0].policy
    plain = UserRecord(tenant="acme", id="u1", name="N", email="e@x", added_at=7)
    assert render_user(plain, policy) == {
        "object": "organization.user",
        "id": "u1",
        "name": "N",
        "email": "e@x",
        "role": "reader",
        "added_at": 7,
    }
    owner = UserRecord(tenant="acme", id="u2", name=None, email=None, added_at=8, role="owner")
    assert render_user(owner, policy)["role"] == "owner"
    claimed = UserRecord(
        tenant="acme", id="u3", name=None, email=None, added_at=9, claimed_role="owner"
    )
    assert render_user(claimed, policy)["role"] == "owner"
    demoted = UserRecord(
        tenant="acme", id="u4", name=None, email=None, added_at=9, role="reader",
        claimed_role="owner",
    )  # fmt: skip
    assert render_user(demoted, policy)["role"] == "reader"
    listed = render_list([plain, owner], True, policy)
    assert listed["object"] == "list"
    assert (listed["first_id"], listed["last_id"], listed["has_more"]) == ("u1", "u2", True)
    assert render_list([], False, policy)["first_id"] is None
    assert render_deleted("u1") == {
        "object": "organization.user.deleted",
        "id": "u1",
        "deleted": True,
    }


# --- authorization ---------------------------------------------------------------------


def test_admin_key_names_its_tenant_only() -> None:
    tenants = two_tenants().tenants
    assert admin_tenant(tenants, [f"Bearer {ACME_KEY}"]) == "acme"
    assert admin_tenant(tenants, [f"bearer {GLOBEX_KEY}"]) == "globex"
    assert admin_tenant(tenants, [f"Bearer {ACME_KEY}x"]) is None
    assert admin_tenant(tenants, [ACME_KEY]) is None
    assert admin_tenant(tenants, [f"Bearer {ACME_KEY}"] * 2) is None
    assert admin_tenant(tenants, []) is None


def test_effective_role_order() -> None:
    policy = two_tenants().tenants[0].policy
    admin_set = UserRecord(tenant="acme", id="u", name=None, email=None, added_at=0, role="reader")
    assert effective_role(admin_set, "owner", policy) == "reader"
    assert effective_role(None, "owner", policy) == "owner"
    assert effective_role(None, "superuser", policy) == "reader"
    assert effective_role(None, None, policy) == "reader"


async def test_authorize_admin_key_owner_reader_and_revoked() -> None:
    store = MemoryStore()
    directory = Directory(store, two_tenants().tenants)

    admin = await directory.authorize([f"Bearer {ACME_KEY}"], authenticator(None))
    assert admin == Actor(tenant="acme")
    owner = await directory.authorize(["Bearer jwt"], authenticator(identity("o", "owner")))
    assert owner == Actor(tenant="acme", user_id="o")
    with pytest.raises(RoleForbidden) as forbidden:
        await directory.authorize(["Bearer jwt"], authenticator(identity("r", "reader")))
    assert forbidden.value.code == "role_forbidden"
    with pytest.raises(InvalidToken):
        await directory.authorize(["Bearer nope"], authenticator(None))

    await seen(store, "o")
    await store.set_role("acme", "o", "reader")
    with pytest.raises(RoleForbidden):
        await directory.authorize(["Bearer jwt"], authenticator(identity("o", "owner")))
    await store.revoke("acme", "o")
    with pytest.raises(UserRevoked):
        await directory.authorize(["Bearer jwt"], authenticator(identity("o", "owner")))


async def test_a_token_of_a_tenant_not_served_here_is_401_with_a_fixed_reason() -> None:
    # Only settings built by hand get here: the app gives both the same tenants.
    directory = Directory(MemoryStore(), two_tenants().tenants[:1])
    globex_owner = authenticator(identity("o", "owner", tenant="globex"))

    with pytest.raises(InvalidToken) as refused:
        await directory.authorize(["Bearer jwt"], globex_owner)

    assert refused.value.reason == "unknown_issuer"
    assert refused.value.reason in REASONS


# --- operations ------------------------------------------------------------------------


async def test_operations_stay_within_the_actors_tenant() -> None:
    store = MemoryStore()
    await seen(store, "alice", tenant="acme")
    await seen(store, "gus", tenant="globex")
    directory = Directory(store, two_tenants().tenants)
    acme = Actor(tenant="acme")

    assert [u["id"] for u in (await directory.list_users(acme, ListQuery(limit=20)))["data"]] == [
        "alice"
    ]
    for call in (
        directory.get(acme, "gus"),
        directory.set_role(acme, "gus", "owner"),
        directory.delete(acme, "gus"),
    ):
        with pytest.raises(NotFound):
            await call
    gus = await store.get_user("globex", "gus")
    assert gus is not None
    assert gus.role is None
    assert not gus.revoked


async def test_delete_is_idempotent_and_role_restores(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="service.audit")
    clock = ManualClock(1_700_000_123.5)
    store = MemoryStore(clock=clock)
    await seen(store, "alice")
    directory = Directory(store, two_tenants().tenants, clock=clock)
    owner = Actor(tenant="acme", user_id="olga")

    assert await directory.delete(owner, "alice") == render_deleted("alice")
    assert await directory.delete(owner, "alice") == render_deleted("alice")
    with pytest.raises(NotFound):
        await directory.get(owner, "alice")
    restored = await directory.set_role(owner, "alice", "owner")
    assert restored["role"] == "owner"
    changed = await directory.set_role(owner, "alice", "reader")
    assert changed["role"] == "reader"

    events = [r.__dict__ for r in caplog.records if r.name == "service.audit"]
    assert [e["action"] for e in events] == [
        "user.deleted",
        "user.deleted",
        "user.restored",
        "user.role_updated",
    ]
    first = events[0]
    assert first["event"] == "audit"
    assert first["tenant"] == "acme"
    assert first["actor"] == f"user:{user_hash('acme', 'olga')}"
    assert first["target_user_hash"] == user_hash("acme", "alice")
    assert first["at"] == 1_700_000_123
    assert first["request_id"] is None  # outside a request (tests/web/test_logging.py: in one)
    assert events[2]["role"] == "owner"
    # Ids are hashed in audit lines: the raw user ids never appear.
    assert all("alice" not in str(e) and "olga" not in str(e) for e in events)


async def test_store_down_is_503_store_unavailable() -> None:
    directory = Directory(DownStore(), two_tenants().tenants)
    with pytest.raises(ServiceUnavailable) as listing:
        await directory.list_users(Actor(tenant="acme"), ListQuery(limit=20))
    assert (listing.value.status, listing.value.code) == (503, "store_unavailable")
    with pytest.raises(ServiceUnavailable):
        await directory.authorize(["Bearer jwt"], authenticator(identity("o", "owner")))


# --- through HTTP: whoever can get in can be revoked (DESIGN 13.1) ------------------------

USERS = "/v1/organization/users"
MINT = "/v1/realtime/client_secrets"
MINT_BODY = {"session": {"type": "realtime"}}
ADMIN_KEY = "directory-admin-key-0123456789"
# Any Unicode text but lone surrogates, and the same without C* and Z* (ids that get in);
# short texts over the characters that matter (path syntax, spaces, invisible ones, a lone
# surrogate); and the edges.
SUBS = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(st.characters(exclude_categories=("C", "Z")), min_size=1, max_size=40),
    st.text(alphabet="a/.%?#é \t\u200b\u00a0\u202e\ud800名\U0001f600", min_size=1, max_size=6),
    st.sampled_from([".", "..", "...", "a/b", "/", "%2F", "a/../b", "a" * 256, "a" * 257]),
)


def test_every_user_who_can_get_in_can_be_revoked_and_is_then_refused() -> None:
    # Over httpx's ASGITransport, which decodes the path once as a server does (Starlette's
    # TestClient decodes it twice: `%252F` would arrive as `/`). One loop for every example.
    env = {
        "BROKER_UPSTREAM": "fake",
        "BROKER_JWT_SECRET": SECRET,
        "BROKER_ADMIN_API_KEY": ADMIN_KEY,
        "BROKER_POLICY": json.dumps({"roles": {"reader": {"limits": ["100000/minute"]}}}),
    }
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    transport = httpx.ASGITransport(app=create_dev_app(load_settings(env)))
    client = httpx.AsyncClient(transport=transport, base_url="http://broker")

    async def scenario(sub: str) -> None:
        token = sign_dev_token(SECRET, sub=sub, role="reader", now=time.time())
        bearer = {"Authorization": f"Bearer {token}"}
        minted = await client.post(MINT, json=MINT_BODY, headers=bearer)
        if not is_user_id(sub):
            # Refused at the door, with the same body as any other bad token.
            generic = await client.post(MINT, json=MINT_BODY, headers={"Authorization": "Bearer x"})
            assert minted.status_code == 401
            assert minted.json() == generic.json()
            return
        assert minted.status_code == 200, minted.text
        user = f"{USERS}/{quote(sub, safe='')}"  # one path segment, `/` as %2F

        deleted = await client.delete(user, headers=admin)
        refused = await client.post(MINT, json=MINT_BODY, headers=bearer)
        gone = await client.get(user, headers=admin)
        restored = await client.post(user, json={"role": "reader"}, headers=admin)

        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["id"] == sub
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "user_revoked"
        assert gone.status_code == 404
        assert restored.status_code == 200  # the next example with this sub starts over
        assert restored.json()["id"] == sub

    with asyncio.Runner() as runner:

        @settings(
            max_examples=200,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(sub=SUBS)
        def check(sub: str) -> None:
            runner.run(scenario(sub))

        try:
            check()
        finally:
            runner.run(client.aclose())
