from __future__ import annotations

import hashlib
import hmac

import pytest

from service.redact import (
    Secret,
    install_user_hash_key,
    keyed_user_hash,
    mask,
    redact_query,
    redact_target,
    user_hash,
)

KEY = "k" * 32


def test_secret_never_prints_its_value() -> None:
    secret = Secret("sk-very-secret")
    assert "sk-very" not in repr(secret)
    assert "sk-very" not in str(secret)
    assert "sk-very" not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == "sk-very-secret"


def test_secret_compares_in_constant_time_and_by_value() -> None:
    assert Secret("a").matches("a")
    assert not Secret("a").matches("b")
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")


def test_mask_and_user_hash() -> None:
    assert mask(None) is None
    assert mask(Secret("x")) == "**********"
    assert user_hash("t", "alice") == user_hash("t", "alice")
    assert user_hash("t", "alice") != user_hash("u", "alice")
    assert "alice" not in user_hash("t", "alice")


def test_user_hash_is_the_hmac_of_the_installed_key_whether_cached_or_not() -> None:
    install_user_hash_key("redact-t", Secret(KEY))
    expected = hmac.new(KEY.encode(), b"redact-t\x00bob", hashlib.sha256).hexdigest()[:32]

    assert user_hash("redact-t", "bob") == expected  # computed
    assert user_hash("redact-t", "bob") == expected  # cached
    assert user_hash.cache_info().hits >= 1
    assert user_hash.__wrapped__("redact-t", "bob") == expected
    assert keyed_user_hash(KEY.encode(), "redact-t", "bob") == expected
    # Not the unkeyed digest it used to be, which anyone could test a guessed id against.
    assert expected != hashlib.sha256(b"redact-t\x00bob").hexdigest()[:32]


def test_one_key_for_two_tenants_still_gives_two_hashes() -> None:
    install_user_hash_key("redact-a", Secret(KEY))
    install_user_hash_key("redact-b", Secret(KEY))

    assert user_hash("redact-a", "bob") != user_hash("redact-b", "bob")


def test_installing_a_key_drops_the_hashes_of_the_previous_one() -> None:
    install_user_hash_key("redact-r", Secret(KEY))
    before = user_hash("redact-r", "bob")
    install_user_hash_key("redact-r", Secret("j" * 32))

    assert user_hash("redact-r", "bob") != before
    assert user_hash("redact-r", "bob") == keyed_user_hash(b"j" * 32, "redact-r", "bob")


def test_a_tenant_without_a_key_gets_a_random_one_never_the_unkeyed_digest() -> None:
    first = user_hash("redact-unkeyed", "bob")
    user_hash.cache_clear()

    assert user_hash("redact-unkeyed", "bob") == first  # stable within the process
    assert first != hashlib.sha256(b"redact-unkeyed\x00bob").hexdigest()[:32]


def test_an_id_with_a_lone_surrogate_still_hashes() -> None:
    assert len(user_hash("redact-t", "a\ud800")) == 32


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("access_token=eyJhbGciOi.eyJzdWIi.c2ln", "access_token=[redacted]"),
        ("call_id=rtc_1&accessToken=x", "call_id=[redacted]&accessToken=[redacted]"),
        # A name that may itself be a credential goes too, with or without a value.
        ("eyJhbGciOi.eyJzdWIi.c2ln", "[redacted]"),
        ("sk-proj-abc=1", "[redacted]"),
        ("a_name_longer_than_twenty_four=1", "[redacted]"),
        ("flag", "[redacted]"),
        ("", ""),
        ("a=1&&b=2", "a=[redacted]&&b=[redacted]"),
    ],
)
def test_query_values_are_redacted_and_plain_names_kept(query: str, shown: str) -> None:
    assert redact_query(query) == shown


def test_a_target_keeps_its_path() -> None:
    assert redact_target("/v1/realtime?call_id=c&access_token=t") == (
        "/v1/realtime?call_id=[redacted]&access_token=[redacted]"
    )
    assert redact_target("/v1/realtime") == "/v1/realtime"
