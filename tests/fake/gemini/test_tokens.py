"""The fake Gemini's tokens: defaults and bounds of their times, their uses, and the setup
they lock over the client's."""

from __future__ import annotations

from typing import Any

import pytest

from service.clock import ManualClock
from service.fake.gemini.status import GoogleError
from service.fake.gemini.tokens import (
    AuthToken,
    FakeAuthTokens,
    SessionRefused,
    digest,
    effective_setup,
    parse_time,
)

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
CLIENT: dict[str, Any] = {
    "model": "models/client-model",
    "generationConfig": {"temperature": 1.5, "responseModalities": ["TEXT"]},
    "outputAudioTranscription": {},
}
LOCKED: dict[str, Any] = {
    "model": "models/locked-model",
    "generationConfig": {"temperature": 0.2},
    "systemInstruction": {"parts": [{"text": "Policy."}]},
}


def locked(setup: dict[str, Any] | None, mask: tuple[str, ...] | None = None) -> AuthToken:
    return AuthToken("auth_tokens/x", 1, NOW + 60, NOW + 60, setup, mask)


@pytest.mark.parametrize(
    ("token", "effective"),
    [
        # No setup in the token: the client's holds.
        (locked(None), CLIENT),
        # A setup and no mask: the token's whole, the client's ignored.
        (locked(LOCKED), LOCKED),
        # A setup without a model leaves the model to the client.
        (
            locked({"generationConfig": {"temperature": 0.2}}),
            {"model": "models/client-model", "generationConfig": {"temperature": 0.2}},
        ),
        # A mask locks its paths alone: from the token, or removed when the token lacks them.
        (
            locked(LOCKED, ("generationConfig.temperature", "systemInstruction")),
            {**CLIENT, "generationConfig": {"temperature": 0.2, "responseModalities": ["TEXT"]},
             "systemInstruction": LOCKED["systemInstruction"]},
        ),
        (
            locked(LOCKED, ("outputAudioTranscription", "tools.x")),
            {k: v for k, v in CLIENT.items() if k != "outputAudioTranscription"},
        ),
    ],
)  # fmt: skip
def test_the_effective_setup(token: AuthToken, effective: dict[str, Any]) -> None:
    assert effective_setup(CLIENT, token) == effective


def test_times_parse_as_rfc_3339_with_offsets_and_nanoseconds() -> None:
    assert parse_time("2025-06-15T15:06:40Z") == NOW
    assert parse_time("2025-06-15T17:06:40+02:00") == NOW
    assert parse_time("2025-06-15T15:06:40.5000009Z") == NOW + 0.5


def test_a_token_has_googles_defaults() -> None:
    tokens = FakeAuthTokens(clock=ManualClock(NOW))

    token = tokens.issue({})

    assert token.name.startswith("auth_tokens/")
    assert (token.uses, token.setup, token.field_mask) == (1, None, None)
    assert token.expire_time == NOW + 30 * 60
    assert token.new_session_expire_time == NOW + 60


@pytest.mark.parametrize(
    "body",
    [
        {"expireTime": "2025-06-15T15:06:40Z"},  # now: not in the future
        {"newSessionExpireTime": "2025-06-15T15:00:00Z"},
        {"expireTime": "2025-06-16T11:06:41Z"},  # 20 h and a second ahead
    ],
)
def test_times_out_of_bounds_are_refused(body: dict[str, Any]) -> None:
    tokens = FakeAuthTokens(clock=ManualClock(NOW))

    with pytest.raises(GoogleError) as refused:
        tokens.issue(body)

    assert refused.value.code == 400


def test_a_token_starts_as_many_sessions_as_it_has_uses() -> None:
    tokens = FakeAuthTokens(clock=ManualClock(NOW))
    once = tokens.issue({"uses": 1, "bidiGenerateContentSetup": LOCKED})
    unlimited = tokens.issue({"uses": 0})

    assert tokens.start(once.name, CLIENT) == LOCKED
    with pytest.raises(SessionRefused) as refused:
        tokens.start(once.name, CLIENT)
    for _ in range(3):
        tokens.start(unlimited.name, CLIENT)

    assert (refused.value.code, refused.value.reason) == (
        1008,
        "The access token has no uses left.",
    )
    assert [s["token"] for s in tokens.sessions] == [once.name] + [unlimited.name] * 3
    assert tokens.sessions[0]["client_setup"] == CLIENT


def test_no_session_starts_after_the_new_session_time_or_with_an_unknown_token() -> None:
    clock = ManualClock(NOW)
    tokens = FakeAuthTokens(clock=clock)
    token = tokens.issue({"uses": 0, "newSessionExpireTime": "2025-06-15T15:07:00Z"})
    tokens.start(token.name, CLIENT)

    clock.advance(20)

    with pytest.raises(SessionRefused, match="no longer starts new sessions"):
        tokens.start(token.name, CLIENT)
    with pytest.raises(SessionRefused, match="not valid"):
        tokens.start("auth_tokens/unknown", CLIENT)
    with pytest.raises(SessionRefused, match="not valid"):
        tokens.start(None, CLIENT)


def test_a_token_expires_at_its_expire_time() -> None:
    clock = ManualClock(NOW)
    tokens = FakeAuthTokens(clock=clock)
    token = tokens.issue({"expireTime": "2025-06-15T15:07:40Z"})

    assert not tokens.expired(token.name)
    clock.advance(60)
    assert tokens.expired(token.name)
    assert tokens.expired("auth_tokens/unknown")


def test_a_request_is_recorded_with_its_credentials_as_digests() -> None:
    tokens = FakeAuthTokens(clock=ManualClock(NOW))

    entry = tokens.record("v1alpha", {"x-goog-api-key": "the-key"}, {"uses": 1})

    assert entry == {
        "version": "v1alpha",
        "credentials": {"x-goog-api-key": digest("the-key")},
        "body": {"uses": 1},
        "status": None,
    }
    assert "the-key" not in repr(list(tokens.received))
