"""A broker on the in-process fake upstream, placing GPT-Live sessions on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from service.fake.live import FakeLiveSessions
from tests.calls.conftest import ADMIN_KEY, OFFER, Harness, close_harness, dev_harness

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
POLICY: dict[str, Any] = {
    "default_role": "reader",
    "roles": {
        "reader": {
            "models": ["gpt-realtime", "gpt-live-1"],
            "voices": ["marin", "cedar"],
            "instructions": {"mode": "server", "text": "You are the Acme assistant."},
            # Two of these rewrite the session: a Live browser channel never gets them.
            "client_events": [
                "response.create",
                "session.update",
                "session.instructions.append",
                "session.input_audio.mute",
                "session.close",
                "conversation.item.create",
            ],
            "server_events": ["session.started", "session.output_transcript.delta", "error"],
            "max_concurrent_calls": 2,
            "max_call_seconds": 60,
            "daily_token_budget": 250,
            "limits": ["100/minute"],
        },
        "owner": {
            "models": ["gpt-live-1"],
            "instructions": {"mode": "prefix", "text": "Owner rules."},
            "daily_minute_budget": 1,
            "limits": ["100/minute"],
        },
        "realtime_only": {"models": ["gpt-realtime"], "limits": ["100/minute"]},
    },
}


class LiveHarness(Harness):
    """A `Harness` that starts GPT-Live sessions: `live` is the fake's Live registry."""

    @property
    def live(self) -> FakeLiveSessions:
        sessions: FakeLiveSessions = self.app.state.fake_live["default"]
        return sessions

    def upstream_creates(self) -> int:
        """How many sessions the fake upstream was asked to create."""
        counter = self.app.state.fake_apps["default"].state.calls
        return int(counter["POST /v1/live/sessions"])

    async def start(
        self,
        session: dict[str, Any] | None = None,
        *,
        sub: str = "alice",
        role: str = "reader",
        sdp: str = OFFER,
    ) -> httpx.Response:
        body = {
            "session": {"model": "gpt-live-1"} if session is None else session,
            "transport": {"type": "webrtc", "sdp": sdp},
        }
        return await self.client.post(
            "/v1/live/sessions",
            json=body,
            headers={"Authorization": f"Bearer {self.token(sub, role)}"},
        )

    async def started(self, session: dict[str, Any] | None = None, **who: str) -> str:
        """A session started and joined by its supervisor; its id."""
        response = await self.start(session, **who)
        assert response.status_code == 201, response.text
        session_id: str = response.json()["session"]["id"]
        sessions = self.live.sessions
        await self.until(lambda: session_id in sessions and bool(sessions[session_id].lines))
        return session_id


LiveHarnessFactory = Callable[..., Awaitable[LiveHarness]]


@pytest.fixture
async def live() -> AsyncIterator[LiveHarnessFactory]:
    made: list[LiveHarness] = []

    async def make(policy: dict[str, Any] | None = None) -> LiveHarness:
        made.append(LiveHarness(**vars(dev_harness(policy or POLICY))))
        return made[-1]

    yield make
    for h in made:
        await close_harness(h)
