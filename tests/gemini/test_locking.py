"""The token sent upstream: one use, the whole setup locked, expiry bounded by the role."""

from __future__ import annotations

import pytest

from service.errors import InvalidValue
from service.gemini.locking import lock_token, session_seconds
from service.gemini.request import TokenRequest
from service.gemini.times import parse_time
from service.policy.model import RoleRules, TtlRule

NOW = 1_800_000_000.0
SETUP = {"model": "models/m"}
RULES = RoleRules(ttl_seconds=TtlRule(default=120, max=600))


def times(body: dict[str, object]) -> tuple[float, float]:
    expire, new_session = body["expireTime"], body["newSessionExpireTime"]
    return parse_time(expire, "e") - NOW, parse_time(new_session, "n") - NOW


def test_nothing_asked_gets_the_roles_default_and_a_minute_to_connect() -> None:
    locked = lock_token(TokenRequest(), SETUP, RULES, NOW)

    assert locked.body == {
        "uses": 1,
        "expireTime": "2027-01-15T08:02:00Z",
        "newSessionExpireTime": "2027-01-15T08:01:00Z",
        "bidiGenerateContentSetup": SETUP,
    }
    assert times(locked.body) == (120, 60)
    assert locked.expire_time == NOW + 120
    assert locked.adjustments == ()


def test_what_goes_past_the_bounds_is_clamped_and_listed() -> None:
    asked = TokenRequest(
        uses=0, expire_time=NOW + 7200, new_session_expire_time=NOW + 3600, field_mask=True
    )

    locked = lock_token(asked, SETUP, RULES, NOW)

    assert locked.body["uses"] == 1
    assert "fieldMask" not in locked.body
    assert times(locked.body) == (600, 60)
    assert locked.adjustments == ("expireTime", "newSessionExpireTime", "uses", "fieldMask")


def test_what_is_within_the_bounds_is_kept() -> None:
    asked = TokenRequest(uses=1, expire_time=NOW + 300.7, new_session_expire_time=NOW + 30)

    locked = lock_token(asked, SETUP, RULES, NOW)

    assert times(locked.body) == (300, 30)
    assert locked.adjustments == ()


def test_a_new_session_cannot_open_after_the_token_expires() -> None:
    locked = lock_token(TokenRequest(expire_time=NOW + 20), SETUP, RULES, NOW)

    assert times(locked.body) == (20, 20)


def test_max_call_seconds_sets_how_long_a_token_lasts() -> None:
    rules = RoleRules(ttl_seconds=TtlRule(default=60, max=120), max_call_seconds=1800)

    assert session_seconds(rules) == (1800, 1800)
    assert session_seconds(RULES) == (120, 600)
    assert times(lock_token(TokenRequest(), SETUP, rules, NOW).body)[0] == 1800


@pytest.mark.parametrize("field", ["expire_time", "new_session_expire_time"])
def test_a_time_in_the_past_is_refused(field: str) -> None:
    request = TokenRequest(**{field: NOW - 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        lock_token(request, SETUP, RULES, NOW)


@pytest.mark.parametrize("field", ["expire_time", "new_session_expire_time"])
def test_a_time_less_than_a_second_ahead_is_refused(field: str) -> None:
    """Times are sent in whole seconds: 0.5 s ahead, rounded down, would be expired
    already; 1.7 s ahead rounds down to a time still ahead."""
    now = NOW + 0.3
    request = TokenRequest(**{field: now + 0.5})  # type: ignore[arg-type]
    kept = TokenRequest(**{field: now + 1.7})  # type: ignore[arg-type]

    with pytest.raises(InvalidValue) as raised:
        lock_token(request, SETUP, RULES, now)
    locked = lock_token(kept, SETUP, RULES, now)

    assert raised.value.param == (
        "expireTime" if field == "expire_time" else "newSessionExpireTime"
    )
    assert min(times(locked.body)) == 2  # NOW + 2.0, whole
