"""The send path both upstream clients share (service.upstream.http): the retry of a
status the provider names, the provider's own mapping of every other refusal, the
observer, and the scrubbing of upstream words."""

from __future__ import annotations

import re
from typing import NoReturn

import httpx
import pytest

from service.errors import BrokerError, InvalidRequest, UpstreamError, UpstreamUnavailable
from service.redact import Secret
from service.upstream.http import MAX_MESSAGE_CHARS, Sender, error_object, scrub


class Refused(InvalidRequest):
    pass


def refuse(response: httpx.Response) -> NoReturn:
    raise Refused(f"mapped {response.status_code}")


def sender(statuses: list[int], seen: list[BaseException | None]) -> tuple[Sender, list[int]]:
    """A Sender whose upstream answers `statuses` in turn; the attempts it made."""
    attempts: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        attempts.append(len(attempts) + 1)
        return httpx.Response(statuses[len(attempts) - 1], json={})

    return (
        Sender(
            httpx.MockTransport(handle),
            deadline=5.0,
            retried_statuses=frozenset({500, 503}),
            raise_for_status=refuse,
            observer=lambda seconds, error: seen.append(error),
        ),
        attempts,
    )


def post() -> httpx.Request:
    return httpx.Request("POST", "https://upstream.test/x")


async def test_a_retried_status_is_retried_once_when_the_call_may_be() -> None:
    seen: list[BaseException | None] = []
    retried, attempts = sender([500, 200], seen)
    once, single = sender([503, 200], seen)

    answer = await retried.send(post(), (200,), retry=True)
    with pytest.raises(UpstreamUnavailable):
        await once.send(post(), (200,), retry=False)

    assert answer.status_code == 200
    assert attempts == [1, 2]
    assert single == [1]
    assert seen[0] is None
    assert isinstance(seen[1], UpstreamUnavailable)


async def test_any_other_status_is_the_providers_to_map_and_is_not_retried() -> None:
    seen: list[BaseException | None] = []
    refused, attempts = sender([502, 200], seen)
    failing, _ = sender([500, 500], seen)

    with pytest.raises(Refused, match="mapped 502"):
        await refused.send(post(), (200,), retry=True)
    with pytest.raises(UpstreamError, match=r"HTTP 500"):
        await failing.send(post(), (200,), retry=True)

    assert attempts == [1]
    assert all(isinstance(error, BrokerError) for error in seen)


def test_scrub_masks_the_key_and_the_providers_secret_shapes() -> None:
    key = Secret("server-key-0123456789")
    text = "key server-key-0123456789 and tok_abcdef leaked " + "x" * 2000

    scrubbed = scrub(text, key, re.compile(r"tok_[a-z]+"))

    assert "server-key" not in scrubbed
    assert "tok_abcdef" not in scrubbed
    assert len(scrubbed) == MAX_MESSAGE_CHARS
    assert scrub(None, key, re.compile("x")) == ""


def test_error_object_is_the_error_member_or_empty() -> None:
    assert error_object(httpx.Response(400, json={"error": {"message": "m"}})) == {"message": "m"}
    assert error_object(httpx.Response(400, text="<html>")) == {}
    assert error_object(httpx.Response(400, json={"error": "text"})) == {}
