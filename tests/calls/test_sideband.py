"""The real sideband connector against a real WebSocket server on 127.0.0.1: the URL of
each kind of call, and the credential each upstream expects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from service.calls.sideband import WebSocketConnector, sideband_url
from service.config.settings import load_settings
from service.errors import NotFound
from service.redact import Secret

KEY = "sk-sideband-test-0123456789abcdef"


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
