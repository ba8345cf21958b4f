"""GeminiUpstream: the key header, the API version, one retry within the deadline, and
Google's answers mapped onto the broker's errors with no secret passed on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.errors import (
    BrokerError,
    InvalidRequest,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from service.redact import Secret
from service.upstream.gemini import NO_ENDPOINT, GeminiUpstream
from service.upstream.http import MISCONFIGURED

KEY = "gemini-test-key-0123456789abcdef"
BODY = b'{"uses":1}'
Step = httpx.Response | Exception


def google(code: int, message: str, status: str, **extra: Any) -> httpx.Response:
    return httpx.Response(
        code, json={"error": {"code": code, "message": message, "status": status, **extra}}
    )


def scripted(
    *steps: Step, deadline: float = 5.0, observed: list[Any] | None = None
) -> tuple[GeminiUpstream, list[httpx.Request]]:
    """A GeminiUpstream whose n-th call gets steps[n] (the last one repeats)."""
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        step = steps[min(len(calls), len(steps)) - 1]
        if isinstance(step, Exception):
            raise step
        return step

    def observe(seconds: float, error: BaseException | None) -> None:
        if observed is not None:
            observed.append(error)

    upstream = GeminiUpstream(
        base_url="https://gemini.test/",
        api_key=Secret(KEY),
        api_version="v1beta",
        transport=httpx.MockTransport(handler),
        deadline=deadline,
        observer=observe,
    )
    return upstream, calls


async def test_a_token_is_asked_for_with_the_key_at_the_api_version() -> None:
    observed: list[Any] = []
    upstream, calls = scripted(
        httpx.Response(200, json={"name": "auth_tokens/abc"}), observed=observed
    )

    answer = await upstream.create_auth_token(BODY)

    assert answer == {"name": "auth_tokens/abc"}
    [request] = calls
    assert str(request.url) == "https://gemini.test/v1beta/auth_tokens"
    assert request.method == "POST"
    assert request.headers["x-goog-api-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.content == BODY
    assert observed == [None]
    assert KEY not in repr(upstream)


async def test_a_400_passes_googles_message_on_with_secrets_masked() -> None:
    message = f"Bad setup for auth_tokens/secret-token with {KEY} and AIza{'x' * 35}."
    upstream, _ = scripted(google(400, message, "INVALID_ARGUMENT"))

    with pytest.raises(InvalidRequest) as raised:
        await upstream.create_auth_token(BODY)

    assert raised.value.status == 400
    assert raised.value.message == "Bad setup for ********** with ********** and **********."


@pytest.mark.parametrize(
    "response",
    [
        google(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT",
               details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                         "reason": "API_KEY_INVALID"}]),
        google(401, "No.", "UNAUTHENTICATED"),
        google(403, "Method doesn't allow unregistered callers.", "PERMISSION_DENIED"),
    ],
)  # fmt: skip
async def test_a_refused_key_is_the_operators_problem(response: httpx.Response) -> None:
    upstream, _ = scripted(response)

    with pytest.raises(UpstreamError) as raised:
        await upstream.create_auth_token(BODY)

    assert raised.value.status == 502
    assert raised.value.message == MISCONFIGURED


async def test_a_404_says_to_check_the_api_version() -> None:
    upstream, _ = scripted(google(404, "Not found.", "NOT_FOUND"))

    with pytest.raises(UpstreamError) as raised:
        await upstream.create_auth_token(BODY)

    assert raised.value.message == NO_ENDPOINT


@pytest.mark.parametrize(
    ("response", "retry_after"),
    [
        (google(429, "Quota.", "RESOURCE_EXHAUSTED",
                details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                          "retryDelay": "12.5s"}]), "13"),
        (httpx.Response(429, headers={"Retry-After": "7"}), "7"),
        (google(429, "Quota.", "RESOURCE_EXHAUSTED"), None),
    ],
)  # fmt: skip
async def test_a_429_is_a_503_with_googles_delay(
    response: httpx.Response, retry_after: str | None
) -> None:
    upstream, calls = scripted(response)

    with pytest.raises(UpstreamUnavailable) as raised:
        await upstream.create_auth_token(BODY)

    assert raised.value.headers.get("Retry-After") == retry_after
    assert len(calls) == 1


async def test_a_failed_attempt_is_tried_once_more() -> None:
    ok = httpx.Response(200, json={"name": "auth_tokens/abc"})
    retried, retried_calls = scripted(google(503, "Busy.", "UNAVAILABLE"), ok)
    reconnected, reconnected_calls = scripted(httpx.ConnectError("refused"), ok)

    assert (await retried.create_auth_token(BODY))["name"] == "auth_tokens/abc"
    assert (await reconnected.create_auth_token(BODY))["name"] == "auth_tokens/abc"
    assert len(retried_calls) == len(reconnected_calls) == 2


@pytest.mark.parametrize(
    ("step", "error", "status"),
    [
        (google(500, "Oops.", "INTERNAL"), UpstreamError, 502),
        (google(503, "Busy.", "UNAVAILABLE"), UpstreamUnavailable, 503),
        (httpx.ConnectError("refused"), UpstreamUnavailable, 503),
    ],
)
async def test_a_second_failure_is_the_callers(
    step: Step, error: type[BrokerError], status: int
) -> None:
    observed: list[Any] = []
    upstream, calls = scripted(step, observed=observed)

    with pytest.raises(error) as raised:
        await upstream.create_auth_token(BODY)

    assert raised.value.status == status
    assert len(calls) == 2
    assert observed == [raised.value]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"<html>"),
        httpx.Response(200, json={"token": "x"}),
        httpx.Response(200, json={"name": ""}),
        httpx.Response(201, json={"name": "auth_tokens/abc"}),
        httpx.Response(418, json={}),
    ],
)
async def test_an_answer_without_a_token_is_a_502(response: httpx.Response) -> None:
    upstream, _ = scripted(response)

    with pytest.raises(UpstreamError) as raised:
        await upstream.create_auth_token(BODY)

    assert raised.value.status == 502


async def test_no_answer_within_the_deadline_is_a_504() -> None:
    never = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("unreachable")

    handler: Callable[[httpx.Request], Any] = hang
    upstream = GeminiUpstream(
        base_url="https://gemini.test",
        api_key=Secret(KEY),
        transport=httpx.MockTransport(handler),
        deadline=0.05,
    )

    with pytest.raises(UpstreamTimeout):
        await upstream.create_auth_token(BODY)
