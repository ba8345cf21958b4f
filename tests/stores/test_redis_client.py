"""stores.redis_client: `guarded` (the deadline and error mapping of every Redis call), and
EVALSHA on a pooled connection against redis-py's `execute_command`, plus what that fast
path must never do: leave a half-read reply on a pooled connection."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import hiredis
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from service.errors import StoreUnavailable
from service.stores import redis_client
from service.stores.redis_client import LuaScript, create_client, guarded, run_script
from service.stores.redis_url import parse_redis_url
from tests.eventually import eventually
from tests.redis_servers import RedisServer, command_calls

# --- guarded -----------------------------------------------------------------------------


def store_guard(
    seconds: float, slots: asyncio.Semaphore
) -> Callable[[str, Callable[[], Awaitable[Any]]], Coroutine[Any, Any, Any]]:
    """A store's calls: one deadline and one pool of slots for all of them."""

    async def guard(what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await guarded(what, seconds, slots, call)

    return guard


def _outcome_of(result: Any) -> tuple[str, str]:
    return ("value", repr(result))


async def _run(call: Callable[[], Awaitable[Any]]) -> tuple[str, str]:
    try:
        return _outcome_of(await call())
    except BaseException as exc:  # the outcome is what is compared
        cause = exc.__cause__
        return (type(exc).__name__, f"{exc} <- {type(cause).__name__ if cause else None}")


async def _sleep_then(seconds: float, result: Any = "done") -> Any:
    await asyncio.sleep(seconds)
    return result


async def _raise(exc: BaseException) -> Any:
    await asyncio.sleep(0)
    raise exc


CASES: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
    ("returns", lambda: _sleep_then(0, [1, "two"])),
    ("returns after a wait", lambda: _sleep_then(0.02)),
    ("redis error", lambda: _raise(RedisConnectionError("host:6379 refused"))),
    ("os error", lambda: _raise(OSError("unreachable"))),
    ("timeout error", lambda: _raise(TimeoutError())),
    ("other error passes through", lambda: _raise(ValueError("bad argument"))),
    ("past the deadline", lambda: _sleep_then(1.0)),
    ("swallows the cancellation", lambda: _swallow_cancel()),
]
EXPECTED = {
    "returns": ("value", "[1, 'two']"),
    "returns after a wait": ("value", "'done'"),
    "redis error": ("StoreUnavailable", "redis op failed (ConnectionError) <- ConnectionError"),
    "os error": ("StoreUnavailable", "redis op failed (OSError) <- OSError"),
    "timeout error": ("StoreUnavailable", "redis op failed (TimeoutError) <- TimeoutError"),
    "other error passes through": ("ValueError", "bad argument <- None"),
    "past the deadline": ("StoreUnavailable", "redis op failed (TimeoutError) <- TimeoutError"),
    "swallows the cancellation": ("value", "'swallowed'"),
}


async def _swallow_cancel() -> str:
    try:
        await asyncio.sleep(1.0)
    except asyncio.CancelledError:
        return "swallowed"
    return "slept"


@pytest.mark.parametrize(("name", "call"), CASES, ids=[name for name, _ in CASES])
async def test_guarded_maps_every_outcome(name: str, call: Callable[[], Awaitable[Any]]) -> None:
    outcome = await _run(lambda: guarded("op", 0.1, asyncio.Semaphore(4), call))

    assert outcome == EXPECTED[name]
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_outside_cancellation_stays_a_cancellation() -> None:
    guard = store_guard(5.0, asyncio.Semaphore(1))
    task = asyncio.create_task(guard("op", lambda: _sleep_then(5.0)))
    await asyncio.sleep(0.01)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_guard_deadline_covers_waiting_for_a_slot() -> None:
    guard = store_guard(0.1, asyncio.Semaphore(1))
    holder = asyncio.create_task(guard("first", lambda: _sleep_then(0.05)))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(StoreUnavailable, match=r"redis second failed \(TimeoutError\)"):
        await guard("second", lambda: _sleep_then(0.08))  # 0.05 waiting + 0.08 > 0.1
    elapsed = loop.time() - started

    assert await holder == "done"
    # Without the slot wait under the deadline the call would succeed (0.08 < 0.1). Cut
    # at the deadline: not refused at once for want of a slot, and not left to run on.
    assert 0.09 < elapsed < 1.0


async def test_guard_many_calls_each_its_own_deadline() -> None:
    """Calls of mixed lengths, started at different times: each one that outlives its own
    deadline, and only those, times out; afterwards nothing is left running."""
    guard = store_guard(0.1, asyncio.Semaphore(100))
    durations = [0.0, 0.15, 0.01, 0.2, 0.05, 0.12, 0.0, 0.03] * 4

    async def one(i: int, duration: float) -> str:
        await asyncio.sleep(0.005 * (i % 5))  # staggered starts
        try:
            return str(await guard("op", lambda: _sleep_then(duration, i)))
        except StoreUnavailable:
            return "timeout"

    results = await asyncio.gather(*(one(i, d) for i, d in enumerate(durations)))

    assert results == [("timeout" if d > 0.1 else str(i)) for i, d in enumerate(durations)]
    assert asyncio.all_tasks() == {asyncio.current_task()}


