"""Timestamps as Google's JSON spells them (RFC 3339, `google.protobuf.Timestamp`).

The SDKs send what their users give: the Python SDK a `datetime`'s `isoformat()`
(`2025-05-01T00:00:00.123456+00:00`), the JS SDK the caller's string (`...Z`). Both are
RFC 3339 with an offset; a time without one would be read in some local zone, so it is
refused rather than guessed. `datetime.fromisoformat` alone would take more than RFC 3339
(week dates, a space for the `T`), hence the pattern first.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from service.errors import InvalidValue

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?P<fraction>\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)


def parse_time(value: object, param: str) -> float:
    """An RFC 3339 timestamp with its offset → seconds since the epoch."""
    if not isinstance(value, str) or not (match := _RFC3339.fullmatch(value)):
        raise InvalidValue(
            f"'{param}' must be an RFC 3339 time with an offset, "
            "such as 2025-05-01T00:00:00Z or 2025-05-01T00:00:00+00:00.",
            param=param,
        )
    text = value.upper()
    fraction = match.group("fraction")
    if fraction and len(fraction) > 7:
        # Google's timestamps carry nanoseconds; datetime holds microseconds.
        text = text.replace(fraction, fraction[:7], 1)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidValue(f"'{param}' is not a valid date and time.", param=param) from None


def format_time(seconds: float) -> str:
    """Whole seconds since the epoch → `2025-05-01T00:00:00Z`."""
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
