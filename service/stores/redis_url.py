"""BROKER_REDIS_URL parsing (pure): which kind of deployment, which hosts.

    redis://[[user]:password@]host[:port][/db]        standalone (also rediss://, unix://)
    redis+sentinel://[[user]:password@]h1:p1,h2:p2/service_name[/db]   (also rediss+sentinel://)
    redis+cluster://[[user]:password@]h1:p1[,h2:p2...]                  (also rediss+cluster://)

Standalone URLs are handed to redis-py unchanged. For Sentinel, the password is the
one of the Redis servers it points at (the sentinels themselves are asked without one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

Kind = Literal["standalone", "sentinel", "cluster"]

_DEFAULT_PORT = {"standalone": 6379, "sentinel": 26379, "cluster": 6379}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    kind: Kind
    # The URL as given, for standalone (redis-py parses it itself).
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    tls: bool = False
    username: str | None = None
    password: str | None = None
    service_name: str | None = None
    db: int = 0

    def __repr__(self) -> str:
        # The URL may carry a password: never print it.
        return f"RedisTarget(kind={self.kind!r}, hosts={self.hosts!r}, tls={self.tls})"


def parse_redis_url(url: str) -> RedisTarget:
    """Raise ValueError (without the URL's text, which may hold a password) when the URL
    is not one of the documented forms."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError("the Redis URL has no scheme")
    if scheme in ("redis", "rediss", "unix"):
        return RedisTarget(kind="standalone", url=url, tls=scheme == "rediss")
    kinds: dict[str, tuple[Kind, bool]] = {
        "redis+sentinel": ("sentinel", False),
        "rediss+sentinel": ("sentinel", True),
        "redis+cluster": ("cluster", False),
        "rediss+cluster": ("cluster", True),
    }
    if scheme not in kinds:
        raise ValueError(f"unsupported Redis URL scheme {scheme!r}")
    kind, tls = kinds[scheme]
    rest = rest.split("?", 1)[0]
    userinfo, at, hostpart = rest.rpartition("@")
    username = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    hostlist, _, path = hostpart.partition("/")
    hosts = tuple(_host(h, _DEFAULT_PORT[kind]) for h in hostlist.split(",") if h)
    if not hosts:
        raise ValueError(f"the {kind} Redis URL names no host")
    segments = [s for s in path.split("/") if s]
    service_name = None
    db = 0
    if kind == "sentinel":
        if not segments:
            raise ValueError("a Sentinel URL needs the service name: .../service_name[/db]")
        service_name = unquote(segments.pop(0))
    if segments:
        if len(segments) > 1 or not segments[0].isdigit():
            raise ValueError(f"the {kind} Redis URL has an invalid path")
        db = int(segments[0])
    if kind == "cluster" and db:
        raise ValueError("Redis Cluster has only database 0")
    return RedisTarget(kind, url, hosts, tls, username, password, service_name, db)


def _host(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [ipv6]:port
        host, _, port = text[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError("a Redis URL host is empty")
    if port and not port.isdigit():
        raise ValueError("a Redis URL port is not a number")
    return host, int(port) if port else default_port
