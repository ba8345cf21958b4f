"""The JSON line's fast encoder and handler against the stock ones: same bytes out."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.logs import (
    REQUEST_ID,
    ConsoleFormatter,
    JsonFormatter,
    configure_logging,
    current_request_id,
)

ACCESS = {
    "event": "access",
    "request_id": "0123456789abcdef0123456789abcdef",
    "method": "POST",
    "path": "/v1/realtime/client_secrets",
    "status": 200,
    "latency_ms": 1.234,
    "tenant": "default",
    "user_hash": "ab" * 16,
}
# A refusal's line: its error code and, for a 401, the reason (never the token).
REFUSED = {**ACCESS, "status": 401, "tenant": None, "user_hash": None}
REFUSED |= {"error": "invalid_token", "reason": "expired"}
AUDIT = {
    "event": "audit",
    "action": "secret.minted",
    "request_id": "0123456789abcdef0123456789abcdef",
    "tenant": "default",
    "user_hash": "ab" * 16,
    "role": None,
    "endpoint": "client_secrets",
    "expires_at": 1_764_000_000,
    "adjusted": ["session.model", "sessión.ünïcode"],
}


def stock(record: logging.LogRecord) -> str:
    """The formatter as it was: a fresh `json.dumps` per record."""
    standard = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
    entry: dict[str, Any] = {
        "ts": round(record.created, 6),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    entry.update(
        {k: v for k, v in record.__dict__.items() if k not in standard | {"message", "asctime"}}
    )
    return json.dumps(entry, default=str, separators=(",", ":"))


def record(extra: dict[str, Any], msg: str = "request", *args: object) -> logging.LogRecord:
    logger = logging.getLogger("service.access")
    return logger.makeRecord(logger.name, logging.INFO, "f.py", 1, msg, args, None, None, extra)


class Odd:
    def __str__(self) -> str:
        return "odd\u2028value"


@pytest.mark.parametrize(
    "extra",
    [
        ACCESS,
        REFUSED,
        AUDIT,
        {},
        {"nested": {"a": [1, 2.5, None, True]}, "odd": Odd(), "nan": math.nan, "inf": -math.inf},
        {"big": 10**30, "tuple": (1, "x"), "bytes": b"\x00"},
    ],
)
def test_the_json_line_is_what_json_dumps_writes(extra: dict[str, Any]) -> None:
    rec = record(extra, "mint %s", "ok")
    line = JsonFormatter().format(rec)
    assert line == stock(rec)
    assert list(json.loads(line)) == ["ts", "level", "logger", "msg", *extra]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(min_size=1).map(lambda k: "x_" + k), JSONISH, max_size=6))
def test_any_extras_encode_as_json_dumps_does(extra: dict[str, Any]) -> None:
    rec = record(extra)
    assert JsonFormatter().format(rec) == stock(rec)


def test_a_circular_value_still_fails_and_the_encoder_recovers() -> None:
    formatter = JsonFormatter()
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        formatter.format(record({"loop": loop}))
    rec = record(ACCESS)
    assert formatter.format(rec) == stock(rec)


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_value_that_fails_half_way_leaves_no_stale_marker() -> None:
    # The nested dict is marked (for the circular check) when the failure happens inside
    # it; without clearing, the same dict logged again would be refused as circular.
    formatter = JsonFormatter()
    nested: dict[str, object] = {"ok": 1, "bad": _Unprintable()}
    with pytest.raises(RuntimeError):
        formatter.format(record({"nested": nested}))
    del nested["bad"]
    rec = record({"nested": nested})
    assert formatter.format(rec) == stock(rec)


def test_an_exception_is_in_the_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record({"request_id": "r"})
        rec.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(rec))
    assert line["request_id"] == "r"
    assert "RuntimeError: boom" in line["exc"]


def test_uvicorns_colored_copy_of_the_message_is_not_a_field() -> None:
    # uvicorn passes `extra={"color_message": ...}` with ANSI escapes on its own lines.
    rec = record({"color_message": "\x1b[32mINFO\x1b[0m started", "request_id": "r"})
    assert "color_message" not in json.loads(JsonFormatter().format(rec))
    assert "\x1b" not in ConsoleFormatter().format(rec)


def test_configured_records_skip_the_caller_lookup(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    records: list[logging.LogRecord] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    spy = Spy()
    logging.getLogger().addHandler(spy)
    logging.getLogger("service.access").info("request", extra=ACCESS)
    assert records[0].lineno == 0
    assert records[0].funcName == "(unknown function)"
    logging.getLogger().removeHandler(spy)
    line = capsys.readouterr().err.strip()
    assert line == stock(records[0])


async def test_the_request_id_is_the_served_requests_and_its_tasks() -> None:
    async def later() -> str | None:
        await asyncio.sleep(0)
        return current_request_id()

    assert current_request_id() is None
    bound = REQUEST_ID.set("req-1")
    try:
        # A task started while the request is served (a call's supervisor) inherits it.
        task = asyncio.create_task(later())
        assert current_request_id() == "req-1"
    finally:
        REQUEST_ID.reset(bound)

    assert await task == "req-1"
    assert current_request_id() is None


@pytest.mark.parametrize(("level", "uvicorn_info_shown"), [("info", True), ("warning", False)])
def test_a_librarys_floor_never_lowers_the_configured_level(
    restored_logging: None, level: str, uvicorn_info_shown: bool
) -> None:
    # uvicorn.error's floor is INFO (held up from DEBUG); under "warning" its INFO stays out.
    configure_logging(level, "json")

    assert logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO) is uvicorn_info_shown
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
