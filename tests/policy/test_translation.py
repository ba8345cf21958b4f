"""The policy applied to a translation mint (pure): models and languages allow-lists, the
transcription model, the TTL, and the role that names no translation model."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from service.errors import PolicyViolation, RoleForbidden
from service.policy.model import Policy
from service.policy.parse import default_policy, parse_policy
from service.policy.translation import apply_translation_policy
from service.session.translation import TranslationRequest, TranslationSession
from tests.policy.policies import DESIGN_POLICY

TRANSLATOR = {
    "translation_models": ["gpt-realtime-translate", "gpt-realtime-translate-mini"],
    "translation_languages": ["fr", "de"],
}


def policy(on_violation: str = "clamp", **overrides: Any) -> Policy:
    data = copy.deepcopy(DESIGN_POLICY)
    data["on_violation"] = on_violation
    data["roles"]["reader"].update(TRANSLATOR, **overrides)
    return parse_policy(data)


def translation(ttl: int | None = None, **fields: Any) -> TranslationRequest:
    return TranslationRequest(TranslationSession(**fields), ttl)


def test_nothing_asked_gets_the_first_entries_unlisted() -> None:
    effective, adjusted = apply_translation_policy(policy(), "reader", translation())

    assert effective.session == TranslationSession(model="gpt-realtime-translate", language="fr")
    assert effective.ttl_seconds == 60
    assert adjusted == []
    assert effective.defaulted == {"session.model", "session.audio.output.language"}


def test_allowed_values_are_kept() -> None:
    asked = translation(model="gpt-realtime-translate-mini", language="de")

    effective, adjusted = apply_translation_policy(policy(), "reader", asked)

    assert effective.session == asked.session
    assert adjusted == []


def test_values_outside_the_lists_are_clamped_and_listed() -> None:
    asked = translation(
        ttl=3600, model="gpt-realtime-translate-pro", language="ja", transcription_model="x"
    )

    effective, adjusted = apply_translation_policy(policy(), "reader", asked)

    assert effective.session == TranslationSession(
        model="gpt-realtime-translate",
        language="fr",
        transcription_model="gpt-4o-mini-transcribe",
    )
    assert effective.ttl_seconds == 300
    assert adjusted == [
        "session.model",
        "session.audio.output.language",
        "session.audio.input.transcription.model",
        "expires_after.seconds",
    ]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": "gpt-realtime-translate-pro"}, "session.model"),
        ({"language": "ja"}, "session.audio.output.language"),
        ({"transcription_model": "x"}, "session.audio.input.transcription.model"),
    ],
)
def test_values_outside_the_lists_are_refused_under_reject(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(PolicyViolation) as caught:
        apply_translation_policy(policy("reject"), "reader", translation(**fields))

    assert caught.value.param == param
    assert "not allowed for this role" in caught.value.message


def test_transcription_stays_off_unless_asked_and_any_language_without_a_list() -> None:
    effective, _ = apply_translation_policy(
        policy(translation_languages=None), "reader", translation(language="ja")
    )

    assert effective.session.transcription_model is None
    assert effective.session.language == "ja"


@pytest.mark.parametrize(
    "chosen", [default_policy(), parse_policy(DESIGN_POLICY)], ids=["built-in", "design"]
)
def test_a_role_naming_no_translation_model_may_not_mint_one(chosen: Policy) -> None:
    with pytest.raises(RoleForbidden) as caught:
        apply_translation_policy(chosen, "reader", translation(model="gpt-realtime-translate"))

    assert caught.value.status == 403
    assert caught.value.code == "role_forbidden"
    assert "translation_models" in caught.value.message
