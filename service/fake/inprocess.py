"""The fake upstream in the broker's own process: dev mode's wiring, and the tests'.

`InProcessFakes` builds one fake app per tenant whose `UPSTREAM` is `fake` (and, when asked,
per tenant whose `UPSTREAM` is `gemini`: `token-broker dev --upstream gemini`), an HTTP
transport into each (no socket), and a sideband connector that joins the fake's calls
directly. Only `service.dev` uses it: production code never imports the fake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from service.calls.model import CallKind
from service.calls.sideband import SidebandConnection, SidebandConnector
from service.clock import Clock
from service.config.settings import TenantSettings
from service.errors import NotFound, UpstreamUnavailable
from service.fake.app import create_fake_app
from service.fake.calls import FakeCalls
from service.fake.events import Sidebands
from service.fake.gemini import FakeGemini
from service.fake.live import FakeLiveSessions


class InProcessFakes:
    """One fake upstream per fake tenant: `transports` for the upstream clients, `calls`
    and `live` (the fakes' Realtime call and GPT-Live session registries, by tenant) for
    tests that play the browser. Each fake requires its tenant's `upstream_api_key` when
    it has one (as OpenAI requires the key), and any key otherwise. With `gemini`, each
    `UPSTREAM=gemini` tenant gets a fake too (its key required in `x-goog-api-key`);
    `gemini_fakes` holds their fake Geminis by tenant."""

    def __init__(
        self, tenants: Iterable[TenantSettings], *, clock: Clock, gemini: bool = False
    ) -> None:
        self.transports: dict[str, httpx.AsyncBaseTransport] = {}
        self.calls: dict[str, FakeCalls] = {}
        self.live: dict[str, FakeLiveSessions] = {}
        self.apps: dict[str, Starlette] = {}
        self.gemini_fakes: dict[str, FakeGemini] = {}
        for tenant in tenants:
            if tenant.upstream == "gemini" and gemini:
                key = tenant.upstream_api_key
                app = create_fake_app(clock=clock, api_key=None if key is None else key.reveal())
                self.transports[tenant.id] = httpx.ASGITransport(app=app)
                self.gemini_fakes[tenant.id] = app.state.gemini
                continue
            if tenant.upstream != "fake":
                continue
            key = tenant.upstream_api_key
            app = create_fake_app(clock=clock, api_key=None if key is None else key.reveal())
            self.apps[tenant.id] = app
            self.transports[tenant.id] = httpx.ASGITransport(app=app)
            self.calls[tenant.id] = app.state.realtime_calls
            self.live[tenant.id] = app.state.live_sessions

    def routes(self) -> list[BaseRoute]:
        """The first fake's API under /dev/fake, for a dev page that uses a minted secret
        directly, as it would against OpenAI (dev mode only). It checks its callers as
        OpenAI does: the key for everything, a secret it minted for placing a call."""
        first = next(iter(self.apps.values()), None)
        return [] if first is None else [Mount("/dev/fake", app=first)]

    def gemini_routes(self) -> list[BaseRoute]:
        """The first fake Gemini's Live WebSocket, at Google's own paths, so that a client
        given the broker's URL as its base URL reaches it with a token the broker minted
        (`token-broker dev --upstream gemini` has one Gemini tenant)."""
        first = next(iter(self.gemini_fakes.values()), None)
        return [] if first is None else first.live_routes()

    def connector(self, other: SidebandConnector) -> SidebandConnector:
        return InProcessConnector(self.calls, live=self.live, other=other)


class _InProcessConnection:
    def __init__(self, calls: Sidebands, call_id: str, line: asyncio.Queue[Any]) -> None:
        self._calls, self._call_id, self._line = calls, call_id, line
        self._closed = asyncio.Event()

    async def recv(self) -> str | None:
        if self._closed.is_set():
            return None
        getter = asyncio.ensure_future(self._line.get())
        closer = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait({getter, closer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            getter.cancel()
            closer.cancel()
        if getter not in done:
            return None
        event = getter.result()
        return None if event is None else json.dumps(event)

    async def send(self, event: dict[str, Any]) -> None:
        # Through JSON, as on a socket: the fake must not share objects with the broker.
        self._calls.receive(self._call_id, json.loads(json.dumps(event)), sideband=True)

    async def close(self) -> None:
        self._closed.set()
        self._calls.close_line(self._call_id, self._line)


class InProcessConnector:
    """Sidebands to in-process fake upstreams: `registries` maps a tenant id to the
    `app.state.realtime_calls` of the fake that tenant's upstream talks to, `live` to its
    `app.state.live_sessions`; `other` serves the remaining tenants."""

    def __init__(
        self,
        registries: Mapping[str, FakeCalls],
        *,
        live: Mapping[str, FakeLiveSessions] | None = None,
        other: SidebandConnector | None = None,
    ) -> None:
        self._registries: dict[CallKind, dict[str, Sidebands]] = {
            "realtime": dict(registries),
            "live": dict(live or {}),
        }
        self._other = other

    async def connect(
        self, tenant: TenantSettings, call_id: str, kind: CallKind = "realtime"
    ) -> SidebandConnection:
        registry = self._registries[kind].get(tenant.id)
        if registry is None and self._other is not None:
            # Tenants whose upstream is a real server (or a fake on a real port).
            return await self._other.connect(tenant, call_id, kind)
        if registry is None:
            raise UpstreamUnavailable("The call's sideband could not be opened.")
        line = registry.open_line(call_id)
        if line is None:
            raise NotFound("The call is over.")
        return _InProcessConnection(registry, call_id, line)
