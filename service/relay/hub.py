"""One replica's side of relaying (`RelayHub`): the relays attached here, and the messages
that join each of them to its call's supervisor, wherever that is.

A browser's relay may reach any replica, the call's supervisor may be any other one. They
find each other on the state store's pub/sub (`service.relay.messages`):

- the relay's replica takes the call's one relay slot in the store (`claim`), then
  publishes `relay.attach` with its own name (`attach`);
- the supervisor marks the call as relayed (its `relay_replica`) and answers `relay.owner`
  to that replica's inbox; from then on it sends each sideband event there (`down`:
  `relay.down`, None at the end);
- the browser's events, policed by the relay's replica, go to the supervisor's inbox
  (`up`: `relay.up`), which sends them on the call's sideband;
- when a call is adopted, its new supervisor publishes `call.owner` (`adopted`), and the
  relay attaches again.

Same replica: the same steps, without the store.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from service.errors import StoreUnavailable
from service.logs import Throttled
from service.relay.messages import (
    CallOwner,
    RelayAttach,
    RelayDetach,
    RelayDown,
    RelayOwner,
    RelayUp,
    decode,
)

logger = logging.getLogger(__name__)

# Server events waiting for a browser: one that stops reading loses events beyond these.
RELAY_QUEUE = 1024
# A relay's slot in the store lasts this long unless renewed: a relay renews it while it
# lives, and a replica that dies with relays frees their calls within it.
CLAIM_SECONDS = 30.0
# How long a browser's event waits to learn where the call's supervisor is.
SUPERVISOR_WAIT_SECONDS = 1.0
# Server events on their way to relays on other replicas: a store that cannot keep up
# loses events beyond these rather than growing the supervisor.
OUTBOX = 10_000


class RelayStore(Protocol):
    """What the hub needs of the call store (`service.calls.store.CallStore` is one)."""

    async def publish(self, event: dict[str, Any], *, to: str | None = None) -> None: ...

    async def claim_relay(self, tenant: str, call_id: str, relay: str, ttl: float) -> bool: ...

    async def release_relay(self, tenant: str, call_id: str, relay: str) -> None: ...


class Sideband(Protocol):
    async def send(self, event: dict[str, Any]) -> None: ...


class RelayedCall(Protocol):
    """What the hub needs of a call supervised on this replica (the controller's `Held`)."""

    # The replica where the call's relay is, if it has one.
    relay_replica: str | None

    @property
    def key(self) -> tuple[str, str]:
        """(tenant, call id)"""
        ...

    @property
    def connection(self) -> Sideband | None:
        """The call's sideband, while joined."""
        ...


class Relay:
    """A browser's relay on this replica: its slot in the store (`relay_id`), the call's
    server events for it, and the call's supervisor (where the browser's events go)."""

    def __init__(self, tenant: str, call_id: str, relay_id: str) -> None:
        self.tenant, self.call_id, self.relay_id = tenant, call_id, relay_id
        # Server events as JSON text; None when the call is over.
        self.events: asyncio.Queue[str | None] = asyncio.Queue(RELAY_QUEUE)
        self.supervisor: str | None = None
        self.known = asyncio.Event()

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant, self.call_id)

    def deliver(self, text: str | None) -> None:
        if text is None and self.events.full():
            # The end always gets through (it closes the relay): an event makes room.
            self.events.get_nowait()
        with contextlib.suppress(asyncio.QueueFull):
            # A browser that stopped reading loses events rather than growing the broker.
            self.events.put_nowait(text)


