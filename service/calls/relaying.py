"""Relays across replicas: a browser's relay may reach any replica, the call's supervisor
may be any other one. They find each other on the state store's pub/sub:

- the relay's replica publishes `relay.attach` (with its own id) on the shared channel;
- the supervisor marks the call as relayed and answers `relay.owner` to that replica's
  inbox; from then on it sends each sideband event there (`relay.down`, None at the end);
- the browser's events, policed by the relay's replica, go to the supervisor's inbox
  (`relay.up`), which sends them on the call's sideband;
- when a call is adopted, its new owner publishes `call.owner`, and the relay attaches
  again. Same replica: the same messages, delivered without the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from service.calls.model import Supervision
from service.calls.sideband import SidebandConnection
from service.calls.store import CallStore
from service.errors import StoreUnavailable
from service.logs import Throttled

logger = logging.getLogger(__name__)

RELAY_QUEUE = 1024


class RelayedCall(Protocol):
    """What the hub needs of a supervised call (the controller's own record of it)."""

    relay: str | None
    connection: SidebandConnection | None


class RelaySession:
    """A browser's relay attached on this replica: the events for it, and where the
    call's supervisor is (to send the browser's events to)."""

    def __init__(self, tenant: str, call_id: str) -> None:
        self.tenant, self.call_id = tenant, call_id
        # Server events as JSON text; None when the call is over.
        self.down: asyncio.Queue[str | None] = asyncio.Queue(RELAY_QUEUE)
        self.supervisor: str | None = None
        self.known = asyncio.Event()

    def deliver(self, text: str | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            # A browser that stopped reading loses events rather than growing the broker.
            self.down.put_nowait(text)


class Relays:
    """One replica's side of relaying: its attached relays, and the messages about them."""

    def __init__(
        self,
        *,
        store: CallStore,
        owner: str,
        held: Callable[[str, str], RelayedCall | None],
        spawn: Callable[[Awaitable[Any]], None],
    ) -> None:
        self._store, self._owner, self._held, self._spawn = store, owner, held, spawn
        self._sessions: dict[tuple[str, str], RelaySession] = {}
        self._warn = Throttled(logger, interval=30.0)

    def attached(self, tenant: str, call_id: str) -> RelaySession | None:
        """The relay of the call attached on this replica, if any (tests, diagnostics)."""
        return self._sessions.get((tenant, call_id))

    async def attach(self, tenant: str, call_id: str) -> RelaySession:
        session = RelaySession(tenant, call_id)
        self._sessions[(tenant, call_id)] = session
        try:
            await self._store.publish(
                {"type": "relay.attach", "tenant": tenant, "call_id": call_id, "relay": self._owner}
            )
        except BaseException:
            # Not attached: nothing may stay registered for a relay that never started.
            if self._sessions.get((tenant, call_id)) is session:
                del self._sessions[(tenant, call_id)]
            raise
        return session

    async def detach(self, session: RelaySession) -> None:
        key = (session.tenant, session.call_id)
        if self._sessions.get(key) is session:
            del self._sessions[key]
        with contextlib.suppress(StoreUnavailable):
            await self._store.publish(
                {
                    "type": "relay.detach",
                    "tenant": session.tenant,
                    "call_id": session.call_id,
                    "relay": self._owner,
                }
            )

    async def up(self, session: RelaySession, event: dict[str, Any]) -> bool:
        """Send a (policed) browser event to the call; False when no replica supervises
        it within a second."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await session.known.wait()
        if session.supervisor is None:
            return False
        if session.supervisor == self._owner:
            self._send_up(session.tenant, session.call_id, event)
            return True
        try:
            await self._store.publish(
                {
                    "type": "relay.up",
                    "tenant": session.tenant,
                    "call_id": session.call_id,
                    "event": event,
                },
                to=session.supervisor,
            )
        except StoreUnavailable:
            # The browser is told (call_unavailable) and may send again; the relay goes on.
            return False
        return True

    async def down(self, relay: str, record: Supervision, text: str | None) -> None:
        """A server event (None: the call ended) for the call's relay on `relay`."""
        if relay == self._owner:
            session = self._sessions.get((record.tenant, record.call_id))
            if session is not None:
                session.deliver(text)
            return
        try:
            await self._store.publish(
                {
                    "type": "relay.down",
                    "tenant": record.tenant,
                    "call_id": record.call_id,
                    "event": text,
                },
                to=relay,
            )
        except StoreUnavailable:
            self._warn.warning(
                "relay", "call %s: relay events lost, store unavailable", record.call_id
            )

    def on_event(self, kind: str, tenant: str, event: dict[str, Any]) -> None:
        call_id = event.get("call_id")
        if not isinstance(call_id, str):
            return
        held = self._held(tenant, call_id)
        session = self._sessions.get((tenant, call_id))
        relay = event.get("relay")
        if kind == "relay.attach" and held is not None and isinstance(relay, str):
            held.relay = relay
            self._spawn(self._tell(relay, tenant, call_id))
        elif kind == "relay.detach" and held is not None and held.relay == relay:
            held.relay = None
        elif kind == "relay.owner" and session is not None:
            owner = event.get("owner")
            session.supervisor = owner if isinstance(owner, str) else None
            session.known.set()
        elif kind == "relay.down" and session is not None:
            text = event.get("event")
            session.deliver(text if isinstance(text, str) else None)
        elif kind == "relay.up" and held is not None and isinstance(event.get("event"), dict):
            self._send_up(tenant, call_id, event["event"])
        elif kind == "call.owner" and session is not None:
            # Adopted: attach again, to the new owner.
            session.known.clear()
            self._spawn(
                self._store.publish(
                    {
                        "type": "relay.attach",
                        "tenant": tenant,
                        "call_id": call_id,
                        "relay": self._owner,
                    }
                )
            )

    async def _tell(self, relay: str, tenant: str, call_id: str) -> None:
        """Tell the relay who supervises the call."""
        owner = {"type": "relay.owner", "tenant": tenant, "call_id": call_id, "owner": self._owner}
        if relay == self._owner:
            self.on_event("relay.owner", tenant, owner)
            return
        with contextlib.suppress(StoreUnavailable):
            await self._store.publish(owner, to=relay)

    def _send_up(self, tenant: str, call_id: str, event: dict[str, Any]) -> None:
        held = self._held(tenant, call_id)
        if held is not None and held.connection is not None:
            self._spawn(held.connection.send(event))
