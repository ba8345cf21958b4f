"""No door around call control (issue 25): a role with `client_channel: "relay"`, or with
`mint: false`, gets no client secret from any mint (GA, beta, transcription, translation):
403 `role_forbidden`, nothing sent upstream, the admission given back; its calls are
placed as before. In-process over the dev app, and with real `token-broker serve` and
`token-broker fake-upstream` processes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from service.auth.tokens import sign_dev_token
from service.config.settings import load_settings
from service.dev import create_dev_app
from tests.processes import fake_upstream, free_port, running

SECRET = "test-secret-0123456789-abcdefghijklmnop"
OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
TRANSLATE = {"translation_models": ["gpt-realtime-translate"]}
POLICY = {
    "default_role": "reader",
    "roles": {
        "reader": {**TRANSLATE, "limits": ["10/minute"]},
        "relay": {**TRANSLATE, "client_channel": "relay", "limits": ["3/minute"]},
        "closed": {**TRANSLATE, "mint": False, "limits": ["3/minute"]},
    },
}
MINTS: dict[str, dict[str, Any]] = {
    "/v1/realtime/client_secrets": {"session": {"type": "realtime"}},
    "/v1/realtime/sessions": {},
    "/v1/realtime/transcription_sessions": {},
    "/v1/realtime/translations/client_secrets": {"session": {"model": "gpt-realtime-translate"}},
}


def bearer(sub: str, role: str) -> dict[str, str]:
    token = sign_dev_token(SECRET, sub=sub, role=role, now=time.time())
    return {"Authorization": f"Bearer {token}"}


def place(client: Any, headers: dict[str, str]) -> Any:
    return client.post(
        "/v1/realtime/calls",
        content=OFFER,
        headers={**headers, "Content-Type": "application/sdp"},
    )


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = load_settings(
        {
            "BROKER_UPSTREAM": "fake",
            "BROKER_JWT_SECRET": SECRET,
            "BROKER_POLICY": json.dumps(POLICY),
        }
    )
    with TestClient(create_dev_app(settings)) as test_client:
        yield test_client


def mints_upstream(client: TestClient) -> int:
    """How many mint requests reached the fake upstream."""
    calls = client.app.state.fake_apps["default"].state.calls  # type: ignore[attr-defined]
    return sum(calls[f"POST {path}"] for path in MINTS)


@pytest.mark.parametrize("role", ["relay", "closed"])
def test_every_mint_is_403_for_a_role_that_may_not_mint_and_its_call_is_placed(
    client: TestClient, role: str
) -> None:
    headers = bearer(f"{role}-user", role)

    for path, body in MINTS.items():
        for _ in range(2):  # 8 refusals in all, over the role's 3/minute: none charged
            refused = client.post(path, json=body, headers=headers)
            assert refused.status_code == 403, (path, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "role_forbidden"
            assert "call control" in error["message"]
    assert mints_upstream(client) == 0

    placed = place(client, headers)
    assert placed.status_code == 201, placed.text
    assert placed.headers["ratelimit-remaining"] == "2"


def test_a_role_that_mints_still_mints_every_kind(client: TestClient) -> None:
    headers = bearer("reader-user", "reader")

    statuses = [client.post(p, json=b, headers=headers).status_code for p, b in MINTS.items()]

    assert statuses == [200, 200, 200, 200]
    assert mints_upstream(client) == 4


@pytest.mark.process
def test_a_relay_roles_mint_is_403_while_its_call_is_placed_by_real_processes(
    tmp_path: Any,
) -> None:
    fake_port, port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "BROKER_HOST": "127.0.0.1",
        "BROKER_PORT": str(port),
        "BROKER_JWT_SECRET": SECRET,
        "BROKER_UPSTREAM_API_KEY": "test-relay-role-test-0123456789",
        "BROKER_UPSTREAM_URL": f"http://127.0.0.1:{fake_port}/v1",
        "BROKER_POLICY": json.dumps(POLICY),
        "BROKER_LOG_LEVEL": "warning",
    }
    headers = bearer("rita", "relay")
    with (
        fake_upstream(fake_port, log=tmp_path / "fake.log"),
        running(["serve"], env=env, ready_url=f"{base}/healthz", log=tmp_path / "serve.log"),
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        refused = {
            path: http.post(path, json=body, headers=headers) for path, body in MINTS.items()
        }
        placed = place(http, headers)
        minted_by_reader = http.post(
            "/v1/realtime/client_secrets",
            json={"session": {"type": "realtime"}},
            headers=bearer("rhea", "reader"),
        )

    for path, response in refused.items():
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["code"] == "role_forbidden"
    assert placed.status_code == 201, placed.text
    assert placed.headers["location"].rsplit("/", 1)[1].startswith("rtc_")
    assert "ek_" not in placed.text
    assert minted_by_reader.status_code == 200
    assert minted_by_reader.json()["value"].startswith("ek_")
