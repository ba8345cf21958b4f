"""Every POST authenticates before it reads a body (issue 29): a caller without a valid
token gets the usual 401 and not one byte of its body is received, let alone parsed; a
body that would be a 400 or a 413 is a 401 without a token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from python_multipart import MultipartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import InvalidToken
from service.web import live, multipart
from service.web.bodies import parse_json_object
from tests.calls.conftest import ADMIN_KEY, POLICY, Harness, close_harness, dev_harness


def empty_parts(count: int) -> bytes:
    """Issue 29's flood: `count` parts, neither headers nor content, in under 64 KiB."""
    return b"--b\r\n\r\n" + b"\r\n--b\r\n\r\n" * (count - 1) + b"\r\n--b--\r\n"


FLOOD = empty_parts(6500)
FLOOD_TYPE = "multipart/form-data; boundary=b"
# Just under the Live limit (256 KiB), and not JSON: a 400 once the caller is known.
LIVE_GARBAGE = b"[" * (256 * 1024 - 1)
MINT_GARBAGE = b"{nope"
# Over the 64 KiB limit: a 413 once the caller is known.
HUGE = b'{"session": {"instructions": "' + b"a" * 70_000 + b'"}}'


def reader(h: Harness) -> str:
    return f"Bearer {h.token()}"


def admin(h: Harness) -> str:
    return f"Bearer {ADMIN_KEY}"


@dataclass(frozen=True)
class Post:
    path: str
    content_type: str
    body: bytes
    # Who gets past authentication, and what the body is then.
    known: Callable[[Harness], str]
    status: int


JSON = "application/json"
POSTS = {
    "mint ga": Post("/v1/realtime/client_secrets", JSON, MINT_GARBAGE, reader, 400),
    "mint beta": Post("/v1/realtime/sessions", JSON, MINT_GARBAGE, reader, 400),
    "mint transcription": Post(
        "/v1/realtime/transcription_sessions", JSON, MINT_GARBAGE, reader, 400
    ),
    "mint translation": Post(
        "/v1/realtime/translations/client_secrets", JSON, MINT_GARBAGE, reader, 400
    ),
    "mint too large": Post("/v1/realtime/client_secrets", JSON, HUGE, reader, 413),
    "call multipart flood": Post("/v1/realtime/calls", FLOOD_TYPE, FLOOD, reader, 400),
    "call sdp": Post("/v1/realtime/calls", "application/sdp", b"hello", reader, 400),
    "call too large": Post("/v1/realtime/calls", "application/sdp", HUGE, reader, 413),
    "live 256 KiB": Post("/v1/live/sessions", JSON, LIVE_GARBAGE, reader, 400),
    "vector store": Post("/v1/vector_stores", JSON, MINT_GARBAGE, reader, 400),
    "user role": Post("/v1/organization/users/alice", JSON, MINT_GARBAGE, admin, 400),
}


class BodyWatch:
    """The app, counting the body bytes it receives from the client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.received = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
            return message

        await self.app(scope, watched, send)


@dataclass
class Broker:
    harness: Harness
    watch: BodyWatch
    client: httpx.AsyncClient
    parsed: list[str]

    async def post(self, post: Post, authorization: str | None) -> httpx.Response:
        headers = {"Content-Type": post.content_type}
        if authorization is not None:
            headers["Authorization"] = authorization
        return await self.client.post(post.path, content=post.body, headers=headers)


@pytest.fixture
async def broker(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Broker]:
    parsed: list[str] = []

    class CountedParser(MultipartParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            parsed.append("multipart")
            super().__init__(*args, **kwargs)

    def counted_json(raw: bytes, *, empty: object = None) -> dict[str, Any]:
        parsed.append("live json")
        return parse_json_object(raw, empty=empty)

    monkeypatch.setattr(multipart, "MultipartParser", CountedParser)
    monkeypatch.setattr(live, "parse_json_object", counted_json)
    h = dev_harness(POLICY)
    watch = BodyWatch(h.app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=watch), base_url="http://b"
    ) as client:
        yield Broker(h, watch, client, parsed)
    await close_harness(h)


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-jwt", "Basic YTpi"])
@pytest.mark.parametrize("name", sorted(POSTS))
async def test_no_valid_token_is_a_401_before_any_of_the_body(
    broker: Broker, name: str, authorization: str | None
) -> None:
    post = POSTS[name]
    response = await broker.post(post, authorization)
    assert response.status_code == 401
    assert response.json() == InvalidToken().body()
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert broker.watch.received == 0
    assert broker.parsed == []


@pytest.mark.parametrize("name", sorted(POSTS))
async def test_with_a_valid_token_the_same_body_is_refused_for_what_it_is(
    broker: Broker, name: str
) -> None:
    post = POSTS[name]
    response = await broker.post(post, post.known(broker.harness))
    assert response.status_code == post.status, response.text
    # A 413 may come from the declared length alone; a 400 is what the body said.
    assert post.status == 413 or broker.watch.received > 0


async def test_the_flood_is_parsed_only_for_a_known_caller_and_stops_at_the_part_cap(
    broker: Broker,
) -> None:
    post = POSTS["call multipart flood"]
    anonymous = await broker.post(post, None)
    assert (anonymous.status_code, broker.parsed) == (401, [])
    known = await broker.post(post, reader(broker.harness))
    error = known.json()["error"]
    assert (known.status_code, error["code"]) == (400, "invalid_value")
    assert error["message"] == f"The multipart body has more than {multipart.MAX_PARTS} parts."
    assert broker.parsed == ["multipart"]
    assert broker.harness.fake.calls == {}


async def test_the_live_body_is_parsed_only_for_a_known_caller(broker: Broker) -> None:
    post = POSTS["live 256 KiB"]
    assert (await broker.post(post, None)).status_code == 401
    assert broker.parsed == []
    known = await broker.post(post, reader(broker.harness))
    assert (known.status_code, known.json()["error"]["code"]) == (400, "invalid_json")
    assert broker.parsed == ["live json"]


async def test_a_call_offer_part_over_its_cap_is_a_413_naming_it(broker: Broker) -> None:
    files = {"sdp": (None, b"v=0\r\nm=audio 9 RTP/AVP 0\r\n" + b"a=x\r\n" * 7000)}
    response = await broker.harness.client.post(
        "/v1/realtime/calls", files=files, headers={"Authorization": reader(broker.harness)}
    )
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["param"]) == (
        413,
        "request_too_large",
        "sdp",
    )
    assert broker.harness.fake.calls == {}


async def test_a_call_offer_with_more_parts_than_the_cap_is_a_400(broker: Broker) -> None:
    offer = b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    files = [("sdp", (None, offer, "application/sdp"))] + [
        ("x", (None, b"")) for _ in range(multipart.MAX_PARTS)
    ]
    response = await broker.harness.client.post(
        "/v1/realtime/calls", files=files, headers={"Authorization": reader(broker.harness)}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_value")
    # One part fewer is a call.
    response = await broker.harness.client.post(
        "/v1/realtime/calls",
        files=files[: multipart.MAX_PARTS],
        headers={"Authorization": reader(broker.harness)},
    )
    assert response.status_code == 201, response.text
