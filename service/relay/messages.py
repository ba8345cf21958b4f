"""The messages replicas send each other on the state store's pub/sub (pure).

Each is a frozen record; `encode()` gives the JSON object `CallStore.publish` sends, and
`decode(data)` reads one back: the message, or None for anything else (an unknown type, a
missing or mistyped field, not an object at all). It never raises: whatever arrives on
the channel, a replica's listener goes on.

About a relay (`service.relay.hub`, the flow in this package's docstring):

    relay.attach   a relay of the call is on `relay_replica`         published to all
    relay.detach   it is gone                                        published to all
    relay.owner    the call's `supervisor` (answer to relay.attach)  to the relay's replica
    relay.down     a server event of the call, None: the call ended  to the relay's replica
    relay.up       a browser's (policed) event for the call          to the supervisor
    call.owner     the call was adopted: its relay attaches again    published to all

About a call (the controller's):

    user.revoked   end the user's calls                              published to all
    call.hangup    end the call, for `reason`                        published to all

The wire keys are those replicas have always sent (`relay` for the relay's replica, `owner`
for the supervisor): replicas of the previous release and of this one understand each other
during a rolling deploy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# A call ended by an admin, when the hangup does not say why.
ADMIN_REASON = "admin"


@dataclass(frozen=True, slots=True)
class RelayAttach:
    """A relay of the call is attached on `relay_replica` (to the call's supervisor)."""

    tenant: str
    call_id: str
    relay_replica: str

    def encode(self) -> dict[str, Any]:
        return {
            "type": "relay.attach",
            "tenant": self.tenant,
            "call_id": self.call_id,
            "relay": self.relay_replica,
        }


@dataclass(frozen=True, slots=True)
class RelayDetach:
    """The relay of the call on `relay_replica` is gone."""

    tenant: str
    call_id: str
    relay_replica: str

    def encode(self) -> dict[str, Any]:
        return {
            "type": "relay.detach",
            "tenant": self.tenant,
            "call_id": self.call_id,
            "relay": self.relay_replica,
        }


@dataclass(frozen=True, slots=True)
class RelayOwner:
    """The replica that supervises the call: where the relay sends the browser's events."""

    tenant: str
    call_id: str
    supervisor: str

    def encode(self) -> dict[str, Any]:
        return {
            "type": "relay.owner",
            "tenant": self.tenant,
            "call_id": self.call_id,
            "owner": self.supervisor,
        }


@dataclass(frozen=True, slots=True)
class RelayDown:
    """One of the call's server events, as the sideband's JSON text; None: the call ended."""

    tenant: str
    call_id: str
    event: str | None

    def encode(self) -> dict[str, Any]:
        return {
            "type": "relay.down",
            "tenant": self.tenant,
            "call_id": self.call_id,
            "event": self.event,
        }


@dataclass(frozen=True, slots=True)
class RelayUp:
    """A browser's event for the call, policed already by the relay's replica."""

    tenant: str
    call_id: str
    event: dict[str, Any]

    def encode(self) -> dict[str, Any]:
        return {
            "type": "relay.up",
            "tenant": self.tenant,
            "call_id": self.call_id,
            "event": self.event,
        }


@dataclass(frozen=True, slots=True)
class CallOwner:
    """The call was adopted: its relay, wherever it is, attaches again."""

    tenant: str
    call_id: str

    def encode(self) -> dict[str, Any]:
        return {"type": "call.owner", "tenant": self.tenant, "call_id": self.call_id}


@dataclass(frozen=True, slots=True)
class UserRevoked:
    """The user was revoked: every replica ends the user's calls."""

    tenant: str
    user_id: str

    def encode(self) -> dict[str, Any]:
        return {"type": "user.revoked", "tenant": self.tenant, "user_id": self.user_id}


@dataclass(frozen=True, slots=True)
class CallHangup:
    """The call is hung up (by an admin): its supervisor ends it for `reason`."""

    tenant: str
    call_id: str
    reason: str = ADMIN_REASON

    def encode(self) -> dict[str, Any]:
        return {
            "type": "call.hangup",
            "tenant": self.tenant,
            "call_id": self.call_id,
            "reason": self.reason,
        }


RelayMessage = RelayAttach | RelayDetach | RelayOwner | RelayDown | RelayUp | CallOwner
Message = RelayMessage | UserRevoked | CallHangup


def decode(data: object) -> Message | None:
    """The message `data` is, or None when it is none of them (never raises)."""
    if not isinstance(data, Mapping):
        return None
    kind, tenant = data.get("type"), data.get("tenant")
    # A type that is not a string may not even be hashable: looked up only once it is.
    read = _READERS.get(kind) if isinstance(kind, str) else None
    if read is None or not isinstance(tenant, str):
        return None
    return read(tenant, data)


def _call_id(data: Mapping[str, Any]) -> str | None:
    call_id = data.get("call_id")
    return call_id if isinstance(call_id, str) else None


def _attach(tenant: str, data: Mapping[str, Any]) -> Message | None:
    call_id, replica = _call_id(data), data.get("relay")
    if call_id is None or not isinstance(replica, str):
        return None
    return RelayAttach(tenant, call_id, replica)


def _detach(tenant: str, data: Mapping[str, Any]) -> Message | None:
    call_id, replica = _call_id(data), data.get("relay")
    if call_id is None or not isinstance(replica, str):
        return None
    return RelayDetach(tenant, call_id, replica)


def _owner(tenant: str, data: Mapping[str, Any]) -> Message | None:
    call_id, supervisor = _call_id(data), data.get("owner")
    if call_id is None or not isinstance(supervisor, str):
        return None
    return RelayOwner(tenant, call_id, supervisor)


def _down(tenant: str, data: Mapping[str, Any]) -> Message | None:
    call_id, event = _call_id(data), data.get("event")
    if call_id is None or not (event is None or isinstance(event, str)):
        return None
    return RelayDown(tenant, call_id, event)


def _up(tenant: str, data: Mapping[str, Any]) -> Message | None:
    call_id, event = _call_id(data), data.get("event")
    if call_id is None or not isinstance(event, dict):
        return None
    return RelayUp(tenant, call_id, event)


def _call_owner(tenant: str, data: Mapping[str, Any]) -> Message | None:
    call_id = _call_id(data)
    return None if call_id is None else CallOwner(tenant, call_id)


def _revoked(tenant: str, data: Mapping[str, Any]) -> Message | None:
    user_id = data.get("user_id")
    return UserRevoked(tenant, user_id) if isinstance(user_id, str) else None


def _hangup(tenant: str, data: Mapping[str, Any]) -> Message | None:
    call_id, reason = _call_id(data), data.get("reason")
    if call_id is None:
        return None
    return CallHangup(tenant, call_id, reason if isinstance(reason, str) else ADMIN_REASON)


_READERS: dict[str, Callable[[str, Mapping[str, Any]], Message | None]] = {
    "relay.attach": _attach,
    "relay.detach": _detach,
    "relay.owner": _owner,
    "relay.down": _down,
    "relay.up": _up,
    "call.owner": _call_owner,
    "user.revoked": _revoked,
    "call.hangup": _hangup,
}
