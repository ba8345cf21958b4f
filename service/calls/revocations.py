"""Revocations, for the controller (service.calls.controller): a revoked user's calls end
on every replica, and revocations hold while Redis is down.

A revocation reaches every replica at once as a `user.revoked` event (`revoked`). What a
replica may have missed (its event subscription was down, or it just started) is caught
by the backstop (`missed`: at start, every REVOCATION_BACKSTOP_SECONDS, and whenever the
subscription comes back): the users of the calls held here are checked against the
directory, and the replica's own copy of every revoked user (`supervised.Revocations`,
kept by stores.resilient.FailureAwareStore for failure mode `open`) is loaded again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from service.calls.supervised import IsRevoked, Revocations
from service.errors import StoreUnavailable
from service.logs import Throttled

# How often every held user is checked against the directory, beside the events that
# tell it at once: a revocation published while a replica's subscription was down.
REVOCATION_BACKSTOP_SECONDS = 30.0
# Users checked per round trip.
CHUNK = 500

# Ends a user's calls held here: (tenant, user id, reason).
EndUser = Callable[[str, str, str], object]


class RevocationWatch:
    """`is_revoked`: the directory's answer for many users at once; `revocations`: the
    replica's own copy of the revoked users, if its store keeps one; `end_user` ends a
    user's calls held here; `spawn` runs work beside the caller."""

    def __init__(
        self,
        *,
        tenants: Iterable[str],
        is_revoked: IsRevoked | None,
        revocations: Revocations | None,
        end_user: EndUser,
        spawn: Callable[[Awaitable[Any]], None],
        warn: Throttled,
    ) -> None:
        self._tenants = list(tenants)
        self._is_revoked = is_revoked
        self._revocations = revocations
        self._end_user = end_user
        self._spawn = spawn
        self._warn = warn

    def revoked(self, tenant: str, user_id: str) -> None:
        """A `user.revoked` event: the user's calls end here, and the copy knows it."""
        if self._revocations is not None:
            self._revocations.note_revoked(tenant, user_id)
        self._end_user(tenant, user_id, "user_revoked")

    def missed(self, held_users: Mapping[str, set[str]]) -> None:
        """Revocations this replica may have missed: the users of the calls held here
        (`held_users`, by tenant) checked, the copy loaded again, beside the caller."""
        if self._is_revoked is not None and held_users:
            self._spawn(self._check(self._is_revoked, held_users))
        if self._revocations is not None:
            self._spawn(self._load(self._revocations))

    async def _load(self, revocations: Revocations) -> None:
        for tenant in self._tenants:
            try:
                await revocations.revoked_users(tenant)
            except StoreUnavailable:
                self._warn.warning("revocations_load", "calls: revocations not loaded")
                return

    async def _check(self, is_revoked: IsRevoked, held_users: Mapping[str, set[str]]) -> None:
        for tenant, users in held_users.items():
            ordered = sorted(users)
            for start in range(0, len(ordered), CHUNK):
                try:
                    revoked = await is_revoked(tenant, ordered[start : start + CHUNK])
                except StoreUnavailable:
                    self._warn.warning("revocations", "calls: revocations not checked")
                    return
                for user_id in revoked:
                    self._end_user(tenant, user_id, "user_revoked")
