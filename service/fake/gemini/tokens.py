"""The fake Gemini's ephemeral tokens: issued by `POST /{version}/auth_tokens`, spent by
Live sessions.

A token is what Google documents: `uses` sessions (default 1; 0 for no limit), none started
after `newSessionExpireTime` (default 60 s ahead), no message accepted after `expireTime`
(default 30 minutes ahead), both at most 20 hours ahead. Its setup, when it has one, is
locked: the whole of it without a `fieldMask` (the client's setup is then ignored), only the
masked fields with one. The registry also keeps what it was asked, for tests: each create
request (its body, and which credential carried the key, as a SHA-256 digest: never the key)
and each session started (the client's setup and the effective one).
"""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.clock import Clock
from service.fake.gemini.status import GoogleError

# Google's documented defaults and bounds.
DEFAULT_USES = 1
DEFAULT_EXPIRE_SECONDS = 30 * 60
DEFAULT_NEW_SESSION_SECONDS = 60
MAX_AHEAD_SECONDS = 20 * 3600
# What a long-running fake remembers for tests to look at, oldest forgotten first.
KEPT = 1000
_FRACTION = re.compile(r"\.([0-9]+)")


@dataclass
class AuthToken:
    name: str
    uses: int  # 0: no limit
    expire_time: float
    new_session_expire_time: float
    setup: dict[str, Any] | None
    field_mask: tuple[str, ...] | None
    used: int = 0


class SessionRefused(Exception):
    """A Live session the token does not open; the WebSocket closes with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_time(value: str) -> float:
    """An RFC 3339 time (already shape-checked) as epoch seconds; nanoseconds are cut to
    what Python keeps (microseconds)."""
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class FakeAuthTokens:
    """The fake's tokens by name, with `received` (create requests) and `sessions`
    (sessions started), newest last."""

    def __init__(self, *, clock: Clock) -> None:
        self.tokens: dict[str, AuthToken] = {}
        self.received: deque[dict[str, Any]] = deque(maxlen=KEPT)
        self.sessions: deque[dict[str, Any]] = deque(maxlen=KEPT)
        self._clock = clock

    def record(self, version: str, credentials: dict[str, str], body: Any) -> dict[str, Any]:
        """Keep a create request: `credentials` maps where a credential came (a header,
        the `key` query parameter) to its value, kept as a digest only."""
        entry = {
            "version": version,
            "credentials": {where: digest(value) for where, value in credentials.items()},
            "body": copy.deepcopy(body),
            "status": None,
        }
        self.received.append(entry)
        return entry

    def issue(self, body: dict[str, Any]) -> AuthToken:
        """A new token from a shape-checked create body; times out of bounds are refused."""
        now = self._clock()
        expire = self._time(body, "expireTime", now, DEFAULT_EXPIRE_SECONDS)
        new_session = self._time(body, "newSessionExpireTime", now, DEFAULT_NEW_SESSION_SECONDS)
        mask = body.get("fieldMask")
        token = AuthToken(
            name="auth_tokens/" + secrets.token_hex(24),
            uses=body.get("uses", DEFAULT_USES),
            expire_time=expire,
            new_session_expire_time=new_session,
            setup=copy.deepcopy(body.get("bidiGenerateContentSetup")),
            field_mask=None
            if mask is None
            else tuple(p.strip() for p in mask.split(",") if p.strip()),
        )
        self.tokens[token.name] = token
        while len(self.tokens) > KEPT * 10:
            del self.tokens[next(iter(self.tokens))]
        return token

    def start(self, name: str | None, client_setup: dict[str, Any]) -> dict[str, Any]:
        """Spend one use of the token on a new session; its effective setup, or
        `SessionRefused`."""
        token = self.tokens.get(name or "")
        if token is None:
            raise SessionRefused(1008, "Unauthenticated: the access token is not valid.")
        now = self._clock()
        if now >= token.expire_time:
            raise SessionRefused(1008, "The access token has expired.")
        if now >= token.new_session_expire_time:
            raise SessionRefused(1008, "The access token no longer starts new sessions.")
        if token.uses and token.used >= token.uses:
            raise SessionRefused(1008, "The access token has no uses left.")
        token.used += 1
        setup = effective_setup(client_setup, token)
        self.sessions.append(
            {"token": token.name, "client_setup": copy.deepcopy(client_setup), "setup": setup}
        )
        return setup

    def expired(self, name: str) -> bool:
        token = self.tokens.get(name)
        return token is None or self._clock() >= token.expire_time

    def _time(self, body: dict[str, Any], field: str, now: float, default: int) -> float:
        if field not in body:
            return now + default
        value = parse_time(body[field])
        if value <= now:
            raise GoogleError(400, f"{field} must be in the future.")
        if value > now + MAX_AHEAD_SECONDS:
            raise GoogleError(400, f"{field} must be less than 20 hours in the future.")
        return value


def effective_setup(client: dict[str, Any], token: AuthToken) -> dict[str, Any]:
    """The session's setup: the client's, under what the token locks (all of its setup
    without a field mask; the masked paths with one, taken from the token or removed)."""
    if token.setup is None:
        return copy.deepcopy(client)
    if token.field_mask is None:
        locked = copy.deepcopy(token.setup)
        # A token may leave the model to the client; the rest it holds whole.
        locked.setdefault("model", client.get("model"))
        return locked
    setup = copy.deepcopy(client)
    for path in token.field_mask:
        keys = path.split(".")
        found, value = _get(token.setup, keys)
        _set(setup, keys, copy.deepcopy(value), present=found)
    return setup


def _get(tree: dict[str, Any], keys: list[str]) -> tuple[bool, Any]:
    node: Any = tree
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _set(tree: dict[str, Any], keys: list[str], value: Any, *, present: bool) -> None:
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            if not present:
                return
            child = node[key] = {}
        node = child
    if present:
        node[keys[-1]] = value
    else:
        node.pop(keys[-1], None)
