"""Values that must never be printed (keys, secrets, tokens), and what is printed in their
place: `user_hash`, a keyed reference to a user, and query strings without their values.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
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


# --- user_hash ---------------------------------------------------------------------------

USER_HASH_KEY_BYTES = 32


def keyed_user_hash(key: bytes, tenant: str, user_id: str) -> str:
    """HMAC-SHA256 of tenant and user id under the tenant's key, as 32 hex digits. The
    tenant is in the message too, so that tenants sharing one key still get different
    hashes for the same user id."""
    message = f"{tenant}\x00{user_id}".encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


# This process's key per tenant. Module state, against the house rule, because the hash
# is taken wherever a tenant id and a user id are at hand (handlers, the relay, call
# supervision, the store's fallback), and one app serves per process: its lifespan
# installs the keys (service.auth.hash_keys) before it serves.
_KEYS: dict[str, bytes] = {}


def install_user_hash_key(tenant: str, key: Secret) -> None:
    """Use `key` for this tenant's hashes from now on (at startup)."""
    _KEYS[tenant] = key.reveal().encode()
    user_hash.cache_clear()


# Cached: one mint asks three times for the same user's hash (the access line, the
# upstream's safety identifier, the audit line). Bounded; the value is not a secret.
@lru_cache(maxsize=1024)
def user_hash(tenant: str, user_id: str) -> str:
    """A stable reference to a user for logs and OpenAI's safety identifier: keyed, so that
    nobody without the key can test a guessed user id against it (README "Logs").

    A tenant whose key was never installed (an app used without its lifespan: unit tests,
    tools) gets a random one for the life of the process: its hashes are then stable only
    within the process, and still never an unkeyed digest.
    """
    key = _KEYS.get(tenant)
    if key is None:
        key = _KEYS.setdefault(tenant, secrets.token_bytes(USER_HASH_KEY_BYTES))
    return keyed_user_hash(key, tenant, user_id)


# --- query strings -----------------------------------------------------------------------

REDACTED = "[redacted]"
# A parameter name shown as it is: a short word (`call_id`, `access_token`, `accessToken`).
# Anything else may be a credential put where a name goes (a JWT, an `sk-` key): redacted.
_SHOWN_NAME = re.compile(r"[A-Za-z_]{1,24}")


def redact_query(query: str) -> str:
    """`access_token=eyJ...&call_id=rtc_1` → `access_token=[redacted]&call_id=[redacted]`:
    every value goes, and every name but a short word; what a client sent stays visible."""
    shown = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        if not pair:
            shown.append("")
        elif equals and _SHOWN_NAME.fullmatch(name):
            shown.append(f"{name}={REDACTED}")
        else:
            shown.append(REDACTED)
    return "&".join(shown)


def redact_target(target: str) -> str:
    """A request target (`/v1/realtime?call_id=...`) with its query redacted."""
    path, question, query = target.partition("?")
    return f"{path}?{redact_query(query)}" if question else target
