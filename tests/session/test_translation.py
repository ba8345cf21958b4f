"""The translation mint's wire shape (pure): a client's body checked and normalized, the
effective request rendered for upstream, and upstream's answer read into the client's,
which validates against the vendored schema (written from openai-python's types) and
parses with the SDK's own model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from openai.types.realtime import RealtimeTranslationClientSecretCreateResponse
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from service.errors import InvalidJSON, InvalidValue, UnknownParameter, UpstreamError
from service.session.translation import (
    TRANSLATIONS_PATH,
    TranslationRequest,
    TranslationSession,
    decode_translation_request,
    decode_translation_response,
    encode_translation_upstream,
)

SPEC = yaml.safe_load(
    (Path(__file__).parents[1] / "schemas" / "openai-openapi-subset.yaml").read_text()
)
REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:openai", Resource.from_contents(SPEC, default_specification=DRAFT202012)
)


def validate(name: str, instance: Any) -> None:
    ref = {"$ref": f"urn:openai#/components/schemas/{name}"}
    jsonschema.Draft202012Validator(ref, registry=REGISTRY).validate(instance)


FULL: dict[str, Any] = {
    "expires_after": {"anchor": "created_at", "seconds": 120},
    "session": {
        "model": "gpt-realtime-translate",
        "audio": {
            "input": {
                "noise_reduction": {"type": "near_field", "strength": 0.5},
                "transcription": {"model": "gpt-4o-mini-transcribe"},
            },
            "output": {"language": "fr"},
        },
    },
}


def test_a_full_body_is_read_and_renders_back_to_itself() -> None:
    validate("RealtimeTranslationClientSecretCreateRequest", FULL)

    request = decode_translation_request(FULL)

    assert request.ttl_seconds == 120
    assert request.session == TranslationSession(
        model="gpt-realtime-translate",
        language="fr",
        transcription_model="gpt-4o-mini-transcribe",
        noise_reduction={"type": "near_field", "strength": 0.5},
    )
    assert encode_translation_upstream(request) == (TRANSLATIONS_PATH, FULL)


def test_an_empty_body_leaves_everything_to_the_policy() -> None:
    assert decode_translation_request({}) == TranslationRequest(TranslationSession(), None)


def test_null_noise_reduction_is_sent_on_and_null_transcription_is_none() -> None:
    body = {
        "session": {
            "model": "m",
            "audio": {"input": {"noise_reduction": None, "transcription": None}},
        }
    }

    request = decode_translation_request(body)

    assert request.session.transcription_model is None
    assert encode_translation_upstream(request)[1] == {
        "session": {"model": "m", "audio": {"input": {"noise_reduction": None}}}
    }


@pytest.mark.parametrize(
    ("body", "error", "param"),
    [
        ([], InvalidJSON, None),
        ({"sesion": {}}, UnknownParameter, "sesion"),
        # A translation session has no `type`: the SDK sends none.
        ({"session": {"type": "translation", "model": "m"}}, UnknownParameter, "session.type"),
        ({"session": {"model": 5}}, InvalidValue, "session.model"),
        ({"session": {"model": ""}}, InvalidValue, "session.model"),
        ({"session": {"audio": {"output": {"voice": "ash"}}}}, UnknownParameter,
         "session.audio.output.voice"),
        ({"session": {"audio": {"output": {"language": 7}}}}, InvalidValue,
         "session.audio.output.language"),
        ({"session": {"audio": {"input": {"format": {"type": "audio/pcm"}}}}}, UnknownParameter,
         "session.audio.input.format"),
        ({"session": {"audio": {"input": {"transcription": {}}}}}, InvalidValue,
         "session.audio.input.transcription.model"),
        ({"session": {"audio": {"input": {"noise_reduction": {"type": "loud"}}}}}, InvalidValue,
         "session.audio.input.noise_reduction.type"),
        ({"session": {"audio": {"input": {"noise_reduction": {"strength": 1}}}}}, InvalidValue,
         "session.audio.input.noise_reduction.type"),
        ({"expires_after": {"seconds": 5}}, InvalidValue, "expires_after.seconds"),
    ],
)  # fmt: skip
def test_a_bad_body_is_refused_naming_its_param(
    body: object, error: type[Exception], param: str | None
) -> None:
    with pytest.raises(error) as caught:
        decode_translation_request(body)

    assert getattr(caught.value, "param", None) == param


def effective(**fields: Any) -> TranslationRequest:
    return TranslationRequest(TranslationSession(**fields), 60)


def test_the_answer_is_the_upstreams_in_the_sdks_shape() -> None:
    upstream = {
        "value": "ek_abc",
        "expires_at": 1_750_000_060,
        "session": {
            "id": "sess_1",
            "type": "translation",
            "model": "gpt-realtime-translate",
            "audio": {"output": {"language": "fr"}, "extra": 1},
            "expires_at": 0,
            "unknown": "dropped",
        },
    }

    answer, expires_at = decode_translation_response(
        upstream, effective(model="gpt-realtime-translate", language="fr")
    )

    assert expires_at == 1_750_000_060
    assert answer == {
        "value": "ek_abc",
        "expires_at": 1_750_000_060,
        "session": {
            "id": "sess_1",
            "type": "translation",
            "model": "gpt-realtime-translate",
            "audio": {"output": {"language": "fr"}},
            "expires_at": 0,
        },
    }
    validate("RealtimeTranslationClientSecretCreateResponse", answer)
    RealtimeTranslationClientSecretCreateResponse.model_validate(answer)


def test_what_upstream_leaves_out_comes_from_the_effective_request() -> None:
    answer, _ = decode_translation_response(
        {"value": "ek_abc", "expires_at": 1, "session": {"audio": "?"}},
        effective(model="m", language="de", transcription_model="t", noise_reduction="off"),
    )

    session = answer["session"]
    assert session["model"] == "m"
    assert session["audio"] == {"input": {"transcription": {"model": "t"}},
                                "output": {"language": "de"}}  # fmt: skip
    assert session["id"].startswith("sess_")
    validate("RealtimeTranslationClientSecretCreateResponse", answer)


@pytest.mark.parametrize(
    "upstream",
    [
        None,
        [],
        {"expires_at": 1},
        {"value": "", "expires_at": 1},
        {"value": "ek", "expires_at": "1"},
    ],
)
def test_an_answer_without_a_usable_secret_is_an_upstream_error(upstream: object) -> None:
    with pytest.raises(UpstreamError):
        decode_translation_response(upstream, effective(model="m"))
