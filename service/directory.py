"""The user directory behind the organization-users API (README "Using it from a browser
app").

Who may call it, what it accepts and what it answers, apart from HTTP: the web layer
(service.web.admin) parses the request, calls one `Directory` method and renders the
dict it gets back. The records themselves live in the store (created on a user's first
mint); this module reads them, changes the admin-set role, revokes, and writes one
audit event per change.

Authorization: the bearer value is either one tenant's ADMIN_API_KEY (that tenant's
admin) or a user JWT whose effective role is `owner`. Either way the actor is bound
to one tenant, and every store call below is made with that tenant only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from service.auth.tokens import UNKNOWN_ISSUER, Identity
from service.auth.user_ids import MAX_USER_ID_CHARS, is_user_id
from service.clock import Clock, system_clock
from service.config.settings import TenantSettings
from service.errors import (
    InvalidToken,
    InvalidValue,
    NotFound,
    RoleForbidden,
    ServiceUnavailable,
    StoreUnavailable,
    UnknownParameter,
    UserRevoked,
)
from service.logs import current_request_id
from service.policy.model import Policy
from service.redact import user_hash
from service.stores.base import ROLES, Store, UserRecord

audit_logger = logging.getLogger("service.audit")

OWNER = "owner"
ALLOWED_ROLES = ", ".join(ROLES)

_T = TypeVar("_T")

Authenticate = Callable[[Sequence[str]], Awaitable[Identity]]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: a tenant's admin key, or one of its owners (by user id)."""

    tenant: str
    user_id: str | None = None

    @property
    def label(self) -> str:
        """For audit lines: never the key or token, only a hash of the user id."""
        if self.user_id is None:
            return "admin_key"
        return f"user:{user_hash(self.tenant, self.user_id)}"


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A page of the directory, as the web layer read it (web.handlers.parse_page_query):
    at most `limit` users, those after the user id `after` (from the first if None)."""

    limit: int
    after: str | None = None


# ---------------------------------------------------------------------------------------
# Input validation (pure)


def validate_user_id(value: str, *, param: str = "user_id") -> str:
    """The authenticator's rule (service.auth.user_ids), so that every user who can get
    in can be named here: `/` and other reserved characters arrive percent-encoded.

    The message never echoes the value: a mistyped path may well hold a token.
    """
    if not is_user_id(value):
        raise InvalidValue(
            f"`{param}` must be 1 to {MAX_USER_ID_CHARS} characters without whitespace, "
            "control or invisible characters, and not '.' or '..' (percent-encode the id "
            "as one path segment: '/' as %2F).",
            param=param,
        )
    return value


def _shown(name: str) -> str:
    # Parameter names are echoed to help the caller, but only short printable ones.
    return name if len(name) <= 64 and name.isprintable() else "..."


def parse_role_update(body: Mapping[str, Any]) -> str:
    """Exactly `{"role": "owner" | "reader"}`."""
    for name in body:
        if name != "role":
            raise UnknownParameter(f"Unknown parameter `{_shown(name)}`.", param=name)
    role = body.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidValue(f"`role` must be one of: {ALLOWED_ROLES}.", param="role")
    return role


# ---------------------------------------------------------------------------------------
# Rendering (pure): the shapes of the reference spec


def shown_role(record: UserRecord, policy: Policy) -> str:
    """The effective role as §3 defines it: admin-set, else the token's last claim, else the
    policy default (the directory object only speaks owner/reader)."""
    for role in (record.role, record.claimed_role, policy.default_role):
        if role in ROLES:
            return role
    return "reader"


def render_user(record: UserRecord, policy: Policy) -> dict[str, Any]:
    return {
        "object": "organization.user",
        "id": record.id,
        "name": record.name,
        "email": record.email,
        "role": shown_role(record, policy),
        "added_at": record.added_at,
    }


def render_list(records: Sequence[UserRecord], has_more: bool, policy: Policy) -> dict[str, Any]:
    data = [render_user(record, policy) for record in records]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def render_deleted(user_id: str) -> dict[str, Any]:
    return {"object": "organization.user.deleted", "id": user_id, "deleted": True}


# ---------------------------------------------------------------------------------------
# Authorization


def admin_tenant(tenants: Sequence[TenantSettings], authorization: Sequence[str]) -> str | None:
    """The tenant whose ADMIN_API_KEY the bearer value is, else None.

    Every configured key is compared (in constant time), with no early exit, so the
    response time does not tell which tenant's key was nearly guessed.
    """
    if len(authorization) != 1 or authorization[0][:7].lower() != "bearer ":
        return None
    candidate = authorization[0][7:]
    matched: list[str] = []
    for tenant in tenants:
        key = tenant.admin_api_key
        if key is not None and key.matches(candidate):
            matched.append(tenant.id)
    # Two tenants sharing one admin key would make the key ambiguous: honour neither.
    # load_settings refuses such a configuration at start-up (naming the per-tenant
    # BROKER_<ID>_ADMIN_API_KEY), so this holds only for settings built by hand.
    return matched[0] if len(matched) == 1 else None


def effective_role(record: UserRecord | None, claimed: str | None, policy: Policy) -> str:
    """The admin-set role, else the token's claim (if a policy role), else the default."""
    if record is not None and record.role:
        return record.role
    if claimed is not None and claimed in policy.roles:
        return claimed
    return policy.default_role


