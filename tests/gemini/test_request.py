"""The body of POST /v1alpha/auth_tokens, in either spelling."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidValue, UnknownParameter
from service.gemini.request import TokenRequest, parse_token_request


def test_the_python_sdks_body_is_read() -> None:
    body = {
        "expireTime": "2026-01-01T00:30:00.000001+00:00",
        "newSessionExpireTime": "2026-01-01T00:01:00+00:00",
        "uses": 3,
        "bidiGenerateContentSetup": {
            "model": "models/m",
            "generationConfig": {"speechConfig": {"voice_config": {}}},
        },
        "fieldMask": "model,generationConfig.speechConfig",
    }

    request = parse_token_request(body)

    assert request.uses == 3
    assert request.expire_time == pytest.approx(1_767_227_400.000001)
    assert request.new_session_expire_time == 1_767_225_660
    assert request.setup == {
        "model": "models/m",
        "generationConfig": {"speechConfig": {"voiceConfig": {}}},
    }
    assert request.field_mask


def test_proto_spellings_and_an_empty_body_are_read() -> None:
    snake = parse_token_request({"expire_time": "2026-01-01T00:00:00Z", "field_mask": ["model"]})
    assert snake.expire_time == 1_767_225_600
    assert snake.field_mask
    assert parse_token_request({}) == TokenRequest()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"uses": -1}, "uses"),
        ({"uses": True}, "uses"),
        ({"uses": 1.5}, "uses"),
        ({"expireTime": "soon"}, "expireTime"),
        ({"newSessionExpireTime": 60}, "newSessionExpireTime"),
        ({"fieldMask": {"paths": []}}, "fieldMask"),
        ({"fieldMask": [1]}, "fieldMask[0]"),
        ({"bidiGenerateContentSetup": []}, "bidiGenerateContentSetup"),
    ],
)
def test_bad_values_are_refused_by_name(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        parse_token_request(body)
    assert raised.value.param == param


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(UnknownParameter) as raised:
        parse_token_request({"name": "auth_tokens/x"})
    assert raised.value.param == "name"
