"""The token the broker asks Google for (README "Gemini Live"); pure.

Whatever the client asked, the token is locked down:

- no `fieldMask`: Google then holds the whole setup, so a Live session opened with the
  token gets the setup the policy decided, whatever its client sends in its own setup;
- `uses` 1: one session per mint, so a rate limit on mints is a limit on sessions;
- `newSessionExpireTime` at most 60 s ahead (and not after `expireTime`): the token is
  for connecting now;
- `expireTime` at most the role's `max_call_seconds` ahead when it has one (the session
  then ends with the call time), else its `ttl_seconds.max`; by default that
  `max_call_seconds`, else `ttl_seconds.default`.

These are always clamped, never refused (as a TTL is): each change is listed for
`X-Policy-Adjusted` under the request's own name for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.errors import InvalidValue
from service.gemini.request import TokenRequest
from service.gemini.schema import SETUP_PARAM
from service.gemini.times import format_time
from service.policy.model import RoleRules

NEW_SESSION_SECONDS = 60
USES = 1


def session_seconds(rules: RoleRules) -> tuple[int, int]:
    """(default, most) seconds from the mint to `expireTime` for a role."""
    if rules.max_call_seconds is not None:
        return rules.max_call_seconds, rules.max_call_seconds
    return rules.ttl_seconds.default, rules.ttl_seconds.max


@dataclass(frozen=True, slots=True)
class LockedToken:
    """The AuthToken sent upstream (and, with its name, answered), when it expires, and
    the fields the locking changed of the request."""

    body: dict[str, Any]
    expire_time: int
    adjustments: tuple[str, ...]


def lock_token(
    request: TokenRequest, setup: Mapping[str, Any], rules: RoleRules, now: float
) -> LockedToken:
    """The token for `setup` (the policy's) under `rules` at `now`."""
    adjusted: list[str] = []
    default, most = session_seconds(rules)
    expire = _bounded(request.expire_time, "expireTime", now, now + default, now + most)
    if expire.clamped:
        adjusted.append("expireTime")
    new_session_most = min(now + NEW_SESSION_SECONDS, expire.seconds)
    new_session = _bounded(
        request.new_session_expire_time,
        "newSessionExpireTime",
        now,
        new_session_most,
        new_session_most,
    )
    if new_session.clamped:
        adjusted.append("newSessionExpireTime")
    if request.uses is not None and request.uses != USES:
        adjusted.append("uses")
    if request.field_mask:
        adjusted.append("fieldMask")
    body = {
        "uses": USES,
        "expireTime": format_time(expire.seconds),
        "newSessionExpireTime": format_time(new_session.seconds),
        SETUP_PARAM: setup,
    }
    return LockedToken(body, expire.seconds, tuple(adjusted))


@dataclass(frozen=True, slots=True)
class _Bounded:
    seconds: int  # since the epoch
    clamped: bool  # the time asked was later than allowed


def _bounded(asked: float | None, param: str, now: float, default: float, most: float) -> _Bounded:
    """Whole seconds since the epoch: `asked` within `most`, or `default`; never later
    than asked, nor than `most` (rounded down). A time asked that is not in the future
    once rounded down (less than a second ahead) is refused: the token would be expired
    when made."""
    latest = math.floor(most)
    if asked is None:
        return _Bounded(min(math.floor(default), latest), clamped=False)
    whole = math.floor(asked)
    if whole <= now:
        raise InvalidValue(
            f"'{param}' must be at least a second in the future (whole seconds).", param=param
        )
    if whole > latest:
        return _Bounded(latest, clamped=True)
    return _Bounded(whole, clamped=False)
