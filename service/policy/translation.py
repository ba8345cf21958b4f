"""Applying the policy to a translation mint (README "Policy", translations); pure.

A translation session has three fields a role decides: its model (`translation_models`),
the language it translates into (`translation_languages`) and, when it transcribes its
input, the transcription model (`transcription_models`); its TTL is a mint's.
"""

from __future__ import annotations

from dataclasses import replace

from service.errors import RoleForbidden
from service.policy.application import PolicyApplication
from service.policy.model import Policy
from service.session.translation import TranslationRequest

NO_TRANSLATIONS = (
    "This role may not mint translation secrets: its policy names no translation_models."
)


def apply_translation_policy(
    policy: Policy, role: str, request: TranslationRequest
) -> tuple[TranslationRequest, list[str]]:
    """The effective translation request for `role`, and the paths the policy changed
    (`session.model`, `session.audio.output.language`,
    `session.audio.input.transcription.model`, `expires_after.seconds`).

    A role whose policy names no `translation_models` may not mint one: RoleForbidden.
    The allow-lists work as for every mint: the first entry fills a missing value
    (unlisted); a value outside the list is replaced by it (`clamp`, listed) or refused
    (`reject`, PolicyViolation). No `translation_languages`: any language. A transcription
    model is checked only when the client turns transcription on."""
    rules = policy.rules_for(role)
    if not rules.translation_models:
        raise RoleForbidden(NO_TRANSLATIONS)
    apply = PolicyApplication(policy, request.endpoint)
    s = request.session
    model = apply.choose(s.model, rules.translation_models, "session.model")
    language = apply.choose(
        s.language, rules.translation_languages, "session.audio.output.language"
    )
    transcription_model = s.transcription_model
    if transcription_model is not None:
        transcription_model = apply.choose(
            transcription_model,
            rules.transcription_models,
            "session.audio.input.transcription.model",
        )
    session = s
    if (model, language, transcription_model) != (s.model, s.language, s.transcription_model):
        session = replace(
            s, model=model, language=language, transcription_model=transcription_model
        )
    effective = TranslationRequest(
        session=session,
        ttl_seconds=apply.ttl(request.ttl_seconds, rules.ttl_seconds),
        defaulted=frozenset(request.defaulted | apply.defaulted),
    )
    return effective, list(dict.fromkeys(apply.adjusted))
