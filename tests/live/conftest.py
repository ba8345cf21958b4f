"""A broker on the in-process fake upstream, placing GPT-Live sessions on a manual clock."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from service.auth.tokens import sign_dev_token
from service.calls.controller import CallController
from service.calls.model import utc_day
from service.calls.supervised import CallOptions
from service.clock import ManualClock
from service.config.settings import load_settings
from service.dev import create_dev_app
from service.fake.live import FakeLiveSessions
from tests.calls.conftest import ADMIN_KEY, OFFER, SECRET

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


@dataclass
class LiveHarness:
    app: Starlette
    client: httpx.AsyncClient
    clock: ManualClock
    controller: CallController
    fake: FakeLiveSessions

    def token(self, sub: str = "alice", role: str = "reader") -> str:
        return sign_dev_token(SECRET, sub=sub, role=role, now=time.time())

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
        await self.until(
            lambda: session_id in self.fake.sessions and bool(self.fake.sessions[session_id].lines)
        )
        return session_id

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait (at most 2 s) for the controller's tasks to act."""
        async with asyncio.timeout(2):
            while not check():  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    def day(self) -> str:
        return utc_day(self.clock())

    async def until_usage(self, user: str, *, tokens: int = 0, seconds: float = 0) -> None:
        """Wait (at most 2 s) until the user's metered usage today reaches these."""
        async with asyncio.timeout(2):
            while True:
                usage = await self.controller.store.usage("default", user, self.day())
                if usage.tokens >= tokens and usage.seconds >= seconds:
                    return
                await asyncio.sleep(0.005)


LiveHarnessFactory = Callable[..., Awaitable[LiveHarness]]


@pytest.fixture
async def live() -> AsyncIterator[LiveHarnessFactory]:
    made: list[LiveHarness] = []

    async def make(policy: dict[str, Any] | None = None) -> LiveHarness:
        clock = ManualClock(time.time())
        settings = load_settings(
            {
                "BROKER_UPSTREAM": "fake",
                "BROKER_JWT_SECRET": SECRET,
                "BROKER_ADMIN_API_KEY": ADMIN_KEY,
                "BROKER_POLICY": json.dumps(policy or POLICY),
            }
        )
        app = create_dev_app(settings, clock=clock, call_options=CallOptions(tick=0.005))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
        made.append(
            LiveHarness(app, client, clock, app.state.calls, app.state.fake_live["default"])
        )
        return made[-1]

    yield make
    for h in made:
        await h.controller.aclose()
        await h.client.aclose()
