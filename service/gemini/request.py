"""The body of `POST /v1alpha/auth_tokens` (Google's `AuthToken`), read as the SDKs send it.

    {"uses": 1, "expireTime": "...", "newSessionExpireTime": "...",
     "bidiGenerateContentSetup": {...}, "fieldMask": "model,generationConfig.temperature"}

Each field may also come in its proto spelling (`expire_time`); the setup is normalized
by `service.gemini.schema`. `fieldMask` is read only to be dropped: the broker always
locks the whole setup (service.gemini.locking).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.gemini.schema import SETUP_MESSAGE, SETUP_PARAM, message, normalize
from service.gemini.times import parse_time
from service.session.strict_json import as_int, as_str, join, wrong_type

BODY = message(
    "uses", "expireTime", "newSessionExpireTime", "fieldMask", **{SETUP_PARAM: SETUP_MESSAGE}
)
INT32_MAX = 2**31 - 1
MAX_FIELD_MASK_CHARS = 4096


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What a client asked for; times in seconds since the epoch."""

    setup: Mapping[str, Any] = field(default_factory=dict)
    uses: int | None = None
    expire_time: float | None = None
    new_session_expire_time: float | None = None
    # Whether the client asked to lock only some fields (never honoured).
    field_mask: bool = False


def parse_token_request(body: object) -> TokenRequest:
    """The body checked and normalized, or InvalidValue / UnknownParameter naming the field."""
    checked = normalize(body, BODY, "")
    expire = checked.get("expireTime")
    new_session = checked.get("newSessionExpireTime")
    uses = checked.get("uses")
    return TokenRequest(
        setup=checked.get(SETUP_PARAM, {}),
        uses=None if uses is None else as_int(uses, "uses", 0, INT32_MAX),
        expire_time=None if expire is None else parse_time(expire, "expireTime"),
        new_session_expire_time=(
            None if new_session is None else parse_time(new_session, "newSessionExpireTime")
        ),
        field_mask=_field_mask(checked.get("fieldMask")),
    )


def _field_mask(value: object) -> bool:
    """A FieldMask is a comma-separated string in JSON; an SDK may leave it a list."""
    if value is None:
        return False
    if isinstance(value, list):
        for index, path in enumerate(value):
            as_str(path, join("fieldMask", index), max_chars=MAX_FIELD_MASK_CHARS)
        return bool(value)
    if not isinstance(value, str):
        wrong_type("fieldMask", "a string", value)
    as_str(value, "fieldMask", max_chars=MAX_FIELD_MASK_CHARS)
    return bool(value)
