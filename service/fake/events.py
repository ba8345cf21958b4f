"""What the fake's Realtime calls and Live sessions share: events with OpenAI's ids, the
bounded queues of their sideband listeners, and reading a sideband WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from typing import Any, Protocol

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

Event = dict[str, Any]
Line = asyncio.Queue[Event | None]
# Bounded so that a sideband that stopped reading cannot grow the fake without limit.
QUEUE_SIZE = 1024


def new_event(kind: str, **fields: Any) -> Event:
    return {"type": kind, "event_id": "event_" + secrets.token_hex(8), **fields}


def new_line() -> Line:
    return asyncio.Queue(QUEUE_SIZE)


def put(line: Line, event: Event | None) -> None:
    with contextlib.suppress(asyncio.QueueFull):
        line.put_nowait(event)


def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    """Deep-merge `update` into `into` (objects merged, everything else replaced)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


async def next_event(line: Line, reader: asyncio.Task[None]) -> Event | None:
    """The next event for the broker, or None when the call ended or the broker left."""
    getter = asyncio.ensure_future(line.get())
    done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    return None


async def read_sideband(websocket: WebSocket, receive: Callable[[Event], None]) -> None:
    """Hand each JSON object the broker sends to `receive`, until it leaves."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            text = await websocket.receive_text()
            with contextlib.suppress(ValueError):
                event = json.loads(text)
                if isinstance(event, dict):
                    receive(event)


async def serve_sideband(
    websocket: WebSocket,
    line: Line,
    receive: Callable[[Event], None],
    close_line: Callable[[], None],
) -> None:
    """An accepted sideband: events from `line` out, the broker's events to `receive`."""
    reader = asyncio.create_task(read_sideband(websocket, receive))
    try:
        # The broker may vanish at any time (a replica killed): not an error here.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while (event := await next_event(line, reader)) is not None:
                await websocket.send_text(json.dumps(event))
            await websocket.close(code=1000)
    finally:
        reader.cancel()
        close_line()


class Sidebands(Protocol):
    """A fake registry's sideband side (FakeCalls, FakeLiveSessions)."""

    def open_line(self, call_id: str) -> Line | None: ...
    def close_line(self, call_id: str, line: Line) -> None: ...
    def receive(self, call_id: str, event: Event, *, sideband: bool = False) -> None: ...


async def attach_sideband(
    websocket: WebSocket,
    registry: Sidebands,
    call_id: str,
    authorized: Callable[[str, str], bool],
) -> None:
    """A sideband WebSocket to `call_id`: the key checked (a bearer token, or Azure's
    `api-key`), refused with HTTP 404 when the call is over, as OpenAI refuses it (the
    broker then knows it is), else served until either side leaves."""
    if not authorized(
        websocket.headers.get("authorization", ""), websocket.headers.get("api-key", "")
    ):
        await websocket.close(code=1008)
        return
    line = registry.open_line(call_id)
    if line is None:
        await websocket.send_denial_response(Response(status_code=404))
        return
    await websocket.accept()
    await serve_sideband(
        websocket,
        line,
        lambda event: registry.receive(call_id, event, sideband=True),
        lambda: registry.close_line(call_id, line),
    )
