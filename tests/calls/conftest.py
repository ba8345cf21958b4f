"""A broker on the in-process fake upstream, with call control on a manual clock."""

from __future__ import annotations

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
from service.fake.calls import FakeCalls
from tests.eventually import eventually, settle

SECRET = "test-secret-0123456789-abcdefghijklmnop"
ADMIN_KEY = "admin-key-0123456789abcdef"
OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
POLICY = {
    "default_role": "reader",
    "roles": {
        "reader": {
            "voices": ["alloy", "verse"],
            "instructions": {"mode": "server", "text": "You are the Acme assistant."},
            "max_concurrent_calls": 2,
            "max_call_seconds": 60,
            "daily_token_budget": 250,
            "limits": ["100/minute"],
        },
        "owner": {
            "instructions": {"mode": "server", "text": "Owner rules."},
            "on_session_update": "hangup",
            "daily_minute_budget": 1,
            "limits": ["100/minute"],
        },
    },
}


@dataclass
class Harness:
    app: Starlette
    client: httpx.AsyncClient
    clock: ManualClock
    controller: CallController
    fake: FakeCalls

    def token(self, sub: str = "alice", role: str = "reader") -> str:
        return sign_dev_token(SECRET, sub=sub, role=role, now=time.time())

    async def place(self, sub: str = "alice", role: str = "reader") -> httpx.Response:
        return await self.client.post(
            "/v1/realtime/calls",
            content=OFFER,
            headers={
                "Authorization": f"Bearer {self.token(sub, role)}",
                "Content-Type": "application/sdp",
            },
        )

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait (at most 2 s) for the controller's tasks to act: they run on this loop and
        signal nothing a test could await, so polling is the honest way to watch them."""
        await eventually(check, seconds=2)

    async def step(self) -> None:
        """One scheduler pass at the manual clock's time, then what it set off (a hangup
        it started): a test that then asserts nothing happened has given it the chance."""
        await self.controller.step()
        await settle()

    def day(self) -> str:
        return utc_day(self.clock())

    async def until_usage(self, user: str, *, tokens: int = 0, seconds: float = 0) -> None:
        """Wait (at most 2 s) until the user's metered usage today reaches these."""

        async def reached() -> bool:
            usage = await self.controller.store.usage("default", user, self.day())
            return usage.tokens >= tokens and usage.seconds >= seconds

        await eventually(reached, seconds=2, what=f"{user}'s usage")

    async def joined(self, call_id: str) -> None:
        calls = self.fake.calls
        await self.until(lambda: call_id in calls and bool(calls[call_id].lines))


HarnessFactory = Callable[..., Awaitable[Harness]]


def dev_harness(policy: dict[str, Any]) -> Harness:
    """A dev app (in-process fake upstream) with call control on a manual clock, ticking
    every 5 ms; close it with `close_harness`."""
    clock = ManualClock(time.time())
    settings = load_settings(
        {
            "BROKER_UPSTREAM": "fake",
            "BROKER_JWT_SECRET": SECRET,
            "BROKER_ADMIN_API_KEY": ADMIN_KEY,
            "BROKER_POLICY": json.dumps(policy),
        }
    )
    app = create_dev_app(settings, clock=clock, call_options=CallOptions(tick=0.005))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
    return Harness(app, client, clock, app.state.calls, app.state.fake_calls["default"])


async def close_harness(h: Harness) -> None:
    await h.controller.aclose()
    await h.client.aclose()


@pytest.fixture
async def harness() -> AsyncIterator[HarnessFactory]:
    made: list[Harness] = []

    async def make(policy: dict[str, object] | None = None) -> Harness:
        made.append(dev_harness(policy or POLICY))
        return made[-1]

    yield make
    for h in made:
        await close_harness(h)
