"""The sideband: the broker's own connection to a call it placed (owns `websockets`).

`WebSocketConnector` opens `wss://…/realtime?call_id=…` (a Realtime call) or
`wss://…/live/sessions/{id}/attach` (a GPT-Live session) with the tenant's server key
(`api-key` for Azure, a bearer token otherwise), the URL derived from the tenant's
UPSTREAM_URL (http → ws, https → wss). Dev mode's
in-process fake has no socket to dial; its connector (service.fake.inprocess) gives the
controller the same thing: JSON text in, JSON events out, None when the call ended.

`Keepalive` notices a sideband whose network path died silently (a NAT or load balancer
forgot it: no FIN, no RST, nothing arrives and nothing sent gets through), which TCP
alone notices only after hours. The call scheduler drives it (no task per call:
thousands sit idle for an hour), looking at every sideband once per `ping_seconds`, a
share of them at each tick, their pings spread over half a tick (10,000 pings at once,
and their 10,000 answers, held reverts back by up to ~100 ms): a sideband that said
nothing since it was last looked at is pinged; one whose ping is still unanswered at the
next look is dropped (the TCP connection aborted), and its reader joins it again, or the
call is ended. A dead path is noticed within three looks.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from service.calls.model import CallKind
from service.config.settings import TenantSettings
from service.errors import NotFound, UpstreamUnavailable
from service.redact import Secret

# Sideband events are small JSON; anything larger than this is not an event we read.
MAX_EVENT_BYTES = 4 * 1024 * 1024
# Keepalive pings this many sidebands, then lets the event loop serve the others.
PING_CHUNK = 25
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


class Keepalive:
    """The keepalive of a replica's WebSocket sidebands (the module docstring): the
    connector registers each sideband it opens, each leaves as it closes, and the call
    scheduler calls `step` at every tick."""

    def __init__(self) -> None:
        self._sidebands: set[_WebSocketConnection] = set()
        # The sidebands of the current turn (each looked at once), how far it got, and
        # how much of the ping interval it took so far (a turn takes one at least).
        self._turn: list[_WebSocketConnection] = []
        self._done = 0
        self._elapsed = 1.0

    def __len__(self) -> int:
        return len(self._sidebands)

    def add(self, sideband: _WebSocketConnection) -> None:
        self._sidebands.add(sideband)

    def discard(self, sideband: _WebSocketConnection) -> None:
        self._sidebands.discard(sideband)

    async def step(self, share: float, *, spread: float = 0.0) -> tuple[int, int]:
        """Look at the next `share` of the sidebands (`share`: the tick over the ping
        interval), their pings spread over `spread` seconds. A turn looks at every
        sideband open when it started, once, and takes one interval at least. (Pinged,
        dropped)."""
        share = min(1.0, share)
        if self._done >= len(self._turn):
            if self._elapsed < 1.0 - 1e-9:  # this turn's interval is not over
                self._elapsed += share
                return 0, 0
            self._turn, self._done, self._elapsed = list(self._sidebands), 0, 0.0
        self._elapsed += share
        count = math.ceil(len(self._turn) * share)
        looked = self._turn[self._done : self._done + count]
        self._done += count
        pinged = dropped = 0
        # Their answers come back as spread: a thousand at once held reverts back.
        pause = spread / max(1, math.ceil(len(looked) / PING_CHUNK))
        for start in range(0, len(looked), PING_CHUNK):
            for sideband in looked[start : start + PING_CHUNK]:
                if sideband not in self._sidebands:
                    continue  # closed since the turn started
                alive = sideband.answered()
                if alive is None:
                    pinged += await sideband.ping()
                elif not alive:
                    self._sidebands.discard(sideband)
                    dropped += 1
            await asyncio.sleep(pause)
        return pinged, dropped


class _WebSocketConnection:
    __slots__ = ("_heard", "_keepalive", "_pong", "_socket")

    def __init__(self, socket: ClientConnection, keepalive: Keepalive | None = None) -> None:
        self._socket = socket
        self._keepalive = keepalive
        # Something arrived since the last keepalive round; the last ping's answer.
        self._heard = True
        self._pong: asyncio.Future[float] | None = None

    async def recv(self) -> str | None:
        try:
            message = await self._socket.recv()
        except ConnectionClosed:
            return None
        self._heard = True
        return message if isinstance(message, str) else message.decode("utf-8", "replace")

    def answered(self) -> bool | None:
        """The keepalive's look at this sideband: True when it spoke since the previous
        round, or answered its ping; False when that ping is unanswered (its path is
        dead: the connection is aborted, its reader sees the end); None when it is due a
        ping."""
        pong, self._pong = self._pong, None
        if pong is not None and not pong.done():
            self._socket.transport.abort()
            return False
        heard, self._heard = self._heard, False
        return True if heard or pong is not None else None

    async def ping(self) -> int:
        """Send a keepalive ping (answered by the next round, or the path is dead); 1 if
        sent, 0 if the connection is not open."""
        if self._socket.state is not State.OPEN:
            return 0
        try:
            # A future (websockets' pong waiter), not a task: nothing runs per sideband.
            self._pong = asyncio.ensure_future(await self._socket.ping())
        except ConnectionClosed:
            return 0
        return 1

    async def send(self, event: dict[str, Any]) -> None:
        try:
            await self._socket.send(json.dumps(event, allow_nan=False))
        except ConnectionClosed:
            # The call ended while we spoke; the reader sees the close next.
            return

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.discard(self)
        await self._socket.close()


class WebSocketConnector:
    """Real WebSocket sidebands. `keys` maps a tenant id to its server key; `keepalive`,
    when given, keeps every sideband opened here under watch."""

    def __init__(
        self,
        keys: Mapping[str, Secret | None],
        *,
        open_timeout: float = 5.0,
        keepalive: Keepalive | None = None,
    ) -> None:
        self._keys = dict(keys)
        self._open_timeout = open_timeout
        self._keepalive = keepalive

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
                # task (upstream pings us, and websockets answers without one; ours is
                # `Keepalive`, one for them all).
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
        connection = _WebSocketConnection(socket, self._keepalive)
        if self._keepalive is not None:
            self._keepalive.add(connection)
        return connection
