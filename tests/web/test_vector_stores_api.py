"""GET and POST /v1/vector_stores end to end over ASGI: memory store, the fake upstream
behind a transport that records every call, and a manual clock."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import httpx2
import openai
import pytest
from starlette.applications import Starlette

from service.auth.tokens import sign_dev_token
from service.clock import ManualClock
from service.config.settings import Settings
from service.dev import create_dev_app
from service.fake.app import create_fake_app
from service.limits import parse_limit
from service.policy.model import Policy
from service.policy.parse import default_policy
from service.redact import user_hash
from service.stores.memory import MemoryStore
from service.web.vector_stores import vector_store_routes
from tests.web.conftest import SECRET, make_settings

SERVER_KEY = "test-server-held-key-0123456789"
PATH = "/v1/vector_stores"


class Recording(httpx.AsyncBaseTransport):
    """Passes every request to `inner` and keeps it, so a test can say what upstream saw."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


@dataclasses.dataclass
class Harness:
    app: Starlette
    client: httpx.AsyncClient
    upstream: Recording
    store: MemoryStore
    clock: ManualClock

    def token(self, sub: str = "alice", role: str | None = "reader") -> str:
        return sign_dev_token(SECRET, sub=sub, role=role, now=self.clock.now)

    def auth(self, sub: str = "alice", role: str | None = "reader") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, role)}"}


def with_policy(settings: Settings, policy: Policy) -> Settings:
    tenants = tuple(dataclasses.replace(t, policy=policy) for t in settings.tenants)
    return dataclasses.replace(settings, tenants=tenants)


def build_app(
    settings: Settings, transport: httpx.AsyncBaseTransport, store: MemoryStore, clock: ManualClock
) -> Starlette:
    app = create_dev_app(settings, store=store, transport=transport, clock=clock)
    # Until the app factory lists these routes itself.
    if not any(getattr(route, "path", None) == PATH for route in app.router.routes):
        app.router.routes.extend(vector_store_routes())
    return app


@dataclasses.dataclass
class HarnessFactory:
    """Builds a harness; `close` shuts every client it made."""

    opened: list[Harness] = dataclasses.field(default_factory=list)

    def __call__(
        self,
        *,
        policy: Policy | None = None,
        env: Mapping[str, str] | None = None,
        upstream: httpx.AsyncBaseTransport | None = None,
    ) -> Harness:
        clock = ManualClock()
        store = MemoryStore(clock=clock)
        settings = make_settings({"BROKER_UPSTREAM_API_KEY": SERVER_KEY, **(env or {})})
        if policy is not None:
            settings = with_policy(settings, policy)
        inner = upstream or httpx.ASGITransport(app=create_fake_app(clock=clock))
        recording = Recording(inner)
        app = build_app(settings, recording, store, clock)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://broker")
        harness = Harness(app, client, recording, store, clock)
        self.opened.append(harness)
        return harness

    async def close(self) -> None:
        for harness in self.opened:
            await harness.client.aclose()
            for upstream in harness.app.state.broker.upstreams.values():
                await upstream.aclose()


@pytest.fixture
async def make() -> AsyncIterator[HarnessFactory]:
    factory = HarnessFactory()
    yield factory
    await factory.close()


@pytest.fixture
def h(make: HarnessFactory) -> Harness:
    return make()


def vector_store_policy(**overrides: Any) -> Policy:
    """The built-in policy with `overrides` applied to every role's rules."""
    base = default_policy()
    roles = {name: dataclasses.replace(rules, **overrides) for name, rules in base.roles.items()}
    return dataclasses.replace(base, roles=roles)


# --- the official SDK -----------------------------------------------------------------


