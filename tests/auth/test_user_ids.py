"""The user-id rule both doors apply, and the authenticator applying it. That every id
the authenticator accepts can be revoked over HTTP is tests/test_directory.py's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.auth.tokens import Authenticator
from service.auth.user_ids import MAX_USER_ID_CHARS, is_user_id
from service.clock import ManualClock
from service.directory import validate_user_id
from service.errors import InvalidToken, InvalidValue
from tests.auth.test_tokens import NOW, bearer, claims, hs_token, tenant

ACCEPTED = ["u", "auth0|123", "a" * MAX_USER_ID_CHARS, "é-名前", "a/b", "/", "%2F", "?#&", "...",
            "a/../b", "user@example.com", "\U0001f600", "e\u0301"]  # fmt: skip
REFUSED = {
    "empty": "",
    "too long": "a" * (MAX_USER_ID_CHARS + 1),
    "space": "a b",
    "leading space": " a",
    "tab": "a\tb",
    "newline": "a\n",
    "nul": "a\x00",
    "del": "a\x7f",
    "no-break space": "\u00a0",
    "zero-width space": "a\u200bb",
    "zero-width joiner": "a\u200db",
    "right-to-left override": "a\u202eb",
    "line separator": "a\u2028",
    "private use": "a\ue000",
    "lone surrogate": "a\ud800",
    "unassigned": "a\U000e0fff",
    "dot segment": ".",
    "dot-dot segment": "..",
}


@pytest.mark.parametrize("value", ACCEPTED)
def test_visible_ids_are_user_ids(value: str) -> None:
    assert is_user_id(value)


@pytest.mark.parametrize("value", [pytest.param(v, id=k) for k, v in REFUSED.items()])
def test_blank_invisible_and_dot_segment_ids_are_not(value: str) -> None:
    assert not is_user_id(value)


@given(st.text(max_size=MAX_USER_ID_CHARS + 2))
def test_the_directory_refuses_exactly_what_the_rule_refuses(value: str) -> None:
    try:
        validate_user_id(value)
    except InvalidValue:
        assert not is_user_id(value)
    else:
        assert is_user_id(value)


@pytest.fixture
async def auth() -> AsyncIterator[Authenticator]:
    async with httpx.AsyncClient() as http:
        yield Authenticator([tenant()], http=http, clock=ManualClock(NOW))


@pytest.mark.parametrize("value", ACCEPTED)
async def test_the_authenticator_lets_in_every_user_id(auth: Authenticator, value: str) -> None:
    identity = await auth.authenticate(bearer(hs_token(claims(sub=value))))
    assert identity.user_id == value


@pytest.mark.parametrize("value", [pytest.param(v, id=k) for k, v in REFUSED.items()])
async def test_the_authenticator_refuses_what_the_directory_could_not_revoke(
    auth: Authenticator, value: str
) -> None:
    with pytest.raises(InvalidToken) as refused:
        await auth.authenticate(bearer(hs_token(claims(sub=value))))
    # The public message is every bad token's; the reason (for the access line, a fixed
    # word) names the rule.
    assert refused.value.message == InvalidToken().message
    assert refused.value.reason == "user_claim"
