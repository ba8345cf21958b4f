"""The relay refuses a Gemini tenant's user as every other OpenAI route does: a 404 that
says where its mint is (Broker.openai_upstream), not a 403 about a call it cannot have."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse

from service.clock import ManualClock
from tests.gemini.conftest import build_app, gemini_settings, token_for


@pytest.mark.parametrize(("tenant", "status"), [("gemini", 404), ("openai", 403)])
def test_a_gemini_tenants_user_gets_a_404_at_the_relay(tenant: str, status: int) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    app, _, _ = build_app(gemini_settings(), clock)
    jwt = token_for(clock, tenant=tenant)

    with (
        TestClient(app) as client,
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect(
            "/v1/realtime?call_id=rtc_nope", headers={"Authorization": f"Bearer {jwt}"}
        ),
    ):
        pass

    assert denied.value.status_code == status
    if tenant == "gemini":
        assert "/v1alpha/auth_tokens" in denied.value.json()["error"]["message"]
    else:  # an OpenAI tenant's user without that call: refused as before
        assert denied.value.json()["error"]["code"] == "call_forbidden"
