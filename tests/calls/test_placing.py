"""Placing a call, cancelled at each of its awaits (the server stopping, the request gone):
nothing is left behind. The lease is freed, the admission refunded, and a call upstream
already placed is ended.

A real broker and controller on memory stores; the call store answers each step after a
round trip (`RoundTrips`: a cancellation may come before or after the step is done).
Two round trips stay whole here, as nothing can undo what a cancellation inside them
leaves: upstream's create request (a call whose id was in the answer not read) and the
admission's own (a charge taken but not known; it lapses with its bucket)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.auth.tokens import Authenticator, Identity
from service.calls.controller import CallController
from service.calls.model import CallKind
from service.calls.placing import place_call
from service.calls.store_memory import MemoryCallStore
from service.calls.supervised import CallOptions
from service.clock import ManualClock
from service.config.settings import TenantSettings, load_settings
from service.errors import NotFound
from service.mint.broker import Broker
from service.stores.memory import MemoryStore
from tests.calls.conftest import OFFER, POLICY, SECRET
from tests.eventually import eventually

ANSWER = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
# One placement a minute and one call at a time: an admission or a lease left behind
# refuses the next placement.
STRICT = {"max_concurrent_calls": 1, "limits": ["1/minute"]}


class Line:
    """A call's sideband at the stub: JSON text events, None once the call is over."""

    def __init__(self, upstream: Upstream, call_id: str) -> None:
        self.upstream, self.call_id = upstream, call_id
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def recv(self) -> str | None:
        return await self.queue.get()

    async def send(self, event: dict[str, Any]) -> None:
        if event.get("type") == "session.close":
            self.upstream.end(self.call_id, json.dumps({"type": "session.closed"}))

    async def close(self) -> None:
        self.queue.put_nowait(None)


class Upstream:
    """OpenAI for the placement and its supervisor: Realtime calls and GPT-Live sessions,
    their sidebands (it is the controller's connector too) and hangups. Each request
    waits once before it is answered: where a cancellation may come."""

    def __init__(self) -> None:
        self.live: dict[str, list[Line]] = {}
        self.created: list[str] = []

    async def create_call(
        self, sdp: str, session: dict[str, Any], *, safety_identifier: str
    ) -> tuple[str, str]:
        await asyncio.sleep(0)
        return ANSWER, self._create("rtc")

    async def create_live_session(self, body: bytes, *, safety_identifier: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"session": {"id": self._create("live")}, "transport": {"sdp": ANSWER}}

    async def hangup_call(self, call_id: str) -> None:
        await asyncio.sleep(0)
        if call_id not in self.live:
            raise NotFound("No such call.")
        self.end(call_id)

    async def connect(
        self, tenant: TenantSettings, call_id: str, kind: CallKind = "realtime"
    ) -> Line:
        if call_id not in self.live:
            raise NotFound("No such call.")
        line = Line(self, call_id)
        self.live[call_id].append(line)
        return line

    def end(self, call_id: str, last: str | None = None) -> None:
        for line in self.live.pop(call_id, []):
            if last is not None:
                line.queue.put_nowait(last)
            line.queue.put_nowait(None)

    def _create(self, prefix: str) -> str:
        call_id = f"{prefix}_{len(self.created)}"
        self.created.append(call_id)
        self.live[call_id] = []
        return call_id


class RoundTrips:
    """A store whose every coroutine method waits before and after the real step."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        step = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(step):
            return step

        async def round_trip(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            result = await step(*args, **kwargs)
            await asyncio.sleep(0)
            return result

        return round_trip


@dataclass
class World:
    broker: Broker
    controller: CallController
    calls: MemoryCallStore
    upstream: Upstream
    identity: Identity

    async def cancelled_at_each_await(self, place: Callable[[], Awaitable[object]]) -> int:
        """Place, cancelling after 0, 1, 2, ... steps of the event loop until a placement
        completes; after each cancelled one, nothing may be left. The steps taken."""
        steps = 0
        while True:
            task = asyncio.ensure_future(place())
            for _ in range(steps):
                await asyncio.sleep(0)
            if task.done():
                task.result()
                return steps
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.nothing_left()
            steps += 1

    async def nothing_left(self) -> None:
        await eventually(
            lambda: not (self.upstream.live or self.controller.held("default")),
            seconds=3,
            what="the cancelled placement's call ended and let go",
        )
        assert await self.calls.user_calls("default", "alice") == []
        # Refunded: the one placement a minute is there again.
        request = self.broker.admit_request(self.identity)
        await self.broker.refund(request, await self.broker.admit(request))


@contextlib.asynccontextmanager
async def placing_world() -> AsyncIterator[World]:
    policy = json.loads(json.dumps(POLICY))
    policy["roles"]["reader"].update(STRICT, models=["gpt-realtime", "gpt-live-1"])
    settings = load_settings(
        {
            "BROKER_UPSTREAM": "fake",
            "BROKER_JWT_SECRET": SECRET,
            "BROKER_POLICY": json.dumps(policy),
        }
    )
    clock = ManualClock(time.time())
    upstream, calls = Upstream(), MemoryCallStore(clock=clock)
    async with httpx.AsyncClient() as jwks:
        broker = Broker(
            settings,
            store=MemoryStore(clock=clock),
            authenticator=Authenticator(settings.tenants, http=jwks, clock=clock),
            upstreams={"default": upstream},  # type: ignore[dict-item]
        )
        controller = CallController(
            store=RoundTrips(calls),
            connector=upstream,
            upstreams={"default": upstream},  # type: ignore[dict-item]
            tenants=settings.tenants,
            clock=clock,
            options=CallOptions(tick=0.005),
        )
        identity = Identity("default", "alice", "reader", None, None, int(clock()) + 600)
        try:
            yield World(broker, controller, calls, upstream, identity)
        finally:
            await controller.aclose()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with placing_world() as made:
        yield made


async def test_a_realtime_call_cancelled_at_any_await_leaves_nothing(world: World) -> None:
    steps = await world.cancelled_at_each_await(
        lambda: place_call(world.broker, world.controller, world.identity, OFFER, None)
    )

    # Cancelled before and after upstream placed the call, and then placed and held.
    assert steps > 3
    assert len(world.upstream.created) > 1
    assert world.controller.held("default") == [world.upstream.created[-1]]
