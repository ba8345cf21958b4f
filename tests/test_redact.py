from __future__ import annotations

import hashlib

from service.redact import Secret, mask, user_hash


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


def test_user_hash_is_sha256_of_tenant_and_user_whether_cached_or_not() -> None:
    expected = hashlib.sha256(b"t\x00bob").hexdigest()[:32]
    user_hash.cache_clear()
    assert user_hash("t", "bob") == expected  # computed
    assert user_hash("t", "bob") == expected  # cached
    assert user_hash.cache_info().hits >= 1
    assert user_hash.__wrapped__("t", "bob") == expected
