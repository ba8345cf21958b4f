"""The redis-py side of the Redis stores: building a client for a URL, the one
`RedisConnection` a replica shares between its stores, running Lua scripts by SHA,
pub/sub, and translating every redis-py failure into StoreUnavailable.

Fault behaviour is decided here. Each command has one deadline (`timeout_ms`, 250 ms by
default) covering connect and reply; redis-py's own retries are off, so a dead Redis
costs one short wait per call and the circuit breaker (stores.resilient) stops even that.

Scripts on standalone Redis and Sentinel (every admission) skip redis-py's command
machinery: `run_script` packs the command with hiredis and sends it on a pooled
connection itself (see `_evalsha_on_pool`). Cluster keeps redis-py's general path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from typing import Any, TypeVar, cast

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError

from service.clock import Clock
from service.errors import StoreUnavailable
from service.stores.redis_url import RedisTarget, parse_redis_url

# redis-py types `Sentinel.__init__` from 8.2 on and not before (the floor is 6.0): calling
# it through a typed name needs no `type: ignore`, which would be unused at one end.
_new_sentinel: Callable[..., Sentinel] = Sentinel

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is a dependency, but redis-py runs without
    _hiredis_pack = None

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


def _driver_info() -> dict[str, Any]:
    """What CLIENT SETINFO reports, given once. Without it, redis-py >= 7 looks its own
    version up with `importlib.metadata` in every new Connection's constructor: a
    directory scan of site-packages (~5 ms) on the event loop whenever the pool grows or
    reconnects (found by bench/debug_serve.py's watchdog). Older versions take the
    version once at import and have no `driver_info`."""
    try:
        # Imported by name: the module does not exist at the floor, where mypy could not
        # find it either.
        driver_info = importlib.import_module("redis.driver_info")
    except ImportError:  # pragma: no cover - redis-py < 7
        return {}
    info = driver_info.DriverInfo(name="redis-py", lib_version=metadata.version("redis"))
    return {"driver_info": info}


def create_client(
    target: RedisTarget, *, timeout_ms: int, max_connections: int, encoding_errors: str = "strict"
) -> tuple[Client, list[Redis]]:
    """A client for the target, and the helper clients to close with it (Sentinel's
    connections to the sentinels). Nothing connects before the first command.
    `encoding_errors`: how replies that are not UTF-8 are decoded (pub/sub: "replace")."""
    seconds = timeout_ms / 1000
    common: dict[str, Any] = {
        "max_connections": max_connections,
        # No socket timeout: every call runs under `guarded`, whose deadline is as long
        # and starts earlier, so redis-py's would never fire first; it only cost a task
        # per send (asyncio.wait_for) and a timer per read. None, since redis-py's
        # default is 5 s.
        "socket_timeout": None,
        "socket_connect_timeout": seconds,
        # No retries: a retry against a dead server only doubles the wait, and many
        # replicas retrying together is the storm we want to avoid.
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
        "decode_responses": True,
        "encoding_errors": encoding_errors,
        # RESP2, said explicitly: redis-py 8 speaks RESP3 by default (a HELLO round trip on
        # every new connection, other reply shapes), 6 and 7 speak RESP2. The store's replies
        # and the raw EVALSHA path are read as RESP2 at every version we support.
        "protocol": 2,
        **_driver_info(),
    }
    if target.kind == "standalone":
        return Redis.from_url(target.url, **common), []
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "sentinel":
        sentinel_kwargs = {
            k: common[k] for k in ("socket_timeout", "socket_connect_timeout", "protocol")
        }
        sentinel_kwargs["retry"] = Retry(NoBackoff(), 0)
        sentinel_kwargs.update(_driver_info())
        if target.tls:
            sentinel_kwargs["ssl"] = True
        sentinel = _new_sentinel(
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


# What a Redis call may fail with, every one reported as StoreUnavailable.
_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


def _unavailable(what: str, exc: BaseException) -> StoreUnavailable:
    # The operation and the failure's type only: redis-py messages may carry addresses
    # or arguments, and callers log this text.
    return StoreUnavailable(f"redis {what} failed ({type(exc).__name__})")


async def guarded(
    what: str, seconds: float, slots: asyncio.Semaphore, call: Callable[[], Awaitable[T]]
) -> T:
    """Run one Redis call under its deadline; any failure becomes StoreUnavailable.

    `slots` bounds the calls in flight to the pool's size: a burst of mints queues for
    a connection (within the same deadline) instead of failing on an exhausted pool.
    (A single timer for all of a store's calls saved ~2.5 µs of a ~500 µs mint, under
    1%: not worth re-implementing asyncio.timeout's cancellation rules, so it went.)"""
    try:
        async with asyncio.timeout(seconds), slots:
            return await call()
    except _FAILURES as exc:
        raise _unavailable(what, exc) from exc


async def run_script(
    client: Client, script: LuaScript, keys: Sequence[str], args: Sequence[str | int]
) -> Any:
    """EVALSHA, and on NOSCRIPT (a restarted or flushed server) one EVAL, which runs the
    script and puts it back in that server's cache for the next EVALSHA."""
    try:
        if isinstance(client, Redis):
            return await _evalsha_on_pool(client, script, keys, args)
        return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await client.execute_command("EVAL", script.body, len(keys), *keys, *args)


async def _evalsha_on_pool(
    client: Redis, script: LuaScript, keys: Sequence[str], args: Sequence[str | int]
) -> Any:
    """What `client.execute_command("EVALSHA", ...)` does, minus the parts these clients
    never use (retries, per-socket timeouts, response callbacks, observability hooks):
    measured at ~63 → ~33 µs of CPU per admission, ~6% of a ~500 µs mint
    (bench/README.md), so it stays. It uses Connection's public methods only
    (`pack_command`, `send_packed_command`, `read_response`), on redis-py ≥ 6.0. The
    reply is the same object: EVALSHA has no response callback, and the connection's own
    parser decodes it.

    A connection whose reply was not read to the end would hand that reply to the next
    command, so on any failure but an error reply (read whole: the connection is in step)
    it is disconnected before going back to the pool, cancellation (our deadline) included.
    """
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    pool = client.connection_pool
    # Packed before a connection is taken: an argument that cannot be encoded fails here.
    # hiredis encodes str as strict UTF-8, redis-py's default; without hiredis, or for a
    # URL that asks for another encoding, the connection's own packer is used.
    packed = None
    if _hiredis_pack is not None and _encodes_utf8(pool):
        packed = _hiredis_pack(command)
    conn = await pooled_connection(pool)
    try:
        if packed is None:
            packed = conn.pack_command(*command)
        await conn.send_packed_command(packed)
        return await conn.read_response()
    except ResponseError:
        raise
    except BaseException:
        await conn.disconnect(nowait=True)
        raise
    finally:
        await pool.release(conn)


async def pooled_connection(pool: ConnectionPool) -> Any:
    """`pool.get_connection()`: typed by redis-py 6, untyped since (a `type: ignore` would be
    unused at one end), so called through a typed name."""
    get: Callable[[], Awaitable[Any]] = pool.get_connection
    return await get()


def awaitable(result: Any) -> Awaitable[Any]:
    """A command's result on an asyncio client. redis-py 6 types commands `Awaitable[T] |
    T` (one class for both clients), later releases `Awaitable[T]`: this reads the same at
    both ends."""
    return cast(Awaitable[Any], result)


def _encodes_utf8(pool: ConnectionPool) -> bool:
    options = pool.connection_kwargs
    return bool(
        options.get("encoding", "utf-8") == "utf-8"
        and options.get("encoding_errors", "strict") == "strict"
    )


class Subscriber:
    """One pub/sub subscription (redis-py's PubSub on a connection of its own), its
    failures translated to StoreUnavailable. On a Cluster, classic pub/sub reaches every
    node, so it subscribes on one seed node: the `attempt`-th, to move on after a node
    failed. Its connection decodes with "replace": a message that is not UTF-8 arrives
    with U+FFFD in place of the bad bytes, where a strict decode would fail inside
    redis-py's reader and end the subscription (and, with hiredis, lose the next one)."""

    def __init__(self, target: RedisTarget, *, timeout_ms: int) -> None:
        self._target = target
        self._timeout_ms = timeout_ms
        self._client: Redis | None = None
        self._helpers: list[Redis] = []
        self._pubsub: Any = None

    def _connect(self, attempt: int) -> Redis:
        # Typed variables, not bare returns: redis-py 6's classes narrow to Any under
        # isinstance (they have an untyped base), later ones to themselves.
        connection: Redis
        target = self._target
        if target.kind == "cluster":
            host, port = target.hosts[attempt % len(target.hosts)]
            connection = Redis(
                host=host,
                port=port,
                username=target.username,
                password=target.password,
                ssl=target.tls,
                decode_responses=True,
                encoding_errors="replace",
                socket_connect_timeout=self._timeout_ms / 1000,
                retry=Retry(NoBackoff(), 0),
                protocol=2,  # as every other connection (create_client)
                **_driver_info(),
            )
            return connection
        client, helpers = create_client(
            target, timeout_ms=self._timeout_ms, max_connections=2, encoding_errors="replace"
        )
        assert isinstance(client, Redis)  # standalone and Sentinel give a plain client
        self._helpers = helpers
        connection = client
        return connection

    async def subscribe(self, channels: list[str], attempt: int = 0) -> None:
        try:
            self._client = self._connect(attempt)
            self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            async with asyncio.timeout(self._timeout_ms / 1000 * 4):
                await self._pubsub.subscribe(*channels)
        except _FAILURES as exc:
            raise _unavailable("subscribe", exc) from exc

    async def messages(self) -> AsyncIterator[str]:
        """Each message's text, whatever it holds: what it means is the caller's to check."""
        try:
            async for message in self._pubsub.listen():
                if message.get("type") == "message":
                    yield str(message["data"])
        except _FAILURES as exc:
            raise _unavailable("subscription", exc) from exc

    async def close(self) -> None:
        for closing in (
            self._pubsub.aclose() if self._pubsub is not None else None,
            self._client.aclose() if self._client is not None else None,
            *(helper.aclose() for helper in self._helpers),
        ):
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing


class RedisConnection:
    """A replica's one connection to Redis, shared by its stores (rate limits and call
    control): the client and its pool (with Sentinel's helper clients), one bound on the
    calls in flight, one deadline per call, the cluster's first initialize done once,
    scripts run by SHA, pub/sub subscriptions, and one `close`. The stores keep their own
    keys and scripts; the composition root (web.app) makes one per app and closes it
    after both stores. Nothing connects before the first call.

    `clock`: tests only. When given, scripts decide on it (`script_now`) instead of
    Redis's TIME, so that contract suites move time without sleeping; production leaves
    it None, so that every replica decides on the one clock of Redis.
    """

    def __init__(
        self,
        target: RedisTarget,
        *,
        timeout_ms: int = 250,
        max_connections: int = 64,
        clock: Clock | None = None,
    ) -> None:
        self.target = target
        self.cluster = target.kind == "cluster"
        self.clock = clock
        self.client, self._helpers = create_client(
            target, timeout_ms=timeout_ms, max_connections=max_connections
        )
        self._timeout_ms = timeout_ms
        self._deadline = timeout_ms / 1000
        self._slots = asyncio.Semaphore(max_connections)
        self._init_lock = asyncio.Lock()
        self._uninitialized_cluster = self.client if isinstance(self.client, RedisCluster) else None
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout_ms: int = 250,
        max_connections: int = 64,
        clock: Clock | None = None,
    ) -> RedisConnection:
        """redis:// rediss:// unix:// (standalone), redis+sentinel:// rediss+sentinel://,
        redis+cluster:// rediss+cluster:// (see stores.redis_url). `max_connections`:
        Redis calls in flight from this replica, all stores together (more wait their
        turn, within the timeout)."""
        target = parse_redis_url(url)
        return cls(target, timeout_ms=timeout_ms, max_connections=max_connections, clock=clock)

    async def call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One Redis call under the deadline and the bound (see `guarded`)."""
        if self._uninitialized_cluster is None:
            return await guarded(what, self._deadline, self._slots, call)

        async def run() -> T:
            if self._uninitialized_cluster is not None:
                await self._initialize_cluster(self._uninitialized_cluster)
            return await call()

        return await guarded(what, self._deadline, self._slots, run)

    async def _initialize_cluster(self, cluster: RedisCluster) -> None:
        # redis-py's cluster client initializes itself at its first command, but many
        # first commands at once race in there; one explicit initialize avoids that.
        async with self._init_lock:
            if self._uninitialized_cluster is not None:
                await cluster.initialize()
                self._uninitialized_cluster = None

    async def run(self, script: LuaScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """One script, by SHA (see `run_script`), as one call."""
        return await self.call(script.name, lambda: run_script(self.client, script, keys, args))

    def script_now(self) -> str:
        """The time argument of a script: "" (the script reads Redis's TIME), or the test
        clock's, in microseconds."""
        return "" if self.clock is None else repr(self.clock() * 1e6)

    async def now_us(self) -> float:
        """Redis's time (or the test clock's), in microseconds."""
        if self.clock is not None:
            return self.clock() * 1e6
        seconds, micros = await self.call("time", lambda: self.client.time())
        return float(seconds) * 1e6 + float(micros)

    def subscriber(self) -> Subscriber:
        """A new subscription, on a connection of its own (pub/sub holds it)."""
        return Subscriber(self.target, timeout_ms=self._timeout_ms)

    async def close(self) -> None:
        """Close the client and Sentinel's helpers, each even when another fails; a second
        close does nothing."""
        if self._closed:
            return
        self._closed = True
        async with contextlib.AsyncExitStack() as stack:
            for helper in self._helpers:
                stack.push_async_callback(helper.aclose)
            stack.push_async_callback(self.client.aclose)
