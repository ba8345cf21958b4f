"""The sideband: the broker's own connection to a call it placed (owns `websockets`).

`WebSocketConnector` opens `wss://…/realtime?call_id=…` (a Realtime call) or
`wss://…/live/sessions/{id}/attach` (a GPT-Live session) with the tenant's server key
(`api-key` for Azure, a bearer token otherwise), the URL derived from the tenant's
UPSTREAM_URL (http → ws, https → wss). Dev mode's
in-process fake has no socket to dial; its connector (service.fake.inprocess) gives the
controller the same thing: JSON text in, JSON events out, None when the call ended.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from service.calls.model import CallKind
from service.config.settings import TenantSettings
from service.errors import NotFound, UpstreamUnavailable
from service.redact import Secret

# Sideband events are small JSON; anything larger than this is not an event we read.
MAX_EVENT_BYTES = 4 * 1024 * 1024
# websockets >= 15 looks proxies up in the environment at every connect; the upstream URL
# is the server's own configuration, never proxied behind its back.
_NO_PROXY: dict[str, Any] = (
    {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}
)


class SidebandConnection(Protocol):
    async def recv(self) -> str | None:
        """The next event as JSON text; None once the call or the connection ended."""
        ...

    async def send(self, event: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


class SidebandConnector(Protocol):
    async def connect(
        self, tenant: TenantSettings, call_id: str, kind: CallKind = "realtime"
    ) -> SidebandConnection:
        """Raises NotFound when upstream has no such call (it is over), and
        UpstreamUnavailable when it cannot be joined now."""
        ...


def sideband_url(upstream_url: str, call_id: str, kind: CallKind = "realtime") -> str:
    base = upstream_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    if kind == "live":
        return f"{base}/live/sessions/{quote(call_id, safe='')}/attach"
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

    async def connect(
        self, tenant: TenantSettings, call_id: str, kind: CallKind = "realtime"
    ) -> SidebandConnection:
        key = self._keys.get(tenant.id)
        headers: dict[str, str] = {}
        if key is not None and tenant.upstream == "azure":
            headers["api-key"] = key.reveal()
        elif key is not None:
            headers["Authorization"] = f"Bearer {key.reveal()}"
        try:
            socket = await connect(
                sideband_url(tenant.upstream_url, call_id, kind),
                additional_headers=headers,
                open_timeout=self._open_timeout,
                max_size=MAX_EVENT_BYTES,
                # Thousands of sidebands sit idle for an hour (bench/calls.py): no
                # per-connection compression contexts, and no per-connection keepalive
                # task (upstream pings us, and websockets answers without one).
                compression=None,
                ping_interval=None,
                **_NO_PROXY,
            )
        except InvalidStatus as exc:
            if exc.response.status_code in (404, 410):
                raise NotFound("The call is over.") from None
            raise UpstreamUnavailable(
                f"The call's sideband was refused (HTTP {exc.response.status_code})."
            ) from None
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            # The exception text may hold the URL or headers: only its type is kept.
            raise UpstreamUnavailable(
                f"The call's sideband could not be opened ({type(exc).__name__})."
            ) from None
        return _WebSocketConnection(socket)
