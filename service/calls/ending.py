"""Ending held calls, for the controller (service.calls.controller): at most one hangup in
flight per call, its attempts, and the transition its outcome tells
(service.calls.lifecycle). A call's reader never waits for any of it: `end` starts the
hangup beside the reader, and the scheduler calls `retry` for hangups upstream refused.

A Realtime call is hung up over REST (which ends it whoever supervises it). A GPT-Live
session is sent `session.close` on its sideband, then read until `session.closed` (its
final usage), within LIVE_CLOSE_GRACE; one whose sideband is not joined (it dropped and
is being joined again, or cannot be), or that did not say `session.closed` in time, is
hung up over REST (`POST /live/sessions/{id}/hangup`), as is one an admin ends from a
replica that does not hold it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from service.calls.model import Supervision
from service.calls.supervised import CallMetrics, Held
from service.clock import Clock
from service.errors import BrokerError, NotFound, UpstreamError
from service.logs import Throttled
from service.upstream.base import Upstream

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A GPT-Live session sent `session.close` has this long to say `session.closed` (with its
# final usage) before the broker closes its side.
LIVE_CLOSE_GRACE = 10.0
# Attempts of one hangup, the n-th followed by a pause of n * HANGUP_PAUSE; then the
# scheduler tries again later.
HANGUP_ATTEMPTS = 3
HANGUP_PAUSE = 0.2


class Hangup(enum.Enum):
    """How one hangup (its attempts together) went."""

    TAKEN = "taken"  # upstream ended the call
    GONE = "gone"  # upstream no longer had it: it was over already
    REFUSED = "refused"  # every attempt failed: tried again later


class Spawn(Protocol):
    """Runs work beside the caller (the controller's side tasks); its task."""

    def __call__(self, work: Awaitable[T], /) -> asyncio.Task[T]: ...


class Audit(Protocol):
    def __call__(self, action: str, record: Supervision, **detail: Any) -> None: ...


class Endings:
    """The hangups of this replica's calls. `tick`: the scheduler's, the unit of the
    backoff between rounds of a hangup upstream refuses."""

    def __init__(
        self,
        *,
        upstreams: Mapping[str, Upstream],
        clock: Clock,
        tick: float,
        metrics: CallMetrics,
        audit: Audit,
        spawn: Spawn,
        may_act: Callable[[Held], bool] = lambda held: True,
    ) -> None:
        self._upstreams = upstreams
        self._may_act = may_act
        self._clock = clock
        self._tick = tick
        self._metrics = metrics
        self._audit = audit
        self._spawn = spawn
        # The hangup in flight of each call being ended.
        self._hangups: dict[Held, asyncio.Task[Hangup]] = {}
        self._warn = Throttled(logger, interval=30.0)

    def end(self, held: Held, reason: str, **detail: Any) -> asyncio.Task[Hangup] | None:
        """End the call for `reason` (the first one stays): a hangup starts beside the
        caller, unless one is in flight. Its task; None when the call is over already, no
        longer held here, or may not be acted on now (`may_act`: this replica's lease on
        it is stale; the scheduler tries again every tick). `detail` goes into the audit
        line of the hangup."""
        if not held.life.end(reason):
            return None
        task = self._hangups.get(held)
        if task is None:
            if not self._may_act(held):
                held.life.held_back(self._clock())
                return None
            task = self._hangups[held] = self._spawn(self._hang_up(held, **detail))
            task.add_done_callback(lambda done: self._done(held, done))
        return task

    async def ending(self, held: Held, reason: str) -> Hangup | None:
        """`end`, and how its hangup went (None: the call is no longer held here)."""
        task = self.end(held, reason)
        if task is None:
            return None
        await asyncio.wait([task])
        if task.cancelled() or task.exception() is not None:
            return Hangup.REFUSED  # logged by the side task's owner; tried again
        return task.result()

    async def wait(self, held: Held, seconds: float) -> None:
        """`seconds`, or less if the call's hangup in flight is done first."""
        task = self._hangups.get(held)
        if task is None:
            await asyncio.sleep(seconds)
        else:
            await asyncio.wait([task], timeout=seconds)

    def again(self, held: Held) -> asyncio.Task[Hangup] | None:
        """A hangup now of a call being ended (or the one in flight); None if it is not."""
        reason = held.life.reason
        return None if reason is None else self.end(held, reason)

    def retry(self, held: Iterable[Held], now: float) -> None:
        """Hangups upstream refused, due again (the scheduler's, every tick)."""
        for h in held:
            if h.life.retry_due(now):
                self.again(h)

    def over(self, held: Held) -> None:
        """Upstream says the call is over, without this replica's hangup."""
        if held.life.ended():
            self._audit("call.ended", held.record, reason=held.life.end_reason)
            if held.connection is not None:
                self._spawn(close_sideband(held))

    async def hang_up_elsewhere(self, record: Supervision, reason: str) -> Hangup:
        """Hang up, over REST, a call or GPT-Live session another replica supervises, or
        nobody does yet (an admin's hangup): it ends whoever holds it."""
        outcome = await _with_retries(
            lambda: self._rest_hangup(record), lambda exc: self._refused(record, exc)
        )
        if outcome is Hangup.TAKEN:
            self._audit("call.hung_up", record, reason=reason)
        return outcome

    async def _hang_up(self, held: Held, **detail: Any) -> Hangup:
        """One hangup of the call (its attempts), and the transition it tells."""
        outcome: Hangup | None = None
        try:
            outcome = await _with_retries(
                lambda: self._attempt(held), lambda exc: self._refused(held.record, exc)
            )
            return outcome
        finally:
            if outcome is Hangup.TAKEN:
                if held.life.ended():
                    self._audit("call.hung_up", held.record, reason=held.life.reason, **detail)
                    if held.record.kind == "live":
                        self._spawn(self._close_after(held, LIVE_CLOSE_GRACE))
                    elif held.connection is not None:
                        self._spawn(close_sideband(held))
            elif outcome is Hangup.GONE:
                self.over(held)
            else:  # refused, or interrupted (the controller stopping): tried again
                held.life.refused(self._clock(), self._tick)

    async def _attempt(self, held: Held) -> None:
        """One attempt at ending the call upstream; NotFound when it is over already."""
        record = held.record
        if record.kind == "live":
            if held.state.over:
                raise NotFound("The session is over.")
            if held.connection is not None:
                # The trusted sideband closes the session, and then reports its final
                # usage (`session.closed`), which a REST hangup may not wait for.
                await held.connection.send({"type": "session.close"})
                return
        await self._rest_hangup(record)

    async def _rest_hangup(self, record: Supervision) -> None:
        upstream = self._upstreams[record.tenant]
        if record.kind == "live":
            await upstream.hangup_live_session(record.call_id)
        else:
            await upstream.hangup_call(record.call_id)

    async def _close_after(self, held: Held, seconds: float) -> None:
        """A GPT-Live session sent `session.close`: its sideband is read for `seconds`
        more (its final usage), then closed. One that did not say `session.closed` (the
        close was lost on a path that died) is hung up over REST."""
        await asyncio.sleep(seconds)
        if not held.state.over:
            logger.warning("call %s: no session.closed; hanging up over REST", held.record.call_id)
            await _with_retries(
                lambda: self._rest_hangup(held.record),
                lambda exc: self._refused(held.record, exc),
            )
        await close_sideband(held)

    def _refused(self, record: Supervision, exc: BrokerError) -> None:
        self._metrics.hangup_failed(record.tenant)
        self._warn.warning(
            "hangup", "call %s: hangup failed (%s); retrying", record.call_id, exc.code
        )

    def _done(self, held: Held, task: asyncio.Task[Hangup]) -> None:
        if self._hangups.get(held) is task:
            del self._hangups[held]


async def _with_retries(
    attempt: Callable[[], Awaitable[None]], on_refused: Callable[[BrokerError], None]
) -> Hangup:
    """Up to HANGUP_ATTEMPTS `attempt()`s, until one is taken or says the call is gone
    (NotFound); `on_refused(last error)` when none was."""
    for n in itertools.count(1):
        try:
            await attempt()
        except NotFound:
            return Hangup.GONE
        except BrokerError as exc:
            if n >= HANGUP_ATTEMPTS:
                on_refused(exc)
                return Hangup.REFUSED
            await asyncio.sleep(HANGUP_PAUSE * n)
        else:
            return Hangup.TAKEN
    raise AssertionError("unreachable")  # itertools.count never ends


def answer(outcome: Hangup) -> None:
    """An admin's hangup, answered the same by every replica: taken, NotFound (upstream no
    longer has the call), or UpstreamError (refused; its supervisor keeps trying)."""
    if outcome is Hangup.GONE:
        raise NotFound("No active call with that id.", param="call_id")
    if outcome is Hangup.REFUSED:
        raise UpstreamError("The upstream did not take the hangup; it is being retried.")


async def close_sideband(held: Held) -> None:
    """Close the call's sideband, if joined: its reader sees the end."""
    if held.connection is not None:
        with contextlib.suppress(Exception):
            await held.connection.close()