class Directory:
    """One tenant-scoped view of the user directory per call, with audit events.

    Built per request from the broker's store and settings (it holds references only);
    `clock` stamps the audit events.
    """

    def __init__(
        self, store: Store, tenants: Sequence[TenantSettings], *, clock: Clock = system_clock
    ) -> None:
        self._store = store
        self._tenants = {tenant.id: tenant for tenant in tenants}
        self._clock = clock

    def _policy(self, actor: Actor) -> Policy:
        return self._tenants[actor.tenant].policy

    async def authorize(self, authorization: Sequence[str], authenticate: Authenticate) -> Actor:
        """The admin key of a tenant, or an owner's JWT; else 401/403."""
        tenant = admin_tenant(list(self._tenants.values()), authorization)
        if tenant is not None:
            return Actor(tenant=tenant)
        identity = await authenticate(authorization)
        if identity.tenant not in self._tenants:
            # The authenticator and the directory are given the same tenants, so only
            # settings built by hand get here: the token's issuer is none of ours.
            raise InvalidToken(UNKNOWN_ISSUER)
        record = await self._call(self._store.get_user(identity.tenant, identity.user_id))
        if record is not None and record.revoked:
            raise UserRevoked()
        role = effective_role(record, identity.role, self._tenants[identity.tenant].policy)
        if role != OWNER:
            policy = self._tenants[identity.tenant].policy
            why = f"this user's effective role is '{role}'"
            claimed = identity.role
            if claimed == OWNER and OWNER not in policy.roles and not (record and record.role):
                why += (
                    " (the token says 'owner', but the policy has no 'owner' role, so its "
                    "default_role applies: add an 'owner' role to the policy)"
                )
            raise RoleForbidden(f"This endpoint needs the owner role; {why}.")
        return Actor(tenant=identity.tenant, user_id=identity.user_id)

    async def list_users(self, actor: Actor, query: ListQuery) -> dict[str, Any]:
        records, has_more = await self._call(
            self._store.list_users(actor.tenant, after=query.after, limit=query.limit)
        )
        return render_list(records, has_more, self._policy(actor))

    async def get(self, actor: Actor, user_id: str) -> dict[str, Any]:
        record = await self._call(self._store.get_user(actor.tenant, user_id))
        if record is None or record.revoked:
            raise _not_found()
        return render_user(record, self._policy(actor))

    async def set_role(self, actor: Actor, user_id: str, role: str) -> dict[str, Any]:
        # Read first only to name the audit action (restored or role change); the
        # write itself is the store's single atomic step.
        before = await self._call(self._store.get_user(actor.tenant, user_id))
        if before is None:
            raise _not_found()
        record = await self._call(self._store.set_role(actor.tenant, user_id, role))
        if record is None:
            raise _not_found()
        self._audit(
            "user.restored" if before.revoked else "user.role_updated", actor, user_id, role
        )
        return render_user(record, self._policy(actor))

    async def delete(self, actor: Actor, user_id: str) -> dict[str, Any]:
        record = await self._call(self._store.revoke(actor.tenant, user_id))
        if record is None:
            raise _not_found()
        self._audit("user.deleted", actor, user_id, record.role)
        return render_deleted(user_id)

    def _audit(self, action: str, actor: Actor, user_id: str, role: str | None) -> None:
        audit_logger.info(
            "directory change",
            extra={
                "event": "audit",
                "action": action,
                "tenant": actor.tenant,
                "actor": actor.label,
                "target_user_hash": user_hash(actor.tenant, user_id),
                "role": role,
                "at": int(self._clock()),
                # Joins the line to its request's access line.
                "request_id": current_request_id(),
            },
        )

    @staticmethod
    async def _call(pending: Awaitable[_T]) -> _T:
        try:
            return await pending
        except StoreUnavailable as exc:
            raise ServiceUnavailable(
                "The user directory is unavailable.", code="store_unavailable"
            ) from exc


def _not_found() -> NotFound:
    return NotFound("No such user.", param="user_id")
