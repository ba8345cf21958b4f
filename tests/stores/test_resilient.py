"""FailureAwareStore: failure modes, circuit breaker and recovery, against a real server
that the tests stop and start (and a scripted primary for the breaker's edges)."""

from __future__ import annotations

import time

import pytest

from service.clock import ManualClock
from service.errors import StoreUnavailable
from service.limits import parse_limits
from service.stores.base import Admission, AdmitRequest, UserRecord
from service.stores.memory import MemoryStore
from service.stores.redis import RedisStore
from service.stores.resilient import FailureAwareStore
from tests.redis_servers import RedisServer


def request_for(tenant: str = "acme", user: str = "alice") -> AdmitRequest:
    return AdmitRequest(
        tenant=tenant,
        user_id=user,
        claimed_role="reader",
        user_limits={"reader": parse_limits(["3/minute"])},
    )


class Flaky(MemoryStore):
    """A primary that fails while `down`, counting the calls that reach it."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock=clock)
        self.down = False
        self.calls = 0

    async def admit(self, request: AdmitRequest) -> Admission:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("redis admit failed (ConnectionError)")
        return await super().admit(request)

    async def get_user(self, tenant: str, user_id: str) -> UserRecord | None:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("redis hgetall failed (ConnectionError)")
        return await super().get_user(tenant, user_id)

    async def revoked_users(self, tenant: str) -> set[str]:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("redis smembers failed (ConnectionError)")
        return await super().revoked_users(tenant)

    async def tenant_secret(self, tenant: str, name: str, candidate: str) -> str:
        self.calls += 1
        if self.down:
            raise StoreUnavailable("redis evalsha failed (ConnectionError)")
        return await super().tenant_secret(tenant, name, candidate)

    async def ping(self) -> bool:
        return not self.down


def wrap(primary: object, clock: ManualClock, degraded: list[tuple[str, str]]) -> FailureAwareStore:
    return FailureAwareStore(
        primary,  # type: ignore[arg-type]
        failure_modes={"acme": "closed", "globex": "open"},
        clock=clock,
        breaker_failures=3,
        breaker_reset_seconds=2.0,
        on_degraded=lambda tenant, reason: degraded.append((tenant, reason)),
    )


async def test_closed_mode_raises_and_open_mode_decides_locally(clock: ManualClock) -> None:
    primary = Flaky(clock)
    primary.down = True
    degraded: list[tuple[str, str]] = []
    store = wrap(primary, clock, degraded)

    with pytest.raises(StoreUnavailable):
        await store.admit(request_for("acme"))
    local = [await store.admit(request_for("globex")) for _ in range(4)]

    assert [a.allowed for a in local] == [True, True, True, False]  # the local GCRA
    assert all(a.degraded for a in local)
    assert [t for t, _ in degraded] == ["globex"] * 4  # every degraded decision
    assert degraded[0] == ("globex", "unavailable")
    assert degraded[-1] == ("globex", "circuit_open")


async def test_breaker_opens_then_lets_one_trial_through(clock: ManualClock) -> None:
    primary = Flaky(clock)
    primary.down = True
    store = wrap(primary, clock, [])

    for _ in range(5):
        with pytest.raises(StoreUnavailable):
            await store.admit(request_for())
    calls_while_open = primary.calls
    clock.advance(2.0)
    with pytest.raises(StoreUnavailable):
        await store.admit(request_for())  # the half-open trial fails: open again
    with pytest.raises(StoreUnavailable):
        await store.get_user("acme", "alice")  # fails fast, not tried

    assert calls_while_open == 3
    assert primary.calls == 4
    assert store.breaker_open
    primary.down = False
    clock.advance(2.0)
    assert (await store.admit(request_for())).allowed
    assert not store.breaker_open


async def test_ping_reports_reachability_and_closes_the_breaker(clock: ManualClock) -> None:
    primary = Flaky(clock)
    primary.down = True
    store = wrap(primary, clock, [])
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            await store.admit(request_for())

    unreachable = await store.ping()
    primary.down = False
    reachable = await store.ping()

    assert not unreachable
    assert reachable
    assert not store.breaker_open


async def test_degraded_refund_goes_to_the_local_limiter(clock: ManualClock) -> None:
    primary = Flaky(clock)
    primary.down = True
    store = wrap(primary, clock, [])
    admissions = [await store.admit(request_for("globex")) for _ in range(3)]

    await store.refund(request_for("globex"), admissions[0])

    assert (await store.admit(request_for("globex"))).allowed


async def test_a_tenant_secret_comes_from_the_primary_or_not_at_all(clock: ManualClock) -> None:
    primary = Flaky(clock)
    store = wrap(primary, clock, [])
    kept = await store.tenant_secret("globex", "user_hash_key", "from-redis")
    primary.down = True

    # Not even in mode `open`: a secret made up by one replica would differ from the others'.
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            await store.tenant_secret("globex", "user_hash_key", "made-up")

    assert kept == "from-redis"
    assert store.breaker_open  # its failures count like any other call's
    primary.down = False
    clock.advance(2.0)
    assert await store.tenant_secret("globex", "user_hash_key", "later") == "from-redis"


class CountedRedisStore(RedisStore):
    """The Redis store, counting the admissions asked of it."""

    admits = 0

    async def admit(self, request: AdmitRequest) -> Admission:
        self.admits += 1
        return await super().admit(request)


@pytest.mark.redis
async def test_redis_stopped_then_restarted(own_server: RedisServer, clock: ManualClock) -> None:
    degraded: list[tuple[str, str]] = []
    redis_store = CountedRedisStore.from_url(own_server.url, timeout_ms=100)
    assert isinstance(redis_store, CountedRedisStore)
    store = wrap(redis_store, clock, degraded)
    assert (await store.admit(request_for("globex"))).allowed
    assert await store.ping()

    own_server.stop()
    admits_before = redis_store.admits
    timings: list[float] = []
    results: list[Admission | None] = []
    for tenant in ["acme", "globex"] * 4:
        started = time.monotonic()
        try:
            results.append(await store.admit(request_for(tenant)))
        except StoreUnavailable:
            results.append(None)
        timings.append(time.monotonic() - started)
    asked_redis = redis_store.admits - admits_before
    not_ready = await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.list_users("acme", after=None, limit=10)

    own_server.start()
    clock.advance(2.0)
    recovered = await store.admit(request_for("acme"))
    ready = await store.ping()
    await store.close()

    # Each answered at once or at the 100 ms deadline, never after reconnection attempts
    # and backoffs that take seconds: a bound a loaded machine meets.
    assert max(timings) < 1.0
    assert asked_redis == 3  # then the breaker is open: the other five never wait on Redis
    assert degraded == [("globex", "unavailable")] + [("globex", "circuit_open")] * 3
    assert results[0::2] == [None] * 4  # acme: closed
    assert all(a is not None and a.degraded for a in results[1::2])  # globex: open
    assert not not_ready
    assert recovered.allowed
    assert not recovered.degraded
    assert ready


async def test_the_first_failure_names_redis_in_the_log_once(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    primary = Flaky(clock)
    primary.down = True
    store = wrap(primary, clock, [])

    with caplog.at_level("WARNING", logger="service.stores.resilient"):
        for _ in range(2):  # under the breaker's threshold: each is a 503 of its own
            with pytest.raises(StoreUnavailable):
                await store.admit(request_for("acme"))

    lines = [r.getMessage() for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert lines == [
        "redis unavailable: redis admit failed (ConnectionError) (see BROKER_REDIS_URL)"
    ]


async def test_open_mode_refuses_users_revoked_before_the_outage(clock: ManualClock) -> None:
    """Revocations are known locally: loaded (`revoked_users`), made here (`revoke`),
    published by another replica (`note_revoked`); a restoration made here lifts one."""
    primary, users = Flaky(clock), ("alice", "bob", "carol", "dave", "erin")
    for user in users:
        await primary.admit(request_for("globex", user))
    await primary.revoke("globex", "alice")  # before this replica started
    degraded: list[tuple[str, str]] = []
    store = wrap(primary, clock, degraded)
    assert await store.revoked_users("globex") == {"alice"}
    await store.revoke("globex", "bob")  # here
    await store.revoke("globex", "erin")
    await store.set_role("globex", "erin", "reader")  # and restored here
    store.note_revoked("globex", "carol")  # on another replica, told through its events

    primary.down = True
    decided = {user: await store.admit(request_for("globex", user)) for user in users}

    assert {u for u, a in decided.items() if a.revoked} == {"alice", "bob", "carol"}
    assert all(a.degraded and not a.allowed for a in decided.values() if a.revoked)
    assert [decided["dave"].allowed, decided["erin"].allowed] == [True, True]
    assert len(degraded) == 5  # every decision without Redis is counted, refusals too


async def test_the_known_revocations_survive_a_load_that_fails(clock: ManualClock) -> None:
    primary = Flaky(clock)
    await primary.admit(request_for("globex", "alice"))
    await primary.revoke("globex", "alice")
    store = wrap(primary, clock, [])
    await store.revoked_users("globex")

    primary.down = True
    with pytest.raises(StoreUnavailable):
        await store.revoked_users("globex")

    assert (await store.admit(request_for("globex", "alice"))).revoked
