"""What call supervision is made of (service.calls.controller uses these): one supervised
call's state on this replica (`Held`, small: thousands are held), the options and the
metrics hooks, and the replica's name as an owner of records."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from service.calls.lifecycle import Lifecycle
from service.calls.model import Supervision
from service.calls.sideband import SidebandConnection, SidebandConnector
from service.calls.state import CallState, EventState, LiveState
from service.calls.store import CallStore
from service.config.settings import TenantSettings
from service.stores.base import Store

# Which of a tenant's users are revoked, in one round trip.
IsRevoked = Callable[[str, Sequence[str]], Awaitable[set[str]]]


def revocation_check(store: Store) -> IsRevoked:
    return store.revoked_among


class Revocations(Protocol):
    """A replica's own copy of the revoked users (stores.resilient.FailureAwareStore keeps
    one, so that they stay refused while Redis is down), kept fresh by call control:
    loaded at start and at every revocation backstop (`revoked_users`), and told of each
    revocation any replica publishes (`note_revoked`)."""

    async def revoked_users(self, tenant: str) -> set[str]: ...

    def note_revoked(self, tenant: str, user_id: str) -> None: ...


def replica_id() -> str:
    """This process's name as an owner of supervision records."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class CallMetrics(Protocol):
    def call_placed(self, tenant: str, kind: str) -> None: ...
    def call_ended(self, tenant: str, reason: str) -> None: ...
    def call_adopted(self, tenant: str) -> None: ...
    def call_reverted(self, tenant: str) -> None: ...
    def sideband_lost(self, tenant: str) -> None: ...
    def hangup_failed(self, tenant: str) -> None: ...
    def lease_renewal_failed(self) -> None: ...


class NoMetrics:
    def call_placed(self, tenant: str, kind: str) -> None: ...
    def call_ended(self, tenant: str, reason: str) -> None: ...
    def call_adopted(self, tenant: str) -> None: ...
    def call_reverted(self, tenant: str) -> None: ...
    def sideband_lost(self, tenant: str) -> None: ...
    def hangup_failed(self, tenant: str) -> None: ...
    def lease_renewal_failed(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CallOptions:
    """The seams of call control for `create_app`: a store and a sideband connector
    replacing the configured ones, and the timing (tests shorten `tick`).

    `lease_ttl`: how long an owner's heartbeat lasts; a dead replica's calls are adopted
    within it. `rejoin_seconds`: how long a dropped sideband is tried again before the
    call is ended over REST. `ping_seconds`: how often idle sidebands are pinged (0:
    never); one that has not answered by the next round is dropped and joined again."""

    store: CallStore | None = None
    connector: SidebandConnector | None = None
    lease_ttl: float = 15.0
    tick: float = 1.0
    max_calls: int = 10_000
    rejoin_seconds: float = 15.0
    ping_seconds: float = 8.0


class Held:
    """One supervised call on this replica. Small on purpose: thousands are held."""

    __slots__ = (
        "connection",
        "flushed_at",
        "life",
        "record",
        "relay_replica",
        "state",
        "task",
        "tenant",
    )

    def __init__(
        self, tenant: TenantSettings, record: Supervision, now: float, *, adopted: bool = False
    ) -> None:
        self.tenant = tenant
        self.record = record
        self.state: EventState = (
            LiveState(record.policy, adopted=adopted)
            if record.kind == "live"
            else CallState(
                record.policy, server_instructions=record.policy.instructions_mode == "server"
            )
        )
        self.flushed_at = now
        self.task: asyncio.Task[None] | None = None
        self.connection: SidebandConnection | None = None
        # Held, ending, ended, released (service.calls.lifecycle).
        self.life = Lifecycle()
        # The replica where the call's relay is (service.relay.hub), if it has one.
        self.relay_replica: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.record.tenant, self.record.call_id)
