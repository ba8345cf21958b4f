"""Supervising calls for their whole life, whatever happens to the replica that placed them
(README "Call control").

Per call, one task reads its sideband (`_read`); everything periodic is one scheduler per
replica (`_schedule`), whatever the number of calls: deadlines from a heap, usage and
heartbeats in one batch per interval, orphans claimed in batches, the sidebands'
keepalive pings in rounds (`sideband.Keepalive`). Nothing slow (Redis, upstream HTTP)
runs on a call's event path (`state.CallState.on_text`).

The life of a supervised call:

- placed here (`start`), or adopted: another replica stopped renewing its heartbeat
  (crash, OOM, partition) or handed it over (SIGTERM), and this one claimed the record;
- its sideband is joined, and joined again with backoff when it drops (or stops
  answering pings: its path died silently); a call whose sideband cannot be joined
  within `rejoin_seconds` is ended;
- it is acted on (reverts, hangups) only while this replica knows its lease is its own:
  one cut off from Redis for a whole lease TTL holds back what it would do until a
  renewal tells it whose the call is (`leases.Leases`);
- it ends when upstream says it is over (its sideband closes and cannot be joined: the
  call is gone; a GPT-Live session also says `session.closed`), or when the broker ends
  it (deadline, budget, revocation, admin, a forbidden change): a Realtime call is hung
  up over REST, a GPT-Live session is sent `session.close` on its sideband (over REST
  too when its sideband is not joined, service.calls.ending). An ending
  that fails is retried, and the lease and record stay until the call is known to be
  over. Its phases (held, ending, ended, released) and their transitions are
  `lifecycle.Lifecycle`'s; the reader never waits for an ending: the hangup runs beside
  it (`ending.Endings`), and the scheduler tries a refused one again;
- on a graceful stop the record is released (hand-over), not hung up: another replica
  adopts it at once. With the memory store (one process, nobody to adopt) the calls are
  hung up instead: a call nobody supervises is not bound by the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from service.calls.ending import Endings, Hangup, answer, close_sideband
from service.calls.leases import Leases
from service.calls.lifecycle import END_REASONS, Phase
from service.calls.model import (
    SupervisedCall,
    Supervision,
    over_budget,
    utc_day,
)
from service.calls.revocations import REVOCATION_BACKSTOP_SECONDS, RevocationWatch
from service.calls.sideband import Keepalive, SidebandConnection, SidebandConnector
from service.calls.spending import Spending
from service.calls.state import Action
from service.calls.store import CallStore, Metered, UsageDelta
from service.calls.supervised import (
    CallMetrics,
    CallOptions,
    Held,
    IsRevoked,
    NoMetrics,
    Revocations,
    replica_id,
)
from service.clock import Clock, system_clock
from service.config.settings import TenantSettings
from service.errors import (
    BrokerError,
    NotFound,
    ServiceUnavailable,
    StoreUnavailable,
)
from service.logs import Throttled, current_request_id
from service.redact import user_hash
from service.relay.hub import RelayedCall, RelayHub
from service.upstream.base import Upstream

logger = logging.getLogger(__name__)
audit_logger = logging.getLogger("service.audit")
T = TypeVar("T")

# Orphans claimed per tenant per scheduler pass: a replica that starts takes its share in
# steps, and the others get theirs.
CLAIM_BATCH = 500
# A background task (scheduler, event listener) that ends is started again after this
# long, doubling while it keeps failing within RESTART_RESET_SECONDS of its start.
RESTART_DELAY = 0.1
RESTART_MAX_DELAY = 5.0
RESTART_RESET_SECONDS = 60.0
# How long a graceful stop waits for the hangups of calls being ended.
ENDING_GRACE = 5.0
# Batches are cut into chunks, the event loop served between them: a batch of 10,000
# calls in one go held every sideband's events back for ~100 ms (bench/calls.py).
CHUNK = 500
# Call seconds of roles without a minute budget are metered this often (and at the end).
METER_ALL_SECONDS = 60.0


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class CallController:
    """Supervises this replica's share of the calls. `tick`: how often (real seconds) the
    scheduler looks at the clock; `lease_ttl`: the owner heartbeat's lifetime."""

    def __init__(
        self,
        *,
        store: CallStore,
        connector: SidebandConnector,
        upstreams: Mapping[str, Upstream],
        tenants: Iterable[TenantSettings],
        clock: Clock = system_clock,
        is_revoked: IsRevoked | None = None,
        options: CallOptions | None = None,
        metrics: CallMetrics | None = None,
        owner: str | None = None,
        revocations: Revocations | None = None,
        keepalive: Keepalive | None = None,
    ) -> None:
        options = options or CallOptions()
        self.store = store
        self.lease_ttl = options.lease_ttl
        self.owner = owner or replica_id()
        self._connector = connector
        self._upstreams = dict(upstreams)
        self._tenants = {t.id: t for t in tenants}
        self._clock = clock
        self._tick = options.tick
        self._max_calls = options.max_calls
        self._rejoin_seconds = options.rejoin_seconds
        self._keepalive = keepalive if options.ping_seconds > 0 else None
        self._pinging: asyncio.Task[None] | None = None
        self._ping_seconds = options.ping_seconds
        self._metrics: CallMetrics = metrics if metrics is not None else NoMetrics()
        self._held: dict[tuple[str, str], Held] = {}
        self._deadlines: list[tuple[float, str, str]] = []
        # Entries of calls that ended before their deadline: dropped in batches (below).
        self._ended_early = 0
        self._background: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[Any]] = set()
        # Whether this replica's leases are its own, per tenant (service.calls.leases).
        self._leases = Leases(self.lease_ttl)
        self._endings = Endings(
            upstreams=self._upstreams,
            clock=clock,
            tick=options.tick,
            metrics=self._metrics,
            audit=self._audit,
            spawn=self._side_task,
            may_act=self._may_act,
        )
        # Usage batches' ledger side, money budgets and the spend limit.
        self.spending = Spending(
            store, self._tenants.values(), self._held, self._endings, self._spawn, metrics
        )
        # Calls whose supervision record is not written yet (the store was down).
        self._unrecorded: set[Held] = set()
        self._beat_at = 0.0
        self._meter_all_at = 0.0
        self._backstop_at = 0.0
        # Calls with tokens not yet metered: the only ones a tick must look at.
        self._pending: set[Held] = set()
        self._warn = Throttled(logger, interval=30.0)
        self._revocations = RevocationWatch(
            tenants=self._tenants,
            is_revoked=is_revoked,
            revocations=revocations,
            end_user=self._end_user,
            spawn=self._spawn,
            warn=self._warn,
        )
        self.relays = RelayHub(
            store=store,
            replica=self.owner,
            calls=self._relayed_call,
            spawn=self._spawn,
            listen=self.start,
        )

    # --- public ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._held)

    def now(self) -> float:
        return self._clock()

    def has_room(self) -> bool:
        return len(self._held) < self._max_calls

    def held(self, tenant: str) -> list[str]:
        """Call ids this replica supervises for `tenant` (tests, diagnostics)."""
        return sorted(call_id for t, call_id in self._held if t == tenant)

    def scheduled(self, tenant: str) -> list[str]:
        """Call ids whose deadline the scheduler holds for `tenant` (tests, diagnostics)."""
        return sorted(call_id for _, t, call_id in self._deadlines if t == tenant)

    async def step(self) -> None:
        """Run one scheduler pass now: tests and diagnostics."""
        await self._pass()

    def start(self) -> None:
        """Start the scheduler and the event listener (idempotent): at app startup, so a
        replica that starts adopts orphans, and at the first call placed here."""
        if self._background:
            return
        self._background = [
            asyncio.create_task(self._keep("scheduler", self._schedule), name="calls scheduler"),
            asyncio.create_task(self._keep("event listener", self._listen), name="calls events"),
        ]

    async def supervise(self, tenant: TenantSettings, record: Supervision) -> None:
        """Start supervising a call just placed (its lease already taken)."""
        self.start()
        held = self._adopt(tenant, record)
        self._metrics.call_placed(record.tenant, record.kind)
        self._unrecorded.add(held)
        try:
            sent_at = self._clock()
            await self.store.supervise(record, self.owner, self.lease_ttl)
            self._unrecorded.discard(held)
            self._leases.recorded(record.tenant, sent_at)
        except StoreUnavailable:
            # The call is supervised here all the same; the scheduler writes the record
            # when the store is back.
            self._warn.warning("record", "call records: store unavailable; retrying")

    async def listing(
        self, tenant: str, *, limit: int, after: str | None
    ) -> tuple[list[SupervisedCall], bool]:
        try:
            return await self.store.supervised(tenant, limit=limit, after=after)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(
                "The call registry is unavailable.", code="store_unavailable"
            ) from exc

    async def hangup(self, tenant: TenantSettings, call_id: str, reason: str) -> None:
        """Hang up a call of the tenant, whichever replica supervises it, with the same
        answer from each: NotFound when no such call is supervised or upstream no longer
        has it; UpstreamError when upstream refused the hangup (its supervisor keeps
        trying: the call is ending)."""
        held = self._held.get((tenant.id, call_id))
        if held is not None and held.life.holding:
            outcome = await self._endings.ending(held, reason)
            if outcome is not None:
                answer(outcome)
                return
            # Let go meanwhile (handed over): its new supervisor is told, as from any replica.
        try:
            record = await self.store.record(tenant.id, call_id)
        except StoreUnavailable as exc:
            raise ServiceUnavailable(
                "The call registry is unavailable.", code="store_unavailable"
            ) from exc
        if record is None:
            raise NotFound("No active call with that id.", param="call_id")
        # Upstream first, over REST (it ends the call whoever supervises it, or a GPT-Live
        # session whose supervisor died before another adopted it); then its supervisor
        # is told, so that it records why and frees the lease without waiting, or, when
        # upstream refused, keeps trying.
        outcome = await self._endings.hang_up_elsewhere(record, reason)
        event = {"type": "call.hangup", "tenant": tenant.id, "call_id": call_id, "reason": reason}
        if outcome is not Hangup.GONE:
            with contextlib.suppress(StoreUnavailable):
                await self.store.publish(event)
        answer(outcome)

    async def hangup_user(self, tenant: TenantSettings, user_id: str, reason: str) -> int:
        """Hang up the user's calls here, and tell every replica to do the same."""
        hangups = self._end_user(tenant.id, user_id, reason)
        with contextlib.suppress(StoreUnavailable):
            await self.store.publish(
                {"type": "user.revoked", "tenant": tenant.id, "user_id": user_id}
            )
        if hangups:
            await asyncio.wait(hangups)
        return len(hangups)

    def abandon(self, tenant: TenantSettings, record: Supervision) -> None:
        """A call upstream placed whose caller never gets its answer (the placement was
        cancelled): it is ended, held here until then. Returns at once: what ending it
        takes runs beside the caller, which may be being cancelled."""
        held = self._held.get((record.tenant, record.call_id))
        if held is None:
            self.start()
            held = self._adopt(tenant, record)
            # Its record is written by the next heartbeat: without one, that heartbeat
            # would read the call as adopted elsewhere and drop it unended.
            self._unrecorded.add(held)
            self._metrics.call_placed(record.tenant, record.kind)
        self._endings.end(held, "placement_cancelled")

    async def aclose(self) -> None:
        """Graceful stop: hand every call over (or, with nothing to adopt them, hang them
        up), then stop the background tasks. A call being ended gets its hangup first
        (within ENDING_GRACE): its adopter would not know to end it."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        held = list(self._held.values())
        if self.store.shared:
            hangups = [t for h in held if (t := self._endings.again(h)) is not None]
            if hangups:
                await asyncio.wait(hangups, timeout=ENDING_GRACE)
            # Those over are settled by their readers, as they stop.
            await self._hand_over([h for h in held if h.life.holding])
        else:
            hangups = [t for h in held if (t := self._endings.end(h, "shutdown")) is not None]
            if hangups:
                await asyncio.wait(hangups)
        tasks = [h.task for h in held if h.task is not None] + list(self._side_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- one call --------------------------------------------------------------------

    def _adopt(self, tenant: TenantSettings, record: Supervision, *, adopted: bool = False) -> Held:
        held = Held(tenant, record, self._clock(), adopted=adopted)
        self._held[held.key] = held
        heapq.heappush(self._deadlines, (record.deadline, record.tenant, record.call_id))
        held.task = asyncio.create_task(self._run(held), name=f"call {record.call_id}")
        return held

    async def _run(self, held: Held) -> None:
        """The call's reader: its sideband, joined again when it drops, read until the
        call is over (then settled) or no longer held here."""
        lost = False
        try:
            while held.life.holding:
                connection = await self._join(held, lost=lost)
                if connection is None:
                    break
                held.connection = connection
                try:
                    await self._read(held, connection)
                finally:
                    held.connection = None
                    with contextlib.suppress(Exception):
                        await connection.close()
                if held.state.over:
                    self._endings.over(held)
                # Closed under us: the call ended, or the connection dropped. Joining
                # again tells which.
                lost = held.life.phase is Phase.HELD
                if lost:
                    logger.info("call %s: sideband closed; joining again", held.record.call_id)
        except Exception:
            logger.exception("call %s: supervision failed", held.record.call_id)
        finally:
            if self._held.get(held.key) is held:
                del self._held[held.key]
            self._unschedule()
            if held.life.phase is not Phase.RELEASED:
                await self._settle(held)

    async def _join(self, held: Held, *, lost: bool) -> SidebandConnection | None:
        """The sideband, or None when the call is over or no longer held here. A sideband
        that closed under the call (`lost`) is counted as lost once joined again, or once
        the call is ended for want of it; not when joining says the call is over."""
        record, loop = held.record, asyncio.get_running_loop()
        give_up_at, delay = loop.time() + self._rejoin_seconds, 0.1
        while held.life.holding:
            try:
                connection = await self._connector.connect(held.tenant, record.call_id, record.kind)
            except NotFound:
                self._endings.over(held)  # upstream no longer has the call
                return None
            except BrokerError as exc:
                if loop.time() >= give_up_at:
                    # Without a sideband the policy is not binding: fail closed.
                    logger.warning("call %s: sideband unavailable (%s)", record.call_id, exc.code)
                    if lost:
                        self._metrics.sideband_lost(record.tenant)
                        lost = False
                    self._endings.end(held, "sideband_unavailable")
                    give_up_at = loop.time() + self._rejoin_seconds
            else:
                if not held.life.holding:  # ended (or let go) while joining
                    with contextlib.suppress(Exception):
                        await connection.close()
                    return None
                if lost:
                    self._metrics.sideband_lost(record.tenant)
                logger.debug("call %s: sideband joined", record.call_id)
                return connection
            # A hangup in flight ends the wait: the call may be over.
            await self._endings.wait(held, delay)
            delay = min(delay * 2, 2.0)
        return None

    async def _read(self, held: Held, connection: SidebandConnection) -> None:
        while (text := await connection.recv()) is not None:
            if held.relay_replica is not None:
                self.relays.down(held, text)
            action = held.state.on_text(text)
            if held.state.has_pending():
                self._pending.add(held)
            if held.state.over:
                return
            if action is None:
                continue
            if not self._may_act(held):
                # Another replica may have adopted the call: held back until a renewal
                # of the lease tells whose it is (service.calls.leases).
                self._leases.hold_back(held, action)
                self._warn.warning(
                    "stale", "calls: leases not renewed for a TTL; reverts and hangups held back"
                )
                continue
            await self._act(held, action)

    async def _act(self, held: Held, action: Action) -> None:
        """What the call's event path asked for: a revert or a cancel sent on the
        sideband (none while it is being joined again), or the call ended."""
        record, connection = held.record, held.connection
        if action.kind == "hangup":
            self._endings.end(held, "session_update", fields=list(action.changed))
        elif connection is None or action.event is None:
            return
        elif action.kind == "revert":
            await connection.send(action.event)
            self._metrics.call_reverted(record.tenant)
            self._audit("call.session_reverted", record, fields=list(action.changed))
        else:
            await connection.send(action.event)
            self._metrics.call_reverted(record.tenant)
            self._audit("call.response_cancelled", record, fields=list(action.changed))

    def _may_act(self, held: Held) -> bool:
        """Whether this replica knows the call's lease is its own (service.calls.leases)."""
        return self._leases.fresh(held.record.tenant, self._clock())

    async def _settle(self, held: Held) -> None:
        """The call is over: its last usage, its lease and its record."""
        record, life = held.record, held.life
        life.ended()
        reason = life.end_reason if life.end_reason in END_REASONS else "other"
        self._metrics.call_ended(record.tenant, reason)
        self._unrecorded.discard(held)
        self._leases.let_go(held)
        if held.relay_replica is not None:
            self.relays.down(held, None)
        try:
            await self._flush([held])
            await self.store.release(record.tenant, record.user_id, record.call_id)
            await self.store.forget(record.tenant, record.call_id)
        except StoreUnavailable:
            # The lease lapses at the call's deadline; the record is found by an adopter,
            # whose join fails: the call is over, and it finishes this.
            self._warn.warning("settle", "call %s: store unavailable at its end", record.call_id)
        life.release()

    def _end_user(self, tenant: str, user_id: str, reason: str) -> list[asyncio.Task[Hangup]]:
        """End the user's calls held here; the hangups started (or in flight)."""
        held = [
            h
            for h in self._held.values()
            if (h.record.tenant, h.record.user_id) == (tenant, user_id)
        ]
        return [task for h in held if (task := self._endings.end(h, reason)) is not None]

    async def _hand_over(self, held: list[Held]) -> None:
        for h in held:
            h.life.release()
            self._leases.let_go(h)
        # In chunks, as every batch: 10,000 calls' usage in one pipeline (or their records
        # in one script) outlasts a Redis command's deadline (bench/calls.py).
        for chunk in _chunks(held):
            try:
                await self._flush(chunk)
            except StoreUnavailable:
                self._warn.warning("handover", "calls: usage at hand-over lost, store unavailable")
        by_tenant: dict[str, list[str]] = {}
        for h in held:
            by_tenant.setdefault(h.record.tenant, []).append(h.record.call_id)
        for tenant, call_ids in by_tenant.items():
            for ids in _chunks(call_ids):
                try:
                    await self.store.hand_over(tenant, self.owner, ids)
                except StoreUnavailable:
                    # Their heartbeats lapse within one TTL: adopted then.
                    self._warn.warning("handover", "calls: hand-over failed, store unavailable")
        await asyncio.gather(*(close_sideband(h) for h in held))
        if held:
            logger.info("calls: %d handed over", len(held))

    # --- the scheduler ---------------------------------------------------------------

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run one of the replica's background loops for the controller's life: one that
        fails or returns is logged and started again, after a delay that doubles while
        it keeps failing soon after its start. A replica whose listener ended would be
        deaf to revocations and hangups; one whose scheduler ended, to deadlines."""
        loop, delay = asyncio.get_running_loop(), RESTART_DELAY
        while True:
            started = loop.time()
            try:
                await run()
            except Exception:
                logger.exception("calls: the %s failed; starting it again", name)
            else:
                logger.error("calls: the %s stopped; starting it again", name)
            if loop.time() - started >= RESTART_RESET_SECONDS:
                delay = RESTART_DELAY
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_DELAY)

    async def _schedule(self) -> None:
        while True:
            try:
                await self._pass()
            except Exception:
                logger.exception("calls: scheduler pass failed")
            await asyncio.sleep(self._tick)

    async def _pass(self) -> None:
        now = self._clock()
        self._deadlines_due(now)
        self._endings.retry(list(self._held.values()), now)
        pending = [h for h in self._pending if h.key in self._held]
        self._pending.clear()
        beat = now >= self._beat_at
        if beat:
            self._beat_at = now + self.lease_ttl / 3
            if now >= self._meter_all_at:
                self._meter_all_at = now + METER_ALL_SECONDS
                pending = list(self._held.values())
            else:
                # Minute budgets are enforced at every heartbeat; other calls' seconds
                # only need metering now and then.
                budgeted = [h for h in self._held.values() if h.record.policy.daily_minute_budget]
                pending = list({*pending, *budgeted})
        for chunk in _chunks(pending):
            await self._meter(chunk)
        # Stale leases are renewed every tick: whose the calls are is learnt at once.
        if beat or self._leases.any_stale(now):
            await self._heartbeat()
        # Every tick: one script per tenant, which finds nothing most of the time.
        await self._claim()
        if now >= self._backstop_at:
            self._backstop_at = now + REVOCATION_BACKSTOP_SECONDS
            self._revocations.missed(self._held_users())
        if self._keepalive is not None and (self._pinging is None or self._pinging.done()):
            # Beside the pass: its pings are spread over half a tick.
            self._pinging = self._side_task(self._keep_alive(self._keepalive))

    async def _keep_alive(self, keepalive: Keepalive) -> None:
        """A share of the sidebands each tick: each looked at once per ping interval."""
        share = self._tick / self._ping_seconds
        _, dropped = await keepalive.step(share, spread=self._tick / 2)
        if dropped:
            # Their readers join them again (or end the calls), each logging it.
            logger.warning("calls: %d sidebands did not answer a ping; dropped", dropped)

    def _unschedule(self) -> None:
        """A call ended: its deadline entry goes too. Removing one entry from a heap is
        O(n), so they are dropped together once they are half the heap (O(1) amortized,
        and the heap never holds more than twice the calls held)."""
        self._ended_early += 1
        if self._ended_early * 2 >= len(self._deadlines):
            self._deadlines = [e for e in self._deadlines if (e[1], e[2]) in self._held]
            heapq.heapify(self._deadlines)
            self._ended_early = 0

    def _deadlines_due(self, now: float) -> None:
        due = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, tenant, call_id = heapq.heappop(self._deadlines)
            held = self._held.get((tenant, call_id))
            if held is not None:
                due.append(held)
            else:
                self._ended_early = max(0, self._ended_early - 1)
        for held in due:
            self._endings.end(held, "max_call_seconds")

    async def _meter(self, held: list[Held]) -> None:
        try:
            metered = await self._flush(held)
        except StoreUnavailable:
            self._warn.warning("usage", "calls: usage not metered, store unavailable")
            return
        for h, usage in zip(held, metered.usage, strict=True):
            reached = over_budget(h.record.policy, usage)
            if reached is not None and h.life.phase is Phase.HELD:
                self._endings.end(h, reached)
        # Money budgets and the spend limit (service.calls.spending).
        self.spending.enforce(held, metered)

    async def _flush(self, held: list[Held]) -> Metered:
        """Each call's tokens, seconds and ledger entries since its last flush, in one
        batch. Not written (the store is down): the ledger's share is pending again."""
        now = self._clock()
        deltas = [
            UsageDelta(
                h.record.tenant,
                h.record.user_id,
                utc_day(now),
                h.state.pending_tokens,
                h.state.seconds_due(max(0.0, now - h.flushed_at)),
            )
            for h in held
        ]
        # Written with the calls' ledger entries (service.calls.spending).
        metered = await self.spending.meter(held, deltas, now)
        for h, delta in zip(held, deltas, strict=True):
            h.state.metered(delta.tokens, delta.seconds)
            h.flushed_at = now
        return metered

    async def _heartbeat(self) -> None:
        by_tenant: dict[str, list[Held]] = {}
        for h in self._held.values():
            if h.life.phase is not Phase.RELEASED:
                by_tenant.setdefault(h.record.tenant, []).append(h)
        self._leases.only(by_tenant)
        for tenant, all_held in by_tenant.items():
            sent_at, renewed = self._clock(), True
            for held in _chunks(all_held):
                renewed = await self._beat(tenant, held) and renewed
            if renewed:
                self._leases.renewed(tenant, sent_at)
                await self._act_held_back(tenant)

    async def _act_held_back(self, tenant: str) -> None:
        """The tenant's calls are this replica's after all: what was held back while
        their leases were stale is done now (endings held back are retried by the
        scheduler)."""
        for held, action in self._leases.due(tenant):
            if held.life.holding:
                await self._act(held, action)

    async def _beat(self, tenant: str, held: list[Held]) -> bool:
        """Renew these calls' heartbeats; whether the store answered. A call another
        replica adopted meanwhile is let go; one whose record the store lost is written
        again."""
        try:
            for h in held:
                if h in self._unrecorded:
                    await self._record(h)
            lost = set(
                await self.store.heartbeat(
                    tenant, self.owner, [h.record.call_id for h in held], self.lease_ttl
                )
            )
            for h in held:
                if h.record.call_id not in lost:
                    continue
                if await self.store.record(tenant, h.record.call_id) is None:
                    # Not taken but lost: a failover promoted a replica that had not
                    # received the last writes (replication is asynchronous), or the data
                    # was flushed; or the call ended meanwhile. Nobody else can hold it.
                    if h.life.holding:
                        logger.warning("call %s: record lost; written again", h.record.call_id)
                        await self._record(h)
                    continue
                # Another replica adopted it (this one was cut off from the store for
                # longer than a heartbeat): it supervises the call now.
                logger.warning("call %s: adopted elsewhere; let go", h.record.call_id)
                h.life.release()
                self._leases.let_go(h)
                if self._held.get(h.key) is h:
                    del self._held[h.key]
                await close_sideband(h)
        except StoreUnavailable:
            self._metrics.lease_renewal_failed()
            self._warn.warning("heartbeat", "calls: heartbeats not renewed, store unavailable")
            return False
        return True

    async def _record(self, held: Held) -> None:
        """Write the call's record (owned here) and its user's lease on it: a record the
        store did not take when the call was placed, or lost since."""
        record = held.record
        if held.life.holding:
            await self.store.supervise(record, self.owner, self.lease_ttl)
            ttl = max(1.0, record.deadline - self._clock())
            await self.store.acquire(record.tenant, record.user_id, record.call_id, None, ttl)
        self._unrecorded.discard(held)
        if not held.life.holding:
            # It ended while these were written, and its end may have been settled (lease
            # released, record forgotten) before them: undone.
            await self.store.release(record.tenant, record.user_id, record.call_id)
            await self.store.forget(record.tenant, record.call_id)

    async def _claim(self) -> None:
        for tenant_id, tenant in self._tenants.items():
            room = min(CLAIM_BATCH, self._max_calls - len(self._held))
            if room <= 0:
                return
            try:
                sent_at = self._clock()
                claimed = await self.store.claim_orphans(
                    tenant_id, self.owner, self.lease_ttl, room
                )
            except StoreUnavailable:
                self._warn.warning("claim", "calls: orphans not claimed, store unavailable")
                continue
            if claimed:
                self._leases.recorded(tenant_id, sent_at)
            for record in claimed:
                if (record.tenant, record.call_id) in self._held:
                    continue  # ours already (handed over and claimed back)
                self._adopt(tenant, record, adopted=True)
                self._metrics.call_adopted(tenant_id)
                self._audit("call.adopted", record)
                await self.relays.adopted(tenant_id, record.call_id)

    def _held_users(self) -> dict[str, set[str]]:
        by_tenant: dict[str, set[str]] = {}
        for h in self._held.values():
            by_tenant.setdefault(h.record.tenant, set()).add(h.record.user_id)
        return by_tenant

    # --- events ----------------------------------------------------------------------

    async def _listen(self) -> None:
        async def reconnected() -> None:
            self._revocations.missed(self._held_users())

        await self.store.listen(self._on_event, reconnected, self.owner)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind, tenant = event.get("type"), event.get("tenant")
        if not isinstance(tenant, str):
            return
        if self.relays.receive(event):
            return
        if kind == "user.revoked" and isinstance(event.get("user_id"), str):
            self._revocations.revoked(tenant, event["user_id"])
        elif self.spending.receive(kind, tenant, event):
            return
        elif kind == "call.hangup" and isinstance(event.get("call_id"), str):
            held = self._held.get((tenant, event["call_id"]))
            if held is not None:
                reason = event.get("reason")
                self._endings.end(held, reason if isinstance(reason, str) else "admin")

    def _relayed_call(self, tenant: str, call_id: str) -> RelayedCall | None:
        return self._held.get((tenant, call_id))

    def _spawn(self, work: Awaitable[Any]) -> None:
        """Run `work` beside the caller, until it is done or the controller closes."""
        self._side_task(work)

    def _side_task(self, work: Awaitable[T]) -> asyncio.Task[T]:
        """`_spawn`, giving the task."""
        task = asyncio.ensure_future(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_done)
        return task

    def _side_done(self, task: asyncio.Task[Any]) -> None:
        self._side_tasks.discard(task)
        # Looked at here, once: nothing else awaits a side task's exception.
        if not task.cancelled() and (exc := task.exception()) is not None:
            work = getattr(task.get_coro(), "__qualname__", task.get_name())
            logger.error("calls: %s failed", work, exc_info=exc)

    def _audit(self, action: str, record: Supervision, **detail: Any) -> None:
        audit_logger.info(
            "call control",
            extra={
                "event": "audit",
                "action": action,
                "tenant": record.tenant,
                "target_user_hash": user_hash(record.tenant, record.user_id),
                "call_id": record.call_id,
                "at": int(self._clock()),
                # The request that caused it (an admin hangup, a placement), if any: its
                # access line has the same id.
                "request_id": current_request_id(),
                **detail,
            },
        )