# --- EVALSHA on a pooled connection against execute_command --------------------------------

REPLIES = [
    "return {'ok', 'reader', 0, 1, 1, 4, '1.2e7', '0', '1.7e15'}",
    "return {}",
    "return 42",
    "return -7",
    "return 'héllo ✓'",
    "return ARGV",
    "return KEYS",
    "return {1, {2, {'three', false}}, 'x'}",
    "return false",
    "return redis.status_reply('FINE')",
    "return redis.error_reply('ERR refused by script')",
    "return redis.call('HGETALL', KEYS[1])",
    "error('boom')",
]
KEYS = ["tb:{acme:al%3Ace}:rec", "tb:{acme}:users"]
ARGS: list[str | int] = ["", 1, "ünïcode ✓", 0, "", -12, "a\x1fb\x1fc", "\r\n$3\r\n"]


async def _command(client: Redis, *args: str | int) -> Any:
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


@pytest.fixture
async def client(clean_redis: RedisServer) -> AsyncIterator[Redis]:
    made, _ = create_client(parse_redis_url(clean_redis.url), timeout_ms=2000, max_connections=4)
    assert isinstance(made, Redis)
    await _command(made, "HSET", KEYS[0], "id", "al:ce", "name", "Ålice")
    yield made
    await made.aclose()


async def _outcome(call: Callable[[], Awaitable[Any]]) -> tuple[str, Any]:
    try:
        return ("value", await call())
    except ResponseError as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.redis
