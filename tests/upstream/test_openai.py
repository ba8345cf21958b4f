"""OpenAIUpstream: headers, retries, the deadline and the error mapping (README "Using it from
a browser app")."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from service.errors import (
    BrokerError,
    InvalidRequest,
    NotFound,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from service.fake.app import create_fake_app
from service.redact import Secret
from service.upstream.base import Upstream
from service.upstream.http import MISCONFIGURED
from service.upstream.openai import MAX_CACHED_URLS, OpenAIUpstream
from tests.fake.conftest import FAKE_KEY

KEY = "test-test-SECRET-0123456789abcdef"
BASE = "https://upstream.test/v1"
PATH = "/realtime/client_secrets"
SAFETY_ID = "5f2b8c0e9a1d4e7f8a6b3c2d1e0f9a8b"

Step = httpx.Response | Exception | Callable[[httpx.Request], Awaitable[httpx.Response]]


def error_body(message: str, *, param: str | None = None, code: str | None = None) -> Any:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}  # fmt: skip


@asynccontextmanager
async def scripted(
    *steps: Step, **options: Any
) -> AsyncIterator[tuple[OpenAIUpstream, list[httpx.Request]]]:
    """An OpenAIUpstream whose n-th upstream call gets steps[n] (the last one repeats)."""
    calls: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        step = steps[min(len(calls), len(steps)) - 1]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return await step(request)

    options = {"base_url": BASE, "api_key": Secret(KEY), **options}
    upstream = OpenAIUpstream(transport=httpx.MockTransport(handler), **options)
    try:
        yield upstream, calls
    finally:
        await upstream.aclose()


async def mint(upstream: OpenAIUpstream) -> dict[str, Any]:
    return await upstream.create_secret(
        PATH, b'{"session":{"type":"realtime"}}', safety_identifier=SAFETY_ID
    )


def ok(body: Any = None) -> httpx.Response:
    return httpx.Response(200, json={"value": "ek_abc", "expires_at": 1} if body is None else body)


def assert_no_secret(exc: BaseException) -> None:
    """Neither the error nor anything it was raised from shows the key."""
    seen: BaseException | None = exc
    while seen is not None:
        text = f"{seen} {seen!r}"
        if isinstance(seen, BrokerError):
            text += json.dumps(seen.body()) + json.dumps(seen.headers)
        assert KEY not in text
        assert "0123456789abcdef" not in text
        seen = seen.__cause__ or seen.__context__


async def test_sends_the_request_with_bearer_key_and_safety_identifier() -> None:
    async with scripted(ok()) as (upstream, calls):
        result = await mint(upstream)

    assert result == {"value": "ek_abc", "expires_at": 1}
    (request,) = calls
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}{PATH}"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert "api-key" not in request.headers
    assert request.headers["openai-safety-identifier"] == SAFETY_ID
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"session": {"type": "realtime"}}


async def test_azure_sends_the_key_as_api_key() -> None:
    base = "https://acme.openai.azure.com/openai/v1"
    async with scripted(ok(), flavor="azure", base_url=base) as (upstream, calls):
        await mint(upstream)

    (request,) = calls
    assert request.headers["api-key"] == KEY
    assert "authorization" not in request.headers
    assert str(request.url) == f"{base}{PATH}"


async def test_without_a_key_no_credentials_are_sent() -> None:
    async with scripted(ok(), api_key=None) as (upstream, calls):
        await upstream.request("GET", "/vector_stores", params={"limit": "5"})

    (request,) = calls
    assert "authorization" not in request.headers
    assert "openai-safety-identifier" not in request.headers
    assert request.url.params["limit"] == "5"


async def test_is_an_upstream() -> None:
    async with scripted(ok()) as (upstream, _):
        typed: Upstream = upstream
        assert typed is upstream


@pytest.mark.parametrize(
    ("status", "error"),
    [(502, UpstreamError), (503, UpstreamUnavailable), (504, UpstreamError)],
)
async def test_retries_once_on_gateway_statuses(status: int, error: type[BrokerError]) -> None:
    async with scripted(httpx.Response(status, text="<html>bad gateway</html>")) as (up, calls):
        with pytest.raises(error) as raised:
            await mint(up)

    assert len(calls) == 2
    assert type(raised.value) is error
    assert "html" not in raised.value.message


async def test_a_retry_that_succeeds_returns_the_answer() -> None:
    async with scripted(httpx.Response(503), ok()) as (upstream, calls):
        result = await mint(upstream)

    assert result["value"] == "ek_abc"
    assert len(calls) == 2


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
async def test_connection_failures_are_retried_once_then_503(failure: Exception) -> None:
    async with scripted(failure) as (upstream, calls):
        with pytest.raises(UpstreamUnavailable) as raised:
            await mint(upstream)

    assert len(calls) == 2
    assert raised.value.status == 503
    assert raised.value.code == "upstream_unavailable"


async def test_a_connection_failure_then_success_returns_the_answer() -> None:
    async with scripted(httpx.ConnectError("refused"), ok()) as (upstream, calls):
        assert (await mint(upstream))["value"] == "ek_abc"

    assert len(calls) == 2


@pytest.mark.parametrize(
    ("response", "error", "status"),
    [
        (httpx.Response(400, json=error_body("Bad.")), InvalidRequest, 400),
        (httpx.Response(401, json=error_body("Incorrect API key")), UpstreamError, 502),
        (httpx.Response(403, json=error_body("Forbidden")), UpstreamError, 502),
        (httpx.Response(404, json=error_body("No such store")), NotFound, 404),
        (
            httpx.Response(429, json=error_body("Slow down", code="rate_limit_exceeded")),
            UpstreamUnavailable,
            503,
        ),
        (httpx.Response(500, json=error_body("Oops")), UpstreamError, 502),
        (httpx.Response(409, json=error_body("Conflict")), UpstreamError, 502),
        (httpx.Response(302, headers={"Location": "https://elsewhere.test/"}), UpstreamError, 502),
    ],
)
async def test_other_statuses_are_not_retried(
    response: httpx.Response, error: type[BrokerError], status: int
) -> None:
    async with scripted(response) as (upstream, calls):
        with pytest.raises(error) as raised:
            await mint(upstream)

    assert len(calls) == 1
    assert raised.value.status == status


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_say_the_broker_is_misconfigured(status: int) -> None:
    # OpenAI's 401 echoes part of the key; none of it may reach the caller.
    body = error_body(
        f"Incorrect API key provided: {KEY[:8]}***{KEY[-4:]}.", code="invalid_api_key"
    )
    async with scripted(httpx.Response(status, json=body)) as (upstream, _):
        with pytest.raises(UpstreamError) as raised:
            await mint(upstream)

    assert raised.value.message == MISCONFIGURED
    assert raised.value.code == "upstream_error"
    assert KEY[:8] not in json.dumps(raised.value.body())


async def test_a_400_passes_upstreams_message_param_and_code() -> None:
    body = error_body(
        "Unknown parameter: 'session.temperature'.",
        param="session.temperature",
        code="unknown_parameter",
    )
    async with scripted(httpx.Response(400, json=body)) as (upstream, _):
        with pytest.raises(InvalidRequest) as raised:
            await mint(upstream)

    assert raised.value.message == "Unknown parameter: 'session.temperature'."
    assert raised.value.param == "session.temperature"
    assert raised.value.code == "unknown_parameter"


async def test_a_400_without_an_error_body_gets_a_generic_message() -> None:
    async with scripted(httpx.Response(400, text="nope")) as (upstream, _):
        with pytest.raises(InvalidRequest) as raised:
            await mint(upstream)

    assert raised.value.message == "The upstream refused the request."
    assert (raised.value.param, raised.value.code) == (None, "invalid_value")


async def test_secret_shaped_words_in_upstream_messages_are_masked() -> None:
    body = error_body(f"Key {KEY} cannot mint ek_0123456789abcdef0123456789abcdef here.")
    async with scripted(httpx.Response(400, json=body)) as (upstream, _):
        with pytest.raises(InvalidRequest) as raised:
            await mint(upstream)

    assert raised.value.message == "Key ********** cannot mint ********** here."


async def test_a_404_is_not_found_with_upstreams_message() -> None:
    body = error_body("No vector store found with id 'vs_1'.")
    async with scripted(httpx.Response(404, json=body)) as (upstream, _):
        with pytest.raises(NotFound) as raised:
            await upstream.request("GET", "/vector_stores/vs_1")

    assert raised.value.message == "No vector store found with id 'vs_1'."
    assert raised.value.status == 404


@pytest.mark.parametrize(("header", "expected"), [("2.5", "3"), ("20", "20"), (None, None)])
async def test_upstream_rate_limiting_is_a_503_with_retry_after(
    header: str | None, expected: str | None
) -> None:
    headers = {"Retry-After": header} if header else {}
    response = httpx.Response(429, json=error_body("Rate limit reached"), headers=headers)
    async with scripted(response) as (upstream, _):
        with pytest.raises(UpstreamUnavailable) as raised:
            await mint(upstream)

    assert raised.value.headers.get("Retry-After") == expected
    assert "Rate limit reached" not in raised.value.message


async def test_insufficient_quota_is_a_502() -> None:
    body = error_body("You exceeded your current quota.", code="insufficient_quota")
    async with scripted(httpx.Response(429, json=body)) as (upstream, calls):
        with pytest.raises(UpstreamError) as raised:
            await mint(upstream)

    assert len(calls) == 1
    assert type(raised.value) is UpstreamError
    assert "Retry-After" not in raised.value.headers


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>ok</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, content=b""),
        httpx.Response(201, json={"value": "ek_x"}),
    ],
)
async def test_an_unreadable_success_is_a_502(response: httpx.Response) -> None:
    async with scripted(response) as (upstream, _):
        with pytest.raises(UpstreamError):
            await mint(upstream)


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (httpx.ReadTimeout("read timed out"), UpstreamTimeout),
        (httpx.PoolTimeout("pool timed out"), UpstreamTimeout),
        (httpx.UnsupportedProtocol("no"), UpstreamError),
        (httpx.LocalProtocolError("no"), UpstreamError),
    ],
)
async def test_other_transport_errors_are_translated_and_not_retried(
    failure: Exception, error: type[BrokerError]
) -> None:
    async with scripted(failure) as (upstream, calls):
        with pytest.raises(error):
            await mint(upstream)

    assert len(calls) == 1


async def hang(request: httpx.Request) -> httpx.Response:
    await asyncio.Event().wait()  # an upstream that never answers
    raise AssertionError("unreachable")


async def test_a_slow_upstream_times_out_at_the_deadline() -> None:
    async with scripted(hang, deadline=0.2) as (upstream, calls):
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as raised:
            await mint(upstream)
        elapsed = time.monotonic() - started

    # Cut at the 0.2 s deadline: not failed at once, and not left to the (never) answer.
    assert 0.15 <= elapsed < 1.0
    assert len(calls) == 1
    assert (raised.value.status, raised.value.code) == (504, "upstream_timeout")


async def test_the_retry_runs_inside_the_same_deadline() -> None:
    async def slow_502(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.5)  # half the deadline: enough left for a retry
        return httpx.Response(502)

    async with scripted(slow_502, hang, deadline=1.0) as (upstream, calls):
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await mint(upstream)
        elapsed = time.monotonic() - started

    assert len(calls) == 2
    # The retry ends when the call's 1 s deadline does (a retry with a deadline of its own
    # would end at 1.5 s at the earliest); the margin is for a loaded machine.
    assert elapsed < 1.4


async def test_no_retry_when_too_little_of_the_deadline_remains() -> None:
    async def slow_503(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.8)  # the upstream takes most of the 1 s deadline
        return httpx.Response(503)

    async with scripted(slow_503, deadline=1.0) as (upstream, calls):
        with pytest.raises(UpstreamUnavailable):
            await mint(upstream)

    assert len(calls) == 1


@pytest.mark.parametrize(
    "step",
    [
        httpx.Response(401, json=error_body(f"Incorrect API key provided: {KEY}")),
        httpx.Response(400, json=error_body(f"bad key {KEY}", param=KEY)),
        httpx.Response(503),
        httpx.ConnectError(f"failed for {BASE}"),
        httpx.ReadTimeout("timed out"),
        hang,
    ],
)
async def test_the_key_never_shows_in_errors_or_logs(
    step: Step, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with scripted(step, deadline=0.2) as (upstream, _):
        with pytest.raises(BrokerError) as raised:
            await mint(upstream)

    assert_no_secret(raised.value)
    assert KEY not in caplog.text
    assert KEY not in repr(upstream)
    assert raised.value.param is None or KEY not in raised.value.param


def test_the_default_transport_is_the_measured_one() -> None:
    upstream = OpenAIUpstream(base_url=BASE, api_key=Secret(KEY))

    assert isinstance(upstream._transport, AiohttpTransport)
    asyncio.run(upstream.aclose())


@asynccontextmanager
async def against_fake(key: str = FAKE_KEY) -> AsyncIterator[OpenAIUpstream]:
    app = create_fake_app(api_key=FAKE_KEY)
    upstream = OpenAIUpstream(
        base_url="http://fake/v1", api_key=Secret(key), transport=httpx.ASGITransport(app=app)
    )
    try:
        yield upstream
    finally:
        await upstream.aclose()


async def test_mints_against_the_fake_upstream() -> None:
    async with against_fake() as upstream:
        ga = await mint(upstream)
        beta = await upstream.create_secret(
            "/realtime/sessions", b'{"temperature": 0.7}', safety_identifier=SAFETY_ID
        )

    assert ga["value"].startswith("ek_")
    assert ga["session"]["type"] == "realtime"
    assert beta["client_secret"]["value"].startswith("ek_")
    assert beta["temperature"] == 0.7


async def test_vector_stores_against_the_fake_upstream() -> None:
    async with against_fake() as upstream:
        created = await upstream.request("POST", "/vector_stores", json_body={"name": "docs"})
        listed = await upstream.request("GET", "/vector_stores", params={"limit": "1"})

    assert listed["data"] == [created]


async def test_the_fakes_refusal_becomes_an_invalid_request() -> None:
    async with against_fake() as upstream:
        with pytest.raises(InvalidRequest) as raised:
            await upstream.create_secret(
                PATH,
                b'{"session": {"type": "realtime", "temperature": 0.8}}',
                safety_identifier=SAFETY_ID,
            )

    assert (raised.value.param, raised.value.code) == ("session.temperature", "unknown_parameter")


async def test_a_wrong_key_at_the_fake_is_reported_as_misconfiguration() -> None:
    async with against_fake(key="test-wrong-0123456789") as upstream:
        with pytest.raises(UpstreamError) as raised:
            await mint(upstream)

    assert raised.value.message == MISCONFIGURED


@asynccontextmanager
async def tcp_upstream(
    answer: Callable[[bytes], bytes | None],
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A bare HTTP/1.1 server on 127.0.0.1: `answer(request_head)` gives the raw response,
    or None to drop the connection. Exercises the real default transport end to end."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            heads.append(head)
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            response = answer(head)
            if response is not None:
                writer.write(response)
                await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", heads
    finally:
        server.close()
        await server.wait_closed()


def http_200(head: bytes) -> bytes:
    body = b'{"value": "ek_real", "expires_at": 5}'
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


async def test_the_default_transport_mints_over_a_real_socket() -> None:
    async with tcp_upstream(http_200) as (base, heads):
        upstream = OpenAIUpstream(base_url=base, api_key=Secret(KEY))
        try:
            result = await mint(upstream)
        finally:
            await upstream.aclose()

    assert result == {"value": "ek_real", "expires_at": 5}
    assert heads[0].startswith(b"POST /v1/realtime/client_secrets HTTP/1.1")
    assert f"\r\nauthorization: bearer {KEY}\r\n".lower().encode() in heads[0].lower()


async def test_the_default_transport_retries_a_dropped_connection_once() -> None:
    async with tcp_upstream(lambda head: None) as (base, heads):
        upstream = OpenAIUpstream(base_url=base, api_key=Secret(KEY), deadline=2.0)
        try:
            with pytest.raises(UpstreamUnavailable):
                await mint(upstream)
        finally:
            await upstream.aclose()

    assert len(heads) == 2


async def test_the_default_transport_maps_a_refused_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    upstream = OpenAIUpstream(base_url=f"http://127.0.0.1:{port}/v1", api_key=Secret(KEY))
    try:
        with pytest.raises(UpstreamUnavailable) as raised:
            await mint(upstream)
    finally:
        await upstream.aclose()

    assert_no_secret(raised.value)


# Call control takes the same send path as a mint: the same headers, deadline and error
# mapping, but never a retry of a placement (it would place a second call).


async def place(upstream: OpenAIUpstream) -> tuple[str, str]:
    return await upstream.create_call("v=0\r\n", {"type": "realtime"}, safety_identifier=SAFETY_ID)


async def test_a_call_is_placed_as_multipart_with_the_server_key() -> None:
    answer = httpx.Response(
        201, text="v=0 answer", headers={"Location": "/v1/realtime/calls/rtc_1"}
    )
    async with scripted(answer) as (upstream, calls):
        assert await place(upstream) == ("v=0 answer", "rtc_1")
    [sent] = calls
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["accept"] == "application/sdp"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="sdp"' in sent.content
    assert b'name="session"' in sent.content


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (httpx.Response(503), UpstreamUnavailable),
        (httpx.ConnectError("refused"), UpstreamUnavailable),
        (httpx.Response(401, json=error_body(f"bad key {KEY}")), UpstreamError),
        (httpx.Response(200, text="v=0"), UpstreamError),
        (httpx.ReadTimeout("slow"), UpstreamTimeout),
    ],
)
async def test_a_placement_is_mapped_like_a_mint_and_never_retried(
    step: Step, error: type[BrokerError]
) -> None:
    async with scripted(step) as (upstream, calls):
        with pytest.raises(error) as raised:
            await place(upstream)
    assert len(calls) == 1
    assert_no_secret(raised.value)


async def test_a_hangup_of_a_gone_call_is_not_found() -> None:
    async with scripted(httpx.Response(404, json=error_body("no such call"))) as (upstream, _):
        with pytest.raises(NotFound):
            await upstream.hangup_call("rtc_gone")


async def test_hangups_leave_nothing_behind_and_fixed_urls_are_kept_bounded() -> None:
    async with scripted(ok({})) as (upstream, calls):
        await mint(upstream)
        for n in range(200):
            await upstream.hangup_call(f"rtc_{n}")
        for n in range(2 * MAX_CACHED_URLS):
            await upstream.request("GET", f"/vector_stores/vs_{n}")
        await upstream.request("GET", "/vector_stores", params={"limit": "2"})

    # Each call went to its own URL, query included.
    assert str(calls[1].url) == f"{BASE}/realtime/calls/rtc_0/hangup"
    assert str(calls[-1].url) == f"{BASE}/vector_stores?limit=2"
    # A path with an id is built per call: 200 hangups keep no URL (each kept ~0.5 KB);
    # what other callers pass is kept up to the bound, and no further.
    kept = upstream._urls
    assert PATH in kept
    assert not [path for path in kept if "hangup" in path]
    assert len(kept) == MAX_CACHED_URLS


async def test_calls_are_observed_like_mints() -> None:
    seen: list[BaseException | None] = []
    answer = httpx.Response(201, text="v=0", headers={"Location": "/v1/realtime/calls/rtc_2"})
    async with scripted(answer, httpx.Response(503), observer=lambda s, e: seen.append(e)) as (
        upstream,
        _,
    ):
        await place(upstream)
        with pytest.raises(UpstreamUnavailable):
            await upstream.hangup_call("rtc_2")
    assert seen[0] is None
    assert isinstance(seen[1], UpstreamUnavailable)


LIVE_BODY = b'{"session":{"model":"gpt-live-1"},"transport":{"type":"webrtc","sdp":"v=0"}}'
LIVE_ANSWER = {"session": {"id": "live_1"}, "transport": {"type": "webrtc", "sdp": "v=0 answer"}}


@pytest.mark.parametrize(
    ("flavor", "base", "path", "credential"),
    [
        ("openai", BASE, "/v1/live/sessions", ("authorization", f"Bearer {KEY}")),
        (
            "azure",
            "https://acme.openai.azure.com/openai/v1",
            "/openai/v1/live/sessions",
            ("api-key", KEY),
        ),
    ],
)
async def test_a_live_session_is_created_with_the_server_key(
    flavor: str, base: str, path: str, credential: tuple[str, str]
) -> None:
    async with scripted(httpx.Response(201, json=LIVE_ANSWER), flavor=flavor, base_url=base) as (
        upstream,
        calls,
    ):
        created = await upstream.create_live_session(LIVE_BODY, safety_identifier=SAFETY_ID)
    assert created == LIVE_ANSWER
    [sent] = calls
    assert sent.url.path == path
    assert sent.headers[credential[0]] == credential[1]
    assert sent.headers["content-type"] == "application/json"
    assert sent.content == LIVE_BODY


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(201, json={"session": {}, "transport": {"sdp": "v=0"}}),
        httpx.Response(201, json={"session": {"id": "live_1"}}),
        httpx.Response(201, text="not json"),
    ],
)
async def test_an_unreadable_live_answer_is_a_502(answer: httpx.Response) -> None:
    async with scripted(answer) as (upstream, _):
        with pytest.raises(UpstreamError):
            await upstream.create_live_session(LIVE_BODY, safety_identifier=SAFETY_ID)


async def test_a_live_session_is_never_retried() -> None:
    async with scripted(httpx.Response(502)) as (upstream, calls):
        with pytest.raises(UpstreamError):
            await upstream.create_live_session(LIVE_BODY, safety_identifier=SAFETY_ID)
    assert len(calls) == 1


async def test_a_live_session_against_the_fake_upstream() -> None:
    upstream = OpenAIUpstream(
        base_url="http://fake/v1",
        api_key=Secret(FAKE_KEY),
        transport=httpx.ASGITransport(app=create_fake_app(api_key=FAKE_KEY)),
    )
    body = json.dumps(
        {
            "session": {"model": "gpt-live-1", "temperature": 1},
            "transport": {"type": "webrtc", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"},
        },
        separators=(",", ":"),
    ).encode()
    with pytest.raises(InvalidRequest) as refused:
        await upstream.create_live_session(body, safety_identifier=SAFETY_ID)
    assert refused.value.param == "session.temperature"
    created = await upstream.create_live_session(
        body.replace(b',"temperature":1', b""), safety_identifier=SAFETY_ID
    )
    assert created["session"]["id"].startswith("live_")
    await upstream.aclose()


async def test_a_live_session_is_hung_up_over_rest_and_a_gone_one_is_not_found() -> None:
    fake = create_fake_app(api_key=FAKE_KEY)
    upstream = OpenAIUpstream(
        base_url="http://fake/v1",
        api_key=Secret(FAKE_KEY),
        transport=httpx.ASGITransport(app=fake),
    )
    session_id = fake.state.live_sessions.create({"model": "gpt-live-1"})
    await upstream.hangup_live_session(session_id)
    assert fake.state.live_sessions.closed[session_id] == "close_requested"
    with pytest.raises(NotFound):
        await upstream.hangup_live_session(session_id)
    await upstream.aclose()
    async with scripted(ok({})) as (scripted_upstream, calls):
        await scripted_upstream.hangup_live_session("live/1")
    assert calls[0].url.raw_path == b"/v1/live/sessions/live%2F1/hangup"
