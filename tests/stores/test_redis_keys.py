from __future__ import annotations

from service.limits import parse_limit
from service.stores import redis_keys as keys


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first { and the next }."""
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


def test_one_users_keys_share_a_tag() -> None:
    limit = parse_limit("5/minute")

    record = keys.record_key("acme", "alice")
    bucket = keys.user_bucket_key("acme", "alice", "mint", limit)

    assert record == "tb:{acme:alice}:rec"
    assert bucket == "tb:{acme:alice}:b:mint:5/minute"
    assert hash_tag(record) == hash_tag(bucket)


def test_tenant_keys_share_a_tag() -> None:
    bucket = keys.tenant_bucket_key("acme", "mint", parse_limit("600/minute"))

    assert hash_tag(bucket) == hash_tag(keys.index_key("acme")) == "acme"


def test_braces_and_colons_in_ids_cannot_break_tags_or_collide() -> None:
    tricky = keys.record_key("acme", "}evil{:x")
    a = keys.record_key("a:b", "c")
    b = keys.record_key("a", "b:c")

    assert hash_tag(tricky) == "acme:%7Devil%7B%3Ax"
    assert a != b
    assert hash_tag(keys.record_key("acme", "x")) != hash_tag(keys.index_key("acme"))
