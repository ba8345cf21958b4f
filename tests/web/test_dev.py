"""Dev mode against a web page that is not on this machine: `token-broker dev` answers only
local host names (DNS rebinding), and the fake at /dev/fake checks its callers as OpenAI
does (the key the broker uses; a client secret it minted, for placing a call)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from service.auth.tokens import sign_dev_token
from service.clock import ManualClock
from service.dev import LOCAL_HOSTS, LocalHostsOnly, create_dev_app
from tests.web.conftest import SECRET, make_settings

OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
SDP = {"Content-Type": "application/sdp"}


def dev_app(
    extra: Mapping[str, str] | None = None, *, local_only: bool = True, **kwargs: object
) -> Starlette:
    settings = dataclasses.replace(make_settings(extra), dev=True)
    return create_dev_app(settings, local_only=local_only, **kwargs)  # type: ignore[arg-type]


def client_for(app: Starlette, base: str = "http://127.0.0.1:8080") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def user_jwt(now: float | None = None) -> str:
    return sign_dev_token(SECRET, sub="page", role="owner", now=time.time() if now is None else now)


# --- Host: local names only ---------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:5173", "127.0.0.1:8080", "[::1]:8080", "[::1]", "LocalHost"]
)
async def test_local_host_names_are_answered_on_any_port(host: str) -> None:
    async with client_for(dev_app()) as client:
        response = await client.get("/healthz", headers={"Host": host})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
        "127.0.0.1.nip.io:8080",
        "localhost:8080@evil.example",
        "[::1",
        "",
    ],
)
async def test_a_rebound_name_is_refused_before_anything_runs(host: str) -> None:
    async with client_for(dev_app()) as client:
        token = await client.post("/dev/token", json={"role": "owner"}, headers={"Host": host})
        page = await client.get("/", headers={"Host": host})
        fake = await client.post(
            "/dev/fake/v1/realtime/calls", content=OFFER, headers={"Host": host, **SDP}
        )
    for response in (token, page, fake):
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/plain")
        assert "BROKER_DEV_ALLOWED_HOSTS" in response.text
        assert "DNS rebinding" in response.text


def test_a_websocket_from_a_rebound_name_is_refused_too() -> None:
    client = TestClient(dev_app())
    connect = client.websocket_connect(
        "/v1/realtime?call_id=rtc_1", headers={"Host": "evil.example"}
    )
    with pytest.raises(WebSocketDenialResponse) as refused, connect:
        pass  # pragma: no cover - never accepted
    assert refused.value.status_code == 403
    assert "BROKER_DEV_ALLOWED_HOSTS" in refused.value.text


async def test_more_names_by_setting() -> None:
    app = dev_app({"BROKER_DEV_ALLOWED_HOSTS": "devbox.lan, .dev.test"})
    async with client_for(app) as client:
        codes = {
            host: (await client.get("/healthz", headers={"Host": host})).status_code
            for host in ("devbox.lan:8080", "dev.test", "a.dev.test:80", "localhost", "x.lan")
        }
    assert codes == {
        "devbox.lan:8080": 200,
        "dev.test": 200,
        "a.dev.test:80": 200,
        "localhost": 200,
        "x.lan": 403,
    }


def test_a_star_turns_the_check_off_and_the_defaults_are_the_local_names() -> None:
    assert LocalHostsOnly(Starlette(), allowed=["*"]).allows("anything.example:1")
    local = LocalHostsOnly(Starlette(), allowed=LOCAL_HOSTS)
    assert [local.allows(h) for h in ("localhost", "127.0.0.1:1", "[::1]:2", None)] == [
        True,
        True,
        True,
        False,
    ]


async def test_in_process_apps_answer_any_host_unless_asked() -> None:
    async with client_for(dev_app(local_only=False), "http://broker") as client:
        assert (await client.get("/healthz")).status_code == 200


# --- /dev/fake checks its callers -------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())


@pytest.fixture
async def dev(clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(dev_app(clock=clock)) as client:
        yield client


async def mint(client: httpx.AsyncClient) -> str:
    minted = await client.post(
        "/v1/realtime/client_secrets",
        json={"expires_after": {"anchor": "created_at", "seconds": 60}},
        headers=bearer(user_jwt()),
    )
    assert minted.status_code == 200, minted.text  # the broker has the fake's key
    value: str = minted.json()["value"]
    return value


async def test_a_minted_secret_places_a_call_on_the_fake_and_nothing_else(
    dev: httpx.AsyncClient,
) -> None:
    secret = await mint(dev)
    placed = await dev.post(
        "/dev/fake/v1/realtime/calls", content=OFFER, headers={**bearer(secret), **SDP}
    )
    assert placed.status_code == 201
    call_id = placed.headers["location"].rsplit("/", 1)[1]

    # Everything else needs the key the broker uses, as at OpenAI.
    fake = "/dev/fake/v1"
    refused = [
        await dev.post(f"{fake}/realtime/calls/{call_id}/hangup", headers=bearer(secret)),
        await dev.post(
            f"{fake}/_fake/realtime/calls/{call_id}/events",
            json={"type": "response.create"},
            headers=bearer(secret),
        ),
        await dev.post(f"{fake}/realtime/client_secrets", json={}, headers=bearer(secret)),
        await dev.get(f"{fake}/vector_stores", headers=bearer(secret)),
    ]
    assert [r.status_code for r in refused] == [401] * 4
    assert {r.json()["error"]["code"] for r in refused} == {"invalid_api_key"}


@pytest.mark.parametrize("key", ["anything", "fake", "ek_" + "0" * 32, ""])
async def test_any_other_bearer_is_refused(dev: httpx.AsyncClient, key: str) -> None:
    placed = await dev.post(
        "/dev/fake/v1/realtime/calls", content=OFFER, headers={**bearer(key), **SDP}
    )
    hangup = await dev.post("/dev/fake/v1/realtime/calls/rtc_1/hangup", headers=bearer(key))
    assert (placed.status_code, hangup.status_code) == (401, 401)


async def test_an_expired_secret_places_no_call(dev: httpx.AsyncClient, clock: ManualClock) -> None:
    secret = await mint(dev)
    clock.advance(61)
    placed = await dev.post(
        "/dev/fake/v1/realtime/calls", content=OFFER, headers={**bearer(secret), **SDP}
    )
    assert placed.status_code == 401


def test_the_fake_sideband_needs_the_key_the_broker_uses() -> None:
    app = dev_app()
    local = {"Host": "127.0.0.1:8080"}
    client = TestClient(app, base_url="http://127.0.0.1:8080")
    minted = client.post("/v1/realtime/client_secrets", json={}, headers=bearer(user_jwt()))
    secret = minted.json()["value"]
    placed = client.post(
        "/dev/fake/v1/realtime/calls", content=OFFER, headers={**bearer(secret), **SDP}
    )
    sideband = f"/dev/fake/v1/realtime?call_id={placed.headers['location'].rsplit('/', 1)[1]}"

    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(sideband, headers={**local, **bearer(secret)}),
    ):
        pass  # pragma: no cover - never accepted
    assert closed.value.code == 1008

    key = app.state.settings.tenants[0].upstream_api_key.reveal()
    with client.websocket_connect(sideband, headers={**local, **bearer(key)}) as joined:
        assert joined.receive_json()["type"] == "session.created"


async def test_a_configured_key_is_the_one_the_fake_requires() -> None:
    key = "test-dev-fake-key-0123456789"
    async with client_for(dev_app({"BROKER_UPSTREAM_API_KEY": key})) as client:
        secret = await mint(client)
        listed = await client.get("/dev/fake/v1/vector_stores", headers=bearer(key))
        placed = await client.post(
            "/dev/fake/v1/realtime/calls", content=OFFER, headers={**bearer(secret), **SDP}
        )
    assert listed.status_code == 200
    assert placed.status_code == 201


# --- call control's settings hold in dev mode (issue 30) ----------------------------------


async def test_dev_mode_holds_to_max_calls_and_the_call_lease_setting() -> None:
    app = dev_app({"BROKER_MAX_CALLS": "1", "BROKER_CALL_LEASE_SECONDS": "7"}, local_only=False)
    async with app.router.lifespan_context(app), client_for(app) as client:
        placed = [
            await client.post(
                "/v1/realtime/calls", content=OFFER, headers={**bearer(user_jwt()), **SDP}
            )
            for _ in range(2)
        ]
    assert [response.status_code for response in placed] == [201, 503]
    assert placed[1].json()["error"]["code"] == "calls_unavailable"
    assert app.state.calls.lease_ttl == 7.0
