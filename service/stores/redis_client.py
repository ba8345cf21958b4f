"""The redis-py side of the Redis store: building a client for a URL, running Lua
scripts by SHA, and translating every redis-py failure into StoreUnavailable.

Fault behaviour is decided here. Each command has one deadline (`timeout_ms`, 250 ms by
default) covering connect and reply; redis-py's own retries are off, so a dead Redis
costs one short wait per call and the circuit breaker (stores.resilient) stops even that.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from service.errors import StoreUnavailable
from service.stores.redis_url import RedisTarget

Client = Redis | RedisCluster
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    body: str
    sha: str


def load_script(name: str, *, with_gcra: bool = True) -> LuaScript:
    """Read stores/lua/<name>.lua, with the shared GCRA prelude in front."""
    folder = resources.files("service.stores") / "lua"
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    if with_gcra:
        body = (folder / "gcra.lua").read_text(encoding="utf-8") + "\n" + body
    return LuaScript(name, body, hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest())


def create_client(
    target: RedisTarget, *, timeout_ms: int, max_connections: int
) -> tuple[Client, list[Redis]]:
    """A client for the target, and the helper clients to close with it (Sentinel's
    connections to the sentinels). Nothing connects before the first command."""
    seconds = timeout_ms / 1000
    common: dict[str, Any] = {
        "max_connections": max_connections,
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        # No retries: a retry against a dead server only doubles the wait, and many
        # replicas retrying together is the storm we want to avoid.
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "decode_responses": True,
    }
    if target.kind == "standalone":
        return Redis.from_url(target.url, **common), []
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "sentinel":
        sentinel_kwargs = {k: common[k] for k in ("socket_timeout", "socket_connect_timeout")}
        sentinel_kwargs["retry"] = Retry(NoBackoff(), 0)
        if target.tls:
            sentinel_kwargs["ssl"] = True
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.hosts),
            sentinel_kwargs=sentinel_kwargs,
            db=target.db,
            ssl=target.tls,
            **auth,
            **common,
        )
        assert target.service_name is not None  # parse_redis_url guarantees it
        master: Redis = sentinel.master_for(target.service_name)
        return master, list(sentinel.sentinels)
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        ssl=target.tls,
        **auth,
        **common,
    )
    return cluster, []


async def guarded(
    what: str, seconds: float, slots: asyncio.Semaphore, call: Callable[[], Awaitable[T]]
) -> T:
    """Run one Redis call under its deadline; any failure becomes StoreUnavailable.

    `slots` bounds the calls in flight to the pool's size: a burst of mints queues for
    a connection (within the same deadline) instead of failing on an exhausted pool.
    The message names the operation and the failure's type only: redis-py messages may
    carry addresses or arguments, and callers log this text."""
    try:
        async with asyncio.timeout(seconds), slots:
            return await call()
    except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"redis {what} failed ({type(exc).__name__})") from exc


async def run_script(
    client: Client, script: LuaScript, keys: Sequence[str], args: Sequence[str | int]
) -> Any:
    """EVALSHA, and on NOSCRIPT (a restarted or flushed server) one EVAL, which runs the
    script and puts it back in that server's cache for the next EVALSHA."""
    try:
        return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await client.execute_command("EVAL", script.body, len(keys), *keys, *args)
