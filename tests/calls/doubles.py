"""Stand-ins for the controller's neighbours (a sideband, its connector, an upstream), for
the controller's unit tests that need more than tests/calls/test_controller.py's stubs:
GPT-Live hangups over REST, sidebands that go quiet, and a store that stops answering."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from service.calls.controller import CallController
from service.calls.model import CallKind, CallPolicy, Supervision
from service.calls.store import CallStore
from service.calls.store_memory import MemoryCallStore
from service.calls.supervised import CallOptions
from service.config.settings import TenantSettings, load_settings
from service.errors import NotFound, StoreUnavailable, UpstreamUnavailable

TENANT = load_settings({"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": "x" * 32}).tenants[0]


class Line:
    """A sideband: events put in are read by the controller; None ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    async def recv(self) -> str | None:
        return None if self.closed else await self.queue.get()

    async def send(self, event: dict[str, Any]) -> None:
        self.sent.append(event)

    async def close(self) -> None:
        self.closed = True
        self.queue.put_nowait(None)


class Connector:
    """Joins sidebands (`lines`), refusing the first `refuse` joins."""

    def __init__(self, *, refuse: int = 0) -> None:
        self.refuse, self.lines = refuse, list[Line]()

    async def connect(
        self, tenant: TenantSettings, call_id: str, kind: CallKind = "realtime"
    ) -> Line:
        if self.refuse:
            self.refuse -= 1
            raise UpstreamUnavailable("The call's sideband could not be opened.")
        self.lines.append(Line())
        return self.lines[-1]


class Upstream:
    """Hangups over REST, of Realtime calls and GPT-Live sessions; `gone` ids are 404."""

    def __init__(self) -> None:
        self.hangups: list[str] = []
        self.live_hangups: list[str] = []
        self.gone: set[str] = set()

    async def hangup_call(self, call_id: str) -> None:
        self.hangups.append(call_id)
        if call_id in self.gone:
            raise NotFound("No such call.")

    async def hangup_live_session(self, session_id: str) -> None:
        self.live_hangups.append(session_id)
        if session_id in self.gone:
            raise NotFound("No such session.")
        self.gone.add(session_id)


class Unreachable:
    """A call store whose supervision steps fail while `down` (a replica cut off from
    Redis); everything else is the wrapped store's."""

    def __init__(self, inner: CallStore) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def heartbeat(
        self, tenant: str, owner: str, call_ids: Sequence[str], ttl: float
    ) -> list[str]:
        if self.down:
            raise StoreUnavailable("redis unreachable")
        return await self.inner.heartbeat(tenant, owner, call_ids, ttl)

    async def add_usage(self, deltas: Sequence[Any]) -> list[Any]:
        if self.down:
            raise StoreUnavailable("redis unreachable")
        return await self.inner.add_usage(deltas)

    async def claim_orphans(
        self, tenant: str, owner: str, ttl: float, limit: int
    ) -> list[Supervision]:
        if self.down:
            raise StoreUnavailable("redis unreachable")
        return await self.inner.claim_orphans(tenant, owner, ttl, limit)


def record(
    call_id: str = "rtc_1", *, deadline: float = 1e12, kind: CallKind = "realtime"
) -> Supervision:
    policy = CallPolicy("reader", {("instructions",): "Policy."})
    return Supervision("default", "alice", call_id, policy, 0.0, deadline, kind)


def controller(
    connector: Connector,
    upstream: Upstream,
    store: CallStore | None = None,
    *,
    owner: str | None = None,
    **opts: Any,
) -> CallController:
    options = CallOptions(**{"tick": 0.01, "lease_ttl": 1.0, "rejoin_seconds": 0.3, **opts})
    return CallController(
        store=store or MemoryCallStore(),
        connector=connector,
        upstreams={"default": upstream},  # type: ignore[dict-item]
        tenants=[TENANT],
        options=options,
        owner=owner,
    )
