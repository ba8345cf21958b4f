"""Redis key names (pure). Every key starts with `tb:` and carries a hash tag:

    tb:{<tenant>:<user>}:rec                    the user's record (hash, durable, no TTL)
    tb:{<tenant>:<user>}:b:<scope>:<limit>      a per-user GCRA bucket (TAT, expires when full)
    tb:{<tenant>}:b:<scope>:<limit>             a tenant-wide GCRA bucket
    tb:{<tenant>}:users                         the tenant's user ids (sorted set, durable)
    tb:{<tenant>}:revoked                       the tenant's revoked user ids (set, durable)
    tb:{<tenant>}:secret:<name>                 a generated tenant secret (`user_hash` key)

One user's keys share the slot of `{tenant:user}`, so one script sees all of them on
Redis Cluster; tenant-wide keys share the slot of `{tenant}`. Tenant, user id and scope
are percent-encoded (`{`, `}`, `:` and `%` included), so no id can end a hash tag early
or make two users' keys collide.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from service.limits import Limit

PREFIX = "tb:"


@lru_cache(maxsize=8192)
def _part(value: str) -> str:
    # Cached: every admission names the same tenant and scope, and a user's keys several
    # times; quoting is most of what building a key costs.
    return quote(value, safe="")


def quote_part(value: str) -> str:
    """An id as it appears in a key (or a hash field): percent-encoded, `:` included."""
    return _part(value)


def user_tag(tenant: str, user_id: str) -> str:
    return f"{PREFIX}{{{_part(tenant)}:{_part(user_id)}}}"


def tenant_tag(tenant: str) -> str:
    return f"{PREFIX}{{{_part(tenant)}}}"


def record_key(tenant: str, user_id: str) -> str:
    return f"{user_tag(tenant, user_id)}:rec"


def user_bucket_key(tenant: str, user_id: str, scope: str, limit: Limit) -> str:
    return f"{user_tag(tenant, user_id)}:b:{_part(scope)}:{limit.text}"


def tenant_bucket_key(tenant: str, scope: str, limit: Limit) -> str:
    return f"{tenant_tag(tenant)}:b:{_part(scope)}:{limit.text}"


def index_key(tenant: str) -> str:
    return f"{tenant_tag(tenant)}:users"


def revoked_key(tenant: str) -> str:
    return f"{tenant_tag(tenant)}:revoked"