async def test_the_official_sdk_creates_and_pages_through_vector_stores(h: Harness) -> None:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=h.app)) as http:
        owner = openai.AsyncOpenAI(
            base_url="http://broker/v1",
            api_key=h.token("olga", "owner"),
            http_client=http,
            max_retries=0,
        )
        created = []
        for index in range(5):
            store = await owner.vector_stores.create(name=f"kb-{index}", metadata={"n": str(index)})
            created.append(store.id)
        assert all(store_id.startswith("vs_") for store_id in created)

        reader = owner.with_options(api_key=h.token("rita", "reader"))
        listed = [store.id async for store in reader.vector_stores.list(limit=2)]
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await reader.vector_stores.create(name="not mine")

    assert listed == list(reversed(created))  # default order: newest first
    assert refused.value.code == "role_forbidden"
    pages = [r for r in h.upstream.requests if r.method == "GET"]
    assert len(pages) == 3  # 2 + 2 + 1: auto-pagination followed `after` twice
    assert [r.url.params.get("after") for r in pages] == [None, created[3], created[1]]


# --- what upstream sees ------------------------------------------------------------------


async def test_upstream_gets_the_server_key_defaults_and_a_safety_identifier(h: Harness) -> None:
    jwt = h.token("alice", "reader")
    response = await h.client.get(PATH, headers={"Authorization": f"Bearer {jwt}"})

    assert response.status_code == 200, response.text
    assert response.json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    [sent] = h.upstream.requests
    assert sent.url.path == "/v1/vector_stores"
    assert dict(sent.url.params) == {"limit": "20", "order": "desc"}
    assert sent.headers["authorization"] == f"Bearer {SERVER_KEY}"
    assert jwt not in str(sent.headers.raw)
    assert sent.headers["openai-safety-identifier"] == user_hash("default", "alice")


async def test_create_passes_the_upstream_object_through_with_rate_limit_headers(
    h: Harness,
) -> None:
    body = {
        "name": "kb",
        "metadata": {"team": "support"},
        "expires_after": {"anchor": "last_active_at", "days": 7},
        "chunking_strategy": {
            "type": "static",
            "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
        },
    }
    response = await h.client.post(PATH, json=body, headers=h.auth("olga", "owner"))

    assert response.status_code == 200, response.text
    store = response.json()
    assert store["object"] == "vector_store"
    assert (store["name"], store["metadata"]) == ("kb", {"team": "support"})
    assert store["expires_at"] == int(h.clock.now) + 7 * 86_400
    assert json.loads(h.upstream.requests[0].content) == body
    assert response.headers["ratelimit-limit"] == "10"
    assert response.headers["ratelimit-remaining"] == "9"
    assert response.headers["cache-control"] == "no-store"


# --- who may call ------------------------------------------------------------------------