@pytest.mark.parametrize("hiredis_packer", [True, False], ids=["hiredis", "redis-py-packer"])
@pytest.mark.parametrize("body", REPLIES)
async def test_fast_evalsha_replies_as_execute_command(
    client: Redis, body: str, hiredis_packer: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not hiredis_packer:  # as in an environment without hiredis
        monkeypatch.setattr(redis_client, "_hiredis_pack", None)
    script = LuaScript("t", body, _sha(body))
    await _command(client, "SCRIPT", "LOAD", body)

    general = await _outcome(
        lambda: _command(client, "EVALSHA", script.sha, len(KEYS), *KEYS, *ARGS)
    )
    fast = await _outcome(lambda: run_script(client, script, KEYS, ARGS))

    assert fast == general
    assert fast[0] == ("ResponseError" if "error" in body else "value")


def _sha(body: str) -> str:
    return hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()


PACK_CASES: list[tuple[str | int, ...]] = [
    ("EVALSHA", "0" * 40, 2, *KEYS, *ARGS),
    ("EVALSHA", "f" * 40, 0),
    ("EVALSHA", "a" * 40, 1, "k", 2**62, -(2**62), "", "x" * 10_000),
]


def _new_connection(pool: Any) -> Any:
    """`make_connection()` is typed by redis-py 6, not since: a `type: ignore` would be
    unused at one end."""
    return pool.make_connection()


@pytest.mark.parametrize("command", PACK_CASES)
def test_hiredis_packs_as_redis_py(command: tuple[str | int, ...]) -> None:
    connection = _new_connection(Redis().connection_pool)
    packed: Any = command  # hiredis's stub types a 1-tuple
    assert hiredis.pack_command(packed) == b"".join(connection.pack_command(*command))


@pytest.mark.redis
async def test_noscript_recovers_on_the_fast_path(client: Redis) -> None:
    script = LuaScript("t", "return ARGV[1]", _sha("return ARGV[1]"))
    await _command(client, "SCRIPT", "FLUSH")

    first = await run_script(client, script, [], ["one"])
    second = await run_script(client, script, [], ["two"])

    assert (first, second) == ("one", "two")
    assert await _command(client, "SCRIPT", "EXISTS", script.sha) == [1]


@pytest.mark.redis
async def test_error_reply_keeps_the_connection(client: Redis) -> None:
    script = LuaScript("t", "error('boom')", _sha("error('boom')"))
    await run_script(client, LuaScript("p", "return 1", _sha("return 1")), [], [])
    connection = client.connection_pool._available_connections[0]

    with pytest.raises(ResponseError, match="boom"):
        await run_script(client, script, [], [])

    assert connection.is_connected  # a complete error reply: still in step
    assert client.connection_pool._available_connections == [connection]


# --- a timeout mid-reply must not poison the pool ---------------------------------------


class _HalfReplyServer:
    """Speaks just enough RESP: +OK to anything but EVALSHA; to EVALSHA a two-element
    array, except on the first connection, which gets half of it and then silence."""

    def __init__(self) -> None:
        self.connections = 0
        self.first_closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                command = await _read_command(reader)
                if command is None:
                    break
                if command[0].upper() != b"EVALSHA":
                    writer.write(b"+OK\r\n")
                elif number == 1:
                    writer.write(b"*2\r\n$2\r\nok\r\n")  # ... and the second element never
                else:
                    writer.write(b"*2\r\n$2\r\nok\r\n$" + b"%d\r\n%s\r\n" % (
                        len(command[-1]), command[-1]))  # fmt: skip
                await writer.drain()
        finally:
            if number == 1:
                self.first_closed.set()
            writer.close()


async def _read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    header = await reader.readline()
    if not header:
        return None
    parts = []
    for _ in range(int(header[1:])):
        size = int((await reader.readline())[1:])
        parts.append((await reader.readexactly(size + 2))[:-2])
    return parts


async def test_timeout_mid_reply_then_the_next_call_gets_its_own_reply() -> None:
    fake = _HalfReplyServer()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client, _ = create_client(
        parse_redis_url(f"redis://127.0.0.1:{port}"), timeout_ms=100, max_connections=1
    )
    guard = store_guard(0.1, asyncio.Semaphore(1))
    script = LuaScript("t", "return ARGV[1]", _sha("return ARGV[1]"))
    try:
        with pytest.raises(StoreUnavailable, match=r"\(TimeoutError\)"):
            await guard("admit", lambda: run_script(client, script, ["k"], ["first"]))
        await asyncio.wait_for(fake.first_closed.wait(), 1.0)  # the client hung up
        reply = await guard("admit", lambda: run_script(client, script, ["k"], ["second"]))
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()

    assert reply == ["ok", "second"]
    assert fake.connections == 2  # one pool slot: the broken connection was released


@pytest.mark.redis
async def test_the_client_speaks_resp2_at_every_redis_py_version(client: Redis) -> None:
    # redis-py 8 would say HELLO 3 on connect (RESP3 by default); the store reads RESP2.
    info = await _command(client, "CLIENT", "INFO")

    assert " resp=2 " in f" {info.strip()} "


@pytest.mark.redis
async def test_frozen_server_then_stale_reply_is_not_read_by_the_next_call(
    own_server: RedisServer,
) -> None:
    client, _ = create_client(parse_redis_url(own_server.url), timeout_ms=100, max_connections=1)
    assert isinstance(client, Redis)
    guard = store_guard(0.1, asyncio.Semaphore(1))
    script = LuaScript("t", "return ARGV[1]", _sha("return ARGV[1]"))
    setup = store_guard(5.0, asyncio.Semaphore(1))  # connecting is not under test
    await setup("load", lambda: _command(client, "SCRIPT", "LOAD", script.body))
    assert own_server.process is not None
    os.kill(own_server.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(StoreUnavailable):
            await guard("admit", lambda: run_script(client, script, [], ["stale"]))
    finally:
        os.kill(own_server.process.pid, signal.SIGCONT)
    # The server runs the timed-out call now, and its reply waits on the pooled connection.
    with own_server.client() as admin:
        await eventually(
            lambda: command_calls(admin).get("evalsha", 0) == 1,
            seconds=5,
            what="the timed-out EVALSHA run once the server wakes",
        )

    replies = [
        await guard("admit", functools.partial(run_script, client, script, [], [word]))
        for word in "ab"
    ]
    await client.aclose()

    assert replies == ["a", "b"]


REDIS_PY_7 = int(__import__("importlib.metadata").metadata.version("redis").split(".")[0]) >= 7


@pytest.mark.skipif(not REDIS_PY_7, reason="only redis-py >= 7 looks its version up per connection")
@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1/0", "redis+sentinel://127.0.0.1:1/mymaster"], ids=str
)
def test_a_new_connection_does_not_look_up_the_library_version(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redis-py >= 7 would scan site-packages (importlib.metadata) in every new
    # Connection, on the event loop; create_client gives the version once, up front.
    import importlib.metadata

    client, helpers = create_client(parse_redis_url(url), timeout_ms=100, max_connections=4)

    def scan(name: str) -> str:
        raise AssertionError(f"importlib.metadata.version({name!r}) on a new connection")

    monkeypatch.setattr(importlib.metadata, "version", scan)
    assert isinstance(client, Redis)
    pools = [client.connection_pool, *(helper.connection_pool for helper in helpers)]
    for pool in pools:
        connection = _new_connection(pool)
        assert connection.driver_info is not None
        assert connection.driver_info.lib_version == redis_version()


def redis_version() -> str:
    import redis

    return str(redis.__version__)
