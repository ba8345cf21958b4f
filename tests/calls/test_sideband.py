"""The real sideband connector against a real WebSocket server on 127.0.0.1: the URL of
each kind of call, and the credential each upstream expects."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from service.calls.sideband import Keepalive, WebSocketConnector, sideband_url
from service.config.settings import load_settings
from service.errors import NotFound
from service.redact import Secret
from tests.freezing_proxy import FreezingProxy

KEY = "test-sideband-test-0123456789abcdef"


def test_the_url_of_each_kind() -> None:
    assert (
        sideband_url("https://api.openai.com/v1", "rtc_1")
        == "wss://api.openai.com/v1/realtime?call_id=rtc_1"
    )
    assert (
        sideband_url("https://acme.openai.azure.com/openai/v1/", "live_1", "live")
        == "wss://acme.openai.azure.com/openai/v1/live/sessions/live_1/attach"
    )
    assert sideband_url("http://127.0.0.1:9/v1", "a/b", "live").endswith(
        "/live/sessions/a%2Fb/attach"
    )


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[Request]]]:
    seen: list[Request] = []

    def check(connection: ServerConnection, request: Request) -> Response | None:
        seen.append(request)
        if "gone" in request.path:
            return connection.respond(404, "over\n")
        return None

    async def handler(connection: ServerConnection) -> None:
        await connection.send(
            json.dumps({"type": "session.usage.updated", "usage": {"seconds": 1}})
        )
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, process_request=check) as running:
        port = next(iter(running.sockets)).getsockname()[1]  # websockets 13: an Iterable
        yield f"http://127.0.0.1:{port}/openai/v1", seen


@pytest.mark.parametrize(
    ("upstream", "header", "value"),
    [("openai", "authorization", f"Bearer {KEY}"), ("azure", "api-key", KEY)],
)
async def test_a_live_sideband_attaches_with_the_upstreams_credential(
    server: tuple[str, list[Request]], upstream: str, header: str, value: str
) -> None:
    url, seen = server
    settings = load_settings(
        {
            "BROKER_UPSTREAM": upstream,
            "BROKER_UPSTREAM_URL": url,
            "BROKER_UPSTREAM_API_KEY": KEY,
            "BROKER_JWT_SECRET": "test-secret-0123456789-abcdefghijklmnop",
        }
    )
    tenant = settings.tenants[0]
    connector = WebSocketConnector({tenant.id: Secret(KEY)})
    connection = await connector.connect(tenant, "live_1", "live")
    assert json.loads(await connection.recv() or "{}")["type"] == "session.usage.updated"
    await connection.close()
    [request] = seen
    assert request.path == "/openai/v1/live/sessions/live_1/attach"
    headers: Headers = request.headers
    assert headers[header] == value
    other = "api-key" if header == "authorization" else "authorization"
    assert other not in headers
    with pytest.raises(NotFound):
        await connector.connect(tenant, "gone", "live")
    assert KEY not in repr(connector)


async def test_keepalive_drops_a_sideband_whose_path_froze_and_no_other(
    server: tuple[str, list[Request]],
) -> None:
    """Behind a proxy that freezes open connections (nothing forwarded, nothing closed):
    a frozen sideband is dropped within three rounds, its reader sees the end at once;
    a healthy one is never dropped, and is pinged only when it has said nothing."""
    url, _ = server
    port = int(url.split(":")[2].split("/")[0])
    proxy = FreezingProxy(port).start()
    try:
        tenant = load_settings(
            {
                "BROKER_UPSTREAM_URL": f"http://127.0.0.1:{proxy.port}/openai/v1",
                "BROKER_UPSTREAM_API_KEY": KEY,
                "BROKER_JWT_SECRET": "test-secret-0123456789-abcdefghijklmnop",
            }
        ).tenants[0]
        direct = dataclasses.replace(tenant, upstream_url=url)
        keepalive = Keepalive()
        connector = WebSocketConnector({tenant.id: Secret(KEY)}, keepalive=keepalive)
        frozen = await connector.connect(tenant, "rtc_1")
        healthy = await connector.connect(direct, "rtc_2")
        for sideband in (frozen, healthy):
            assert json.loads(await sideband.recv() or "{}")["type"] == "session.usage.updated"

        rounds = []
        for _ in range(4):  # both spoke: quiet since, so pinged every other round
            rounds.append(await keepalive.step(1.0))
            await asyncio.sleep(0.05)
        assert rounds == [(0, 0), (2, 0), (0, 0), (2, 0)]

        assert proxy.freeze() == 1
        dropped = []
        for _ in range(3):
            await asyncio.sleep(0.05)
            dropped.append((await keepalive.step(1.0))[1])
        assert sum(dropped) == 1
        async with asyncio.timeout(1):
            assert await frozen.recv() is None
        assert len(keepalive) == 1  # the healthy one, kept under watch
        await healthy.close()
        await frozen.close()
        assert len(keepalive) == 0
    finally:
        proxy.stop()


class Quiet:
    """A sideband that never speaks and answers every ping (for `Keepalive.step`)."""

    def __init__(self) -> None:
        self.looks = 0

    def answered(self) -> bool | None:
        self.looks += 1
        return None

    async def ping(self) -> int:
        return 1


async def test_keepalive_looks_at_each_sideband_once_per_turn_a_share_per_step() -> None:
    keepalive, sidebands = Keepalive(), [Quiet() for _ in range(10)]
    for sideband in sidebands:
        keepalive.add(sideband)  # type: ignore[arg-type]

    steps = [await keepalive.step(0.25) for _ in range(4)]  # a turn: 3 + 3 + 3 + 1
    assert [pinged for pinged, _ in steps] == [3, 3, 3, 1]
    assert [s.looks for s in sidebands] == [1] * 10

    keepalive.discard(sidebands[0])  # type: ignore[arg-type]
    assert (await keepalive.step(1.0))[0] == 9  # the next turn: those open now


async def test_a_keepalive_turn_takes_one_ping_interval_however_few_sidebands() -> None:
    keepalive, quiet = Keepalive(), Quiet()
    keepalive.add(quiet)  # type: ignore[arg-type]

    pinged = [(await keepalive.step(0.4))[0] for _ in range(7)]  # ticks of 0.4 s, pings 1 s

    assert pinged == [1, 0, 0, 1, 0, 0, 1]