async def test_a_reader_may_list_but_not_create_and_the_refusal_costs_nothing(
    h: Harness,
) -> None:
    refused = await h.client.post(PATH, json={"name": "kb"}, headers=h.auth("rita", "reader"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "role_forbidden"
    assert refused.json()["error"]["type"] == "permission_error"
    assert h.upstream.requests == []

    listed = await h.client.get(PATH, headers=h.auth("rita", "reader"))
    assert listed.status_code == 200
    assert listed.headers["ratelimit-remaining"] == "9"  # the 403 was refunded


async def test_the_directory_role_wins_over_the_token_claim(h: Harness) -> None:
    await h.client.get(PATH, headers=h.auth("rita", "reader"))  # first sight: recorded
    await h.store.set_role("default", "rita", "owner")
    promoted = await h.client.post(PATH, json={}, headers=h.auth("rita", "reader"))
    assert promoted.status_code == 200, promoted.text

    await h.store.set_role("default", "rita", "reader")
    demoted = await h.client.post(PATH, json={}, headers=h.auth("rita", "owner"))
    assert demoted.status_code == 403


async def test_revoked_and_unauthenticated_callers_reach_nothing(h: Harness) -> None:
    await h.client.get(PATH, headers=h.auth("mallory", "owner"))
    await h.store.revoke("default", "mallory")
    h.upstream.requests.clear()

    for method in ("GET", "POST"):
        revoked = await h.client.request(method, PATH, json={}, headers=h.auth("mallory", "owner"))
        assert revoked.status_code == 403
        assert revoked.json()["error"]["code"] == "user_revoked"
        # Authentication comes before validation: an invalid request without a token is a 401.
        anonymous = await h.client.request(method, PATH + "?limit=0", json={"file_ids": 5})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert h.upstream.requests == []


# --- validation at every boundary, before the store and the upstream ----------------------


def file_ids(count: int) -> list[str]:
    return [f"file-{index:04d}" for index in range(count)]


def pairs(count: int) -> dict[str, str]:
    return {f"key{index}": "value" for index in range(count)}


VALID_CREATES: list[tuple[str, dict[str, Any]]] = [
    ("empty", {}),
    ("500 file ids", {"file_ids": file_ids(500)}),
    ("16 metadata pairs", {"metadata": pairs(16)}),
    ("64-character key", {"metadata": {"k" * 64: "v"}}),
    ("512-character value", {"metadata": {"k": "v" * 512}}),
]

INVALID_CREATES: list[tuple[str, object, str | None, str]] = [
    ("501 file ids", {"file_ids": file_ids(501)}, "file_ids", "invalid_value"),
    ("17 metadata pairs", {"metadata": pairs(17)}, "metadata", "invalid_value"),
    ("65-character key", {"metadata": {"k" * 65: "v"}}, "metadata", "invalid_value"),
    ("513-character value", {"metadata": {"k": "v" * 513}}, "metadata.k", "invalid_value"),
    ("name not a string", {"name": 5}, "name", "invalid_value"),
    ("file id not a string", {"file_ids": ["file-1", 2]}, "file_ids[1]", "invalid_value"),
    ("unknown field", {"nmae": "kb"}, "nmae", "unknown_parameter"),
    (
        "expires_after 0 days",
        {"expires_after": {"anchor": "last_active_at", "days": 0}},
        "expires_after.days",
        "invalid_value",
    ),
    (
        "expires_after other anchor",
        {"expires_after": {"anchor": "created_at", "days": 1}},
        "expires_after.anchor",
        "invalid_value",
    ),
    (
        "overlap above half the chunk",
        {
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 51},
            }
        },
        "chunking_strategy.static.chunk_overlap_tokens",
        "invalid_value",
    ),
    ("array body", [], None, "invalid_json"),
]


@pytest.mark.parametrize(("name", "body"), VALID_CREATES, ids=[c[0] for c in VALID_CREATES])
async def test_create_at_the_valid_side_of_each_bound_is_forwarded(
    h: Harness, name: str, body: dict[str, Any]
) -> None:
    response = await h.client.post(PATH, json=body, headers=h.auth("olga", "owner"))
    assert response.status_code == 200, response.text
    [sent] = h.upstream.requests
    assert json.loads(sent.content) == body


