"""The relay on a real server (uvicorn, as `token-broker serve` runs it): the ends of a
relay are normal ends, never logged above info."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from service.auth.tokens import sign_dev_token
from service.dev import create_dev_app
from service.errors import StoreUnavailable
from service.relay.hub import Relay, RelayHub
from tests.eventually import eventually, settle
from tests.web.conftest import SECRET, make_settings

ADMIN_KEY = "admin-key-0123456789abcdef"
OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
POLICY = {"roles": {"reader": {"client_channel": "relay", "limits": ["100/minute"]}}}


class Served:
    """The broker on uvicorn, on a free local port."""

    def __init__(self, app: Starlette, server: uvicorn.Server, port: int) -> None:
        self.app, self.server, self.port = app, server, port
        self.jwt = sign_dev_token(SECRET, sub="alice", role="reader", now=time.time())

    async def place(self) -> str:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as client:
            placed = await client.post(
                "/v1/realtime/calls",
                content=OFFER,
                headers={"Authorization": f"Bearer {self.jwt}", "Content-Type": "application/sdp"},
            )
        assert placed.status_code == 201, placed.text
        return placed.headers["location"].rsplit("/", 1)[1]

    def relay(self, call_id: str) -> Any:
        return connect(
            f"ws://127.0.0.1:{self.port}/v1/realtime?call_id={call_id}",
            subprotocols=["realtime", f"openai-insecure-api-key.{self.jwt}"],  # type: ignore[list-item]
        )

    async def hang_up(self, call_id: str) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as client:
            hung = await client.post(
                f"/v1/realtime/calls/{call_id}/hangup",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
        assert hung.status_code == 200, hung.text

    async def wait(self, check: Callable[[], object], what: str) -> None:
        await eventually(check, seconds=3, what=what)

    async def handlers_done(self) -> None:
        """Every request and relay the server took has returned from the app (a relay's
        handler returns after its detach and its own close), and what they left queued
        has run: whatever they were going to log, they have."""
        await eventually(
            lambda: not self.server.server_state.tasks, seconds=5, what="the handlers' return"
        )
        await settle()


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    settings = make_settings(
        {"BROKER_POLICY": json.dumps(POLICY), "BROKER_ADMIN_API_KEY": ADMIN_KEY}
    )
    app = create_dev_app(settings)
    hub: RelayHub = app.state.relays
    detach = hub.detach

    async def detach_over_the_network(relay: Relay) -> None:
        # Against Redis, detaching takes round trips: the browser's connection is gone
        # by the time the relay closes its side, as in production.
        await asyncio.sleep(0.1)
        await detach(relay)

    monkeypatch.setattr(hub, "detach", detach_over_the_network)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started, seconds=10, what="uvicorn's start")
        yield Served(app, server, sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()


def above_info(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno > logging.INFO]  # fmt: skip


async def relay_gone(served: Served, call_id: str) -> None:
    held = served.app.state.calls._held[("default", call_id)]
    await served.wait(lambda: held.relay_replica is None, "the relay's detach")


async def test_a_browser_that_closes_its_relay_is_a_normal_end(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    call_id = await served.place()
    async with served.relay(call_id) as ws:
        await ws.send(json.dumps({"type": "response.cancel"}))
        await ws.recv()
    assert ws.protocol.close_code == 1000  # on the connection itself only from websockets 13.1
    await relay_gone(served, call_id)
    await served.handlers_done()

    assert above_info(caplog) == []


async def test_a_browser_whose_connection_drops_is_a_normal_end(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    call_id = await served.place()
    async with served.relay(call_id) as ws:
        ws_connection: ClientConnection = ws
        ws_connection.transport.abort()  # no closing handshake: a tab killed, a network gone
    await relay_gone(served, call_id)
    await served.handlers_done()

    assert above_info(caplog) == []


async def test_a_call_that_ends_closes_its_relay_as_a_normal_end(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    call_id = await served.place()
    async with served.relay(call_id) as ws:
        held = served.app.state.calls._held[("default", call_id)]
        await served.wait(lambda: held.relay_replica is not None, "the relay's attach")
        await served.hang_up(call_id)
        async for _ in ws:  # until the relay closes
            pass
    assert ws.protocol.close_code == 1000  # on the connection itself only from websockets 13.1
    await served.handlers_done()

    assert above_info(caplog) == []


async def test_a_relay_whose_attach_fails_closes_1011_and_frees_the_call_for_another(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub: RelayHub = served.app.state.relays
    attach, failures = hub.attach, [StoreUnavailable("redis down")]

    async def attach_once_down(relay: Relay) -> None:
        if failures:
            raise failures.pop()
        await attach(relay)

    monkeypatch.setattr(hub, "attach", attach_once_down)
    call_id = await served.place()
    async with served.relay(call_id) as ws:
        # Accepted before the attach: the refusal is a close code the browser can act on.
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert (ws.protocol.close_code, ws.protocol.close_reason) == (1011, "store unavailable")
    assert not failures
    # Its claim was released with its handler's end: the call takes a relay again at once,
    # not after the slot lapses (CLAIM_SECONDS).
    await served.handlers_done()
    held = served.app.state.calls._held[("default", call_id)]
    async with served.relay(call_id) as ws:
        await served.wait(lambda: held.relay_replica is not None, "the second relay's attach")
        await ws.send(json.dumps({"type": "response.cancel"}))
        await ws.recv()
    assert ws.protocol.close_code == 1000
    await served.handlers_done()


@pytest.mark.parametrize("number", ["NaN", "1e999"])
async def test_an_event_with_a_number_json_cannot_carry_is_refused_not_relayed(
    served: Served, number: str
) -> None:
    """Python's json reads both (1e999 as inf); relayed, the sideband would send them on
    as `NaN` / `Infinity`, which is not JSON."""
    call_id = await served.place()
    async with served.relay(call_id) as ws:
        await ws.send('{"type": "response.cancel", "response_id": "r", "x": ' + number + "}")
        answer = json.loads(await ws.recv())

    assert answer["type"] == "error"
    assert answer["error"]["code"] == "invalid_event"
    await served.handlers_done()
