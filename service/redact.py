"""Values that must never be printed: keys, secrets, tokens."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache


class Secret:
    """A string that redacts itself in repr() and str(), like Starlette's Secret.

    The value is reachable only through `reveal()`, so every place that sends a secret
    anywhere is greppable.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def matches(self, candidate: str) -> bool:
        """Constant-time comparison, for bearer keys."""
        return hmac.compare_digest(self._value.encode(), candidate.encode())

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


def mask(value: str | Secret | None) -> str | None:
    """How `config check` shows a secret: set or not, never the value."""
    if value is None:
        return None
    return "**********"


# Cached: one mint asks three times for the same user's hash (the access line, the
# upstream's safety identifier, the audit line). Bounded; the value is not a secret.
@lru_cache(maxsize=1024)
def user_hash(tenant: str, user_id: str) -> str:
    """A stable, non-reversible user reference for logs and for OpenAI's safety identifier."""
    return hashlib.sha256(f"{tenant}\x00{user_id}".encode()).hexdigest()[:32]
