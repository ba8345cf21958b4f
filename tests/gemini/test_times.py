"""RFC 3339 timestamps, as the SDKs send them."""

from __future__ import annotations

import datetime

import pytest

from service.errors import InvalidValue
from service.gemini.times import format_time, parse_time

T = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-01-01T00:00:00Z", T),
        ("2026-01-01t00:00:00z", T),
        ("2026-01-01T01:00:00+01:00", T),
        ("2026-01-01T00:00:00.250000+00:00", T + 0.25),  # Python's isoformat()
        ("2026-01-01T00:00:00.123456789Z", T + 0.123456),  # Google's nanoseconds
    ],
)
def test_rfc3339_times_with_an_offset_are_read(text: str, seconds: float) -> None:
    assert parse_time(text, "expireTime") == pytest.approx(seconds)


def test_a_python_datetime_as_the_sdk_sends_it_is_read() -> None:
    when = datetime.datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=datetime.UTC)
    assert parse_time(when.isoformat(), "expireTime") == T + 0.5


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T00:00:00",  # no offset: whose local time?
        "2026-01-01 00:00:00Z",
        "20260101T000000Z",
        "2026-13-01T00:00:00Z",
        "tomorrow",
        1_767_225_600,
    ],
)
def test_anything_else_is_refused_naming_the_field(text: object) -> None:
    with pytest.raises(InvalidValue) as raised:
        parse_time(text, "expireTime")
    assert raised.value.param == "expireTime"


def test_times_are_written_in_whole_seconds_utc() -> None:
    assert format_time(T + 0.9) == "2026-01-01T00:00:00Z"