@pytest.mark.parametrize(
    ("name", "body", "param", "code"), INVALID_CREATES, ids=[c[0] for c in INVALID_CREATES]
)
async def test_create_past_a_bound_is_a_400_naming_the_param_and_reaches_nothing(
    h: Harness, name: str, body: object, param: str | None, code: str
) -> None:
    response = await h.client.post(PATH, json=body, headers=h.auth("olga", "owner"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert h.upstream.requests == []
    # Nor was the request counted: the next valid one finds the bucket full.
    after = await h.client.get(PATH, headers=h.auth("olga", "owner"))
    assert after.headers["ratelimit-remaining"] == "9"


async def test_a_body_that_is_not_json_is_refused_before_upstream(h: Harness) -> None:
    response = await h.client.post(
        PATH,
        content=b'{"name": "kb"',
        headers={**h.auth("olga", "owner"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert h.upstream.requests == []


@pytest.mark.parametrize(("limit", "sent_limit"), [("1", "1"), ("100", "100"), ("020", "20")])
@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_list_limit_at_its_bounds_and_either_order_is_forwarded(
    h: Harness, limit: str, sent_limit: str, order: str
) -> None:
    response = await h.client.get(PATH, params={"limit": limit, "order": order}, headers=h.auth())
    assert response.status_code == 200, response.text
    [sent] = h.upstream.requests
    assert dict(sent.url.params) == {"limit": sent_limit, "order": order}


@pytest.mark.parametrize("cursor", ["after", "before"])
async def test_a_cursor_of_256_characters_is_forwarded_and_257_is_refused(
    h: Harness, cursor: str
) -> None:
    longest = await h.client.get(PATH, params={cursor: "v" * 256}, headers=h.auth())
    # Upstream knows no such store (a 400 of its own), but the cursor reached it whole.
    [sent] = h.upstream.requests
    assert sent.url.params[cursor] == "v" * 256
    assert "no vector store with id" in longest.json()["error"]["message"]

    too_long = await h.client.get(PATH, params={cursor: "v" * 257}, headers=h.auth())
    assert too_long.status_code == 400
    error = too_long.json()["error"]
    assert (error["param"], error["code"]) == (cursor, "invalid_value")
    assert "256 characters" in error["message"]
    assert len(h.upstream.requests) == 1


async def test_the_sdks_list_query_is_forwarded_as_sent(h: Harness) -> None:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=h.app)) as http:
        owner = openai.AsyncOpenAI(
            base_url="http://broker/v1",
            api_key=h.token("olga", "owner"),
            http_client=http,
            max_retries=0,
        )
        created = [(await owner.vector_stores.create(name=f"kb-{n}")).id for n in range(3)]
        page = await owner.vector_stores.list(
            limit=100, order="asc", after=created[0], before=created[2]
        )

    assert [store.id for store in page.data] == [created[1]]
    sent = h.upstream.requests[-1]
    assert dict(sent.url.params) == {
        "limit": "100",
        "order": "asc",
        "after": created[0],
        "before": created[2],
    }


INVALID_LISTS: list[tuple[str, str, str, str]] = [
    ("limit 0", "limit=0", "limit", "invalid_value"),
    ("limit 101", "limit=101", "limit", "invalid_value"),
    ("limit empty", "limit=", "limit", "invalid_value"),
    ("limit not a number", "limit=ten", "limit", "invalid_value"),
    ("limit a decimal", "limit=5.0", "limit", "invalid_value"),
    ("limit a superscript digit", "limit=%C2%B2", "limit", "invalid_value"),
    ("limit arabic-indic digits", "limit=%D9%A1%D9%A0", "limit", "invalid_value"),
    ("limit signed", "limit=%2B5", "limit", "invalid_value"),
    ("limit spaced", "limit=%205", "limit", "invalid_value"),
    ("before not an id", "before=vs%2F1", "before", "invalid_value"),
    ("before empty", "before=", "before", "invalid_value"),
    ("order sideways", "order=sideways", "order", "invalid_value"),
    ("order upper case", "order=ASC", "order", "invalid_value"),
    ("order spelled out", "order=ascending", "order", "invalid_value"),
    ("order empty", "order=", "order", "invalid_value"),
    ("cursor not an id", "after=vs_1%20OR%201", "after", "invalid_value"),
    ("repeated limit", "limit=5&limit=50", "limit", "invalid_value"),
    ("repeated order", "order=asc&order=asc", "order", "invalid_value"),
    ("repeated after", "after=vs_1&after=vs_1", "after", "invalid_value"),
    ("unknown parameter", "offset=5", "offset", "unknown_parameter"),
]


@pytest.mark.parametrize(
    ("name", "query", "param", "code"), INVALID_LISTS, ids=[c[0] for c in INVALID_LISTS]
)
async def test_list_past_a_bound_is_a_400_naming_the_param_and_reaches_nothing(
    h: Harness, name: str, query: str, param: str, code: str
) -> None:
    response = await h.client.get(f"{PATH}?{query}", headers=h.auth())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code)
    assert h.upstream.requests == []


async def test_a_refused_cursor_is_not_echoed(h: Harness) -> None:
    response = await h.client.get(PATH, params={"after": "secret value!"}, headers=h.auth())
    assert response.status_code == 400
    assert "secret" not in response.text


# --- rate limits ----------------------------------------------------------------------------


async def test_vector_store_limits_of_the_policy_apply_in_their_own_buckets(
    make: HarnessFactory,
) -> None:
    h = make(policy=vector_store_policy(vector_store_limits=(parse_limit("2/minute"),)))
    first = await h.client.get(PATH, headers=h.auth())
    second = await h.client.get(PATH, headers=h.auth())
    third = await h.client.get(PATH, headers=h.auth())

    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert first.headers["ratelimit-limit"] == "2"
    assert second.headers["ratelimit-remaining"] == "0"
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert third.headers["retry-after"] == "30"
    assert len(h.upstream.requests) == 2
    # The mint buckets are untouched by all this.
    mint = await h.client.post("/v1/realtime/client_secrets", json={}, headers=h.auth())
    assert mint.status_code == 200, mint.text
    assert mint.headers["ratelimit-remaining"] == "9"
    # Refilled at 2/minute: one more after 30 s, without sleeping.
    h.clock.advance(30)
    assert (await h.client.get(PATH, headers=h.auth())).status_code == 200


async def test_without_own_limits_the_role_limits_apply_but_not_the_mint_count(
    h: Harness,
) -> None:
    for _ in range(10):
        minted = await h.client.post("/v1/realtime/client_secrets", json={}, headers=h.auth())
        assert minted.status_code == 200
    assert (
        await h.client.post("/v1/realtime/client_secrets", json={}, headers=h.auth())
    ).status_code == 429

    statuses = [(await h.client.get(PATH, headers=h.auth())).status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]


async def test_tenant_limits_count_vector_store_calls_of_every_user(
    make: HarnessFactory,
) -> None:
    policy = dataclasses.replace(default_policy(), tenant_limits=(parse_limit("3/minute"),))
    h = make(policy=policy)
    statuses = [
        (await h.client.get(PATH, headers=h.auth(f"user{index}"))).status_code for index in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    mint = await h.client.post("/v1/realtime/client_secrets", json={}, headers=h.auth("user3"))
    assert mint.status_code == 200, mint.text


# --- upstream errors ------------------------------------------------------------------------


def answering(status: int, error: dict[str, Any]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json={"error": error}))


async def test_upstream_refusing_the_key_is_a_502_without_its_text_and_charges_nothing(
    make: HarnessFactory,
) -> None:
    refusal = {
        "message": f"Incorrect API key provided: {SERVER_KEY[:6]}***{SERVER_KEY[-4:]}.",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    }
    h = make(env={"BROKER_UPSTREAM": "openai"}, upstream=answering(401, refusal))
    for _ in range(6):
        for method in ("GET", "POST"):
            response = await h.client.request(method, PATH, json={}, headers=h.auth("o", "owner"))
            assert response.status_code == 502
            error = response.json()["error"]
            assert error["code"] == "upstream_error"
            assert "misconfigured" in error["message"]
            assert "Incorrect" not in response.text
            assert "sk-" not in response.text
    # 12 calls > 10/minute: had the failures been charged, the last ones would be 429s.
    assert len(h.upstream.requests) == 12


async def test_upstream_404_passes_its_message_through(make: HarnessFactory) -> None:
    missing = {"message": "No vector store found.", "type": "invalid_request_error", "code": None}
    h = make(env={"BROKER_UPSTREAM": "openai"}, upstream=answering(404, missing))
    response = await h.client.get(PATH, headers=h.auth())
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No vector store found."
    assert response.json()["error"]["code"] == "not_found"


async def test_upstream_400_passes_its_message_and_param_through(h: Harness) -> None:
    # The fake refuses a cursor naming no store, as OpenAI does; the broker cannot know.
    response = await h.client.get(PATH, params={"after": "vs_gone"}, headers=h.auth())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "after"
    assert "no vector store with id 'vs_gone'" in error["message"]
    assert len(h.upstream.requests) == 1