class RelayHub:
    """One replica's relays and the calls it supervises, as far as relaying goes.

    `replica`: this replica's name (its inbox); `calls`: a call supervised here, if it is;
    `spawn`: runs work beside the caller; `listen`: starts this replica's listener
    (idempotent), through which the supervisor's answers arrive."""

    def __init__(
        self,
        *,
        store: RelayStore,
        replica: str,
        calls: Callable[[str, str], RelayedCall | None],
        spawn: Callable[[Awaitable[Any]], None],
        listen: Callable[[], None],
    ) -> None:
        self._store, self._replica, self._calls = store, replica, calls
        self._spawn, self._listen = spawn, listen
        self._relays: dict[tuple[str, str], Relay] = {}
        self._warn = Throttled(logger, interval=30.0)
        # (relay replica, message): published in order by one sender, so that a call's
        # sideband reader never waits for the store (`down`).
        self._outbox: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._sending = False

    # --- the relay's side (service.web.relay) -----------------------------------------

    async def claim(self, tenant: str, call_id: str) -> Relay | None:
        """A relay for the call, holding its slot; None when another relay holds it.
        Raises StoreUnavailable."""
        relay = Relay(tenant, call_id, f"{self._replica}:{secrets.token_hex(4)}")
        if not await self._store.claim_relay(tenant, call_id, relay.relay_id, CLAIM_SECONDS):
            return None
        return relay

    async def renew(self, relay: Relay) -> None:
        """Keep the relay's slot (every `CLAIM_SECONDS / 3` or so)."""
        with contextlib.suppress(StoreUnavailable):
            await self._store.claim_relay(
                relay.tenant, relay.call_id, relay.relay_id, CLAIM_SECONDS
            )

    async def attach(self, relay: Relay) -> None:
        """Register the relay here and tell the call's supervisor. Raises StoreUnavailable."""
        self._listen()
        self._relays[relay.key] = relay
        try:
            await self._store.publish(
                RelayAttach(relay.tenant, relay.call_id, self._replica).encode()
            )
        except BaseException:
            # Not attached: nothing may stay registered for a relay that never started.
            if self._relays.get(relay.key) is relay:
                del self._relays[relay.key]
            raise

    async def detach(self, relay: Relay) -> None:
        """The relay is gone: unregister it, tell the supervisor, free the call's slot."""
        if self._relays.get(relay.key) is relay:
            del self._relays[relay.key]
        with contextlib.suppress(StoreUnavailable):
            await self._store.publish(
                RelayDetach(relay.tenant, relay.call_id, self._replica).encode()
            )
        with contextlib.suppress(StoreUnavailable):
            await self._store.release_relay(relay.tenant, relay.call_id, relay.relay_id)

    async def up(self, relay: Relay, event: dict[str, Any]) -> bool:
        """Send a (policed) browser event to the call; False when no replica supervises
        it within `SUPERVISOR_WAIT_SECONDS`, or the store cannot carry it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUPERVISOR_WAIT_SECONDS):
                await relay.known.wait()
        if relay.supervisor is None:
            return False
        if relay.supervisor == self._replica:
            self._send_up(self._calls(relay.tenant, relay.call_id), event)
            return True
        try:
            await self._store.publish(
                RelayUp(relay.tenant, relay.call_id, event).encode(), to=relay.supervisor
            )
        except StoreUnavailable:
            # The browser is told (call_unavailable) and may send again; the relay goes on.
            return False
        return True

    def attached(self, tenant: str, call_id: str) -> Relay | None:
        """The relay of the call attached on this replica, if any (tests, diagnostics)."""
        return self._relays.get((tenant, call_id))

    # --- the supervisor's side (service.calls.controller) -----------------------------

    def down(self, call: RelayedCall, text: str | None) -> None:
        """A server event of a call supervised here (None: the call ended), for its relay.
        Never waits: a relay on another replica gets it from the outbox's sender."""
        relay_replica = call.relay_replica
        if relay_replica is None:
            return
        if relay_replica == self._replica:
            relay = self._relays.get(call.key)
            if relay is not None:
                relay.deliver(text)
            return
        tenant, call_id = call.key
        if len(self._outbox) >= OUTBOX and text is not None:  # the end always goes
            self._warn.warning("outbox", "relay events lost: %d waiting for the store", OUTBOX)
            return
        self._outbox.append((relay_replica, RelayDown(tenant, call_id, text).encode()))
        if not self._sending:
            self._sending = True
            self._spawn(self._send_outbox())

    async def _send_outbox(self) -> None:
        try:
            while self._outbox:
                relay_replica, message = self._outbox.popleft()
                try:
                    await self._store.publish(message, to=relay_replica)
                except StoreUnavailable:
                    self._warn.warning(
                        "relay", "call %s: relay events lost, store unavailable", message["call_id"]
                    )
        finally:
            self._sending = False

    async def adopted(self, tenant: str, call_id: str) -> None:
        """A call adopted here: its relay, wherever it is, attaches again to this replica."""
        with contextlib.suppress(StoreUnavailable):
            await self._store.publish(CallOwner(tenant, call_id).encode())

    def receive(self, data: dict[str, Any]) -> bool:
        """Act on a message of the store's pub/sub if it is about a relay (False if not)."""
        message = decode(data)
        if isinstance(message, RelayAttach | RelayDetach | RelayUp):
            self._to_supervisor(message)
        elif isinstance(message, RelayOwner | RelayDown | CallOwner):
            self._to_relay(message)
        else:
            return False
        return True

    # --- internals --------------------------------------------------------------------

    def _to_supervisor(self, message: RelayAttach | RelayDetach | RelayUp) -> None:
        call = self._calls(message.tenant, message.call_id)
        if call is None:
            return  # supervised elsewhere, or not at all
        if isinstance(message, RelayAttach):
            call.relay_replica = message.relay_replica
            self._spawn(self._answer(message))
        elif isinstance(message, RelayDetach):
            if call.relay_replica == message.relay_replica:
                call.relay_replica = None
        else:
            self._send_up(call, message.event)

    def _to_relay(self, message: RelayOwner | RelayDown | CallOwner) -> None:
        relay = self._relays.get((message.tenant, message.call_id))
        if relay is None:
            return  # attached elsewhere, or gone
        if isinstance(message, RelayOwner):
            relay.supervisor = message.supervisor
            relay.known.set()
        elif isinstance(message, RelayDown):
            relay.deliver(message.event)
        else:
            # Adopted: attach again, to the new supervisor.
            relay.known.clear()
            self._spawn(self._attach_again(relay))

    async def _answer(self, attach: RelayAttach) -> None:
        """Tell the relay's replica that this one supervises the call."""
        answer = RelayOwner(attach.tenant, attach.call_id, self._replica)
        if attach.relay_replica == self._replica:
            self._to_relay(answer)
            return
        with contextlib.suppress(StoreUnavailable):
            await self._store.publish(answer.encode(), to=attach.relay_replica)

    async def _attach_again(self, relay: Relay) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._store.publish(
                RelayAttach(relay.tenant, relay.call_id, self._replica).encode()
            )

    def _send_up(self, call: RelayedCall | None, event: dict[str, Any]) -> None:
        if call is not None and call.connection is not None:
            self._spawn(call.connection.send(event))
