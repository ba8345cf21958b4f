from __future__ import annotations

import pytest

from service.stores.redis_url import parse_redis_url


@pytest.mark.parametrize(
    ("url", "kind", "tls"),
    [
        ("redis://localhost:6379/0", "standalone", False),
        ("rediss://:pw@redis.internal:6380", "standalone", True),
        ("unix:///run/redis.sock", "standalone", False),
    ],
)
def test_standalone_urls_pass_through(url: str, kind: str, tls: bool) -> None:
    target = parse_redis_url(url)

    assert (target.kind, target.tls, target.url) == (kind, tls, url)


def test_sentinel_url() -> None:
    target = parse_redis_url("rediss+sentinel://:s%40cret@s1:26379,s2,[::1]:26380/mymaster/2")

    assert target.kind == "sentinel"
    assert target.tls
    assert target.hosts == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert target.service_name == "mymaster"
    assert target.db == 2
    assert target.password == "s@cret"
    assert "cret" not in repr(target)


def test_cluster_url() -> None:
    target = parse_redis_url("redis+cluster://user:pw@n1:7000,n2:7001")

    assert target.kind == "cluster"
    assert not target.tls
    assert target.hosts == (("n1", 7000), ("n2", 7001))
    assert (target.username, target.password) == ("user", "pw")


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "memcached://x",
        "redis+sentinel://s1:26379",
        "redis+cluster:///",
        "redis+cluster://n1:7000/3",
        "redis+sentinel://s1:port/m",
    ],
)
def test_invalid_urls(url: str) -> None:
    with pytest.raises(ValueError, match=r"Redis URL|scheme|Sentinel URL|database 0"):
        parse_redis_url(url)


def test_errors_never_echo_a_password() -> None:
    with pytest.raises(ValueError, match="service name") as caught:
        parse_redis_url("redis+sentinel://:topsecret@s1:26379")

    assert "topsecret" not in str(caught.value)
