"""The sideband: the broker's own connection to a call it placed (owns `websockets`).

`WebSocketConnector` opens `wss://…/realtime?call_id=…` with the tenant's server key,
the URL derived from the tenant's UPSTREAM_URL (http → ws, https → wss). In dev mode
and in-process tests the fake upstream is an ASGI app with no socket, so
`InProcessConnector` talks to the fake's call registry directly; both give the
controller the same thing: JSON text in, JSON events out, None when the call ended.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from service.config.settings import TenantSettings
from service.errors import UpstreamUnavailable
from service.fake.calls import FakeCalls
from service.redact import Secret

# Sideband events are small JSON; anything larger than this is not an event we read.
MAX_EVENT_BYTES = 4 * 1024 * 1024


class SidebandConnection(Protocol):
    async def recv(self) -> str | None:
        """The next event as JSON text; None once the call or the connection ended."""
        ...

    async def send(self, event: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


class SidebandConnector(Protocol):
    async def connect(self, tenant: TenantSettings, call_id: str) -> SidebandConnection:
        """Raises UpstreamUnavailable when the call cannot be joined."""
        ...


def sideband_url(upstream_url: str, call_id: str) -> str:
    base = upstream_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return f"{base}/realtime?call_id={quote(call_id, safe='')}"


class _WebSocketConnection:
    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket

    async def recv(self) -> str | None:
        try:
            message = await self._socket.recv()
        except ConnectionClosed:
            return None
        return message if isinstance(message, str) else message.decode("utf-8", "replace")

    async def send(self, event: dict[str, Any]) -> None:
        try:
            await self._socket.send(json.dumps(event))
        except ConnectionClosed:
            # The call ended while we spoke; the reader sees the close next.
            return

    async def close(self) -> None:
        await self._socket.close()


class WebSocketConnector:
    """Real WebSocket sidebands. `keys` maps a tenant id to its server key."""

    def __init__(self, keys: Mapping[str, Secret | None], *, open_timeout: float = 5.0) -> None:
        self._keys = dict(keys)
        self._open_timeout = open_timeout

    def __repr__(self) -> str:
        return f"WebSocketConnector(tenants={sorted(self._keys)!r})"

    async def connect(self, tenant: TenantSettings, call_id: str) -> SidebandConnection:
        key = self._keys.get(tenant.id)
        headers = {"Authorization": f"Bearer {key.reveal()}"} if key else {}
        try:
            socket = await connect(
                sideband_url(tenant.upstream_url, call_id),
                additional_headers=headers,
                open_timeout=self._open_timeout,
                max_size=MAX_EVENT_BYTES,
                # The fake and OpenAI both ping; a dead upstream shows within ~40 s.
                ping_interval=20,
                ping_timeout=20,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            # The exception text may hold the URL or headers: only its type is kept.
            raise UpstreamUnavailable(
                f"The call's sideband could not be opened ({type(exc).__name__})."
            ) from None
        return _WebSocketConnection(socket)


class _InProcessConnection:
    def __init__(self, calls: FakeCalls, call_id: str, line: asyncio.Queue[Any]) -> None:
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
    `app.state.realtime_calls` of the fake that tenant's upstream talks to; `other`
    serves the remaining tenants."""

    def __init__(
        self, registries: Mapping[str, FakeCalls], *, other: SidebandConnector | None = None
    ) -> None:
        self._registries = dict(registries)
        self._other = other

    async def connect(self, tenant: TenantSettings, call_id: str) -> SidebandConnection:
        registry = self._registries.get(tenant.id)
        if registry is None and self._other is not None:
            # Tenants whose upstream is a real server (or a fake on a real port).
            return await self._other.connect(tenant, call_id)
        line = registry.open_line(call_id) if registry is not None else None
        if registry is None or line is None:
            raise UpstreamUnavailable("The call's sideband could not be opened.")
        return _InProcessConnection(registry, call_id, line)
