"""The fake's mint builders: defaults, secrets and expiry from the injected time."""

from __future__ import annotations

import re

from service.fake.sessions import (
    beta_session,
    beta_transcription_session,
    ga_client_secret,
    new_client_secret,
)

NOW = 1_750_000_000.7


def test_client_secrets_are_ek_and_32_hex() -> None:
    secrets = {new_client_secret() for _ in range(50)}

    assert len(secrets) == 50
    assert all(re.fullmatch(r"ek_[0-9a-f]{32}", s) for s in secrets)


def test_ga_defaults_to_a_realtime_session_for_ten_minutes() -> None:
    answer = ga_client_secret({}, NOW)

    assert answer["expires_at"] == 1_750_000_600
    session = answer["session"]
    assert (session["type"], session["object"], session["model"]) == (
        "realtime",
        "realtime.session",
        "gpt-realtime",
    )
    assert session["audio"]["output"]["voice"] == "alloy"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert "transcription" not in session["audio"]["input"]


def test_ga_reports_a_custom_voice_by_id_and_keeps_vad_off() -> None:
    request = {
        "type": "realtime",
        "audio": {"input": {"turn_detection": None}, "output": {"voice": {"id": "voice_1"}}},
    }

    session = ga_client_secret({"session": request}, NOW)["session"]

    assert session["audio"]["output"]["voice"] == "voice_1"
    assert session["audio"]["input"]["turn_detection"] is None


def test_ga_transcription_session() -> None:
    answer = ga_client_secret(
        {"session": {"type": "transcription"}, "expires_after": {"seconds": 10}}, NOW
    )

    assert answer["expires_at"] == 1_750_000_010
    assert answer["session"]["type"] == "transcription"
    assert answer["session"]["audio"]["input"]["transcription"] == {
        "model": "gpt-4o-mini-transcribe"
    }


def test_beta_session_defaults_and_one_minute_ttl() -> None:
    session = beta_session({"voice": "verse", "turn_detection": {"type": "semantic_vad"}}, NOW)

    assert session["client_secret"]["expires_at"] == 1_750_000_060
    assert (session["voice"], session["temperature"], session["modalities"]) == (
        "verse",
        0.8,
        ["audio", "text"],
    )
    assert session["turn_detection"]["eagerness"] == "auto"
    assert "tracing" not in session


def test_beta_leaves_out_a_disabled_turn_detection() -> None:
    session = beta_transcription_session({"turn_detection": None}, NOW)

    assert "turn_detection" not in session
    assert session["client_secret"]["expires_at"] == 1_750_000_060


def test_defaults_are_not_shared_between_answers() -> None:
    first = ga_client_secret({}, NOW)
    first["session"]["audio"]["input"]["format"]["rate"] = 8000

    second = ga_client_secret({}, NOW)

    assert second["session"]["audio"]["input"]["format"]["rate"] == 24000
