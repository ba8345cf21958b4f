"""Logging setup: structured JSON lines in production, a readable console format in dev.

Fields come from `extra=` on each call. Nothing here ever formats a token, key or
client secret: callers log hashes (`user_hash`) and ids only.

Two lines are written per mint (access and audit): the JSON encoder is built once and
the caller lookup is switched off (bench/README.md). A C-level encoder and a handler that
skipped its flush saved ~3 µs of a ~500 µs mint (under 1%): not worth leaning on
CPython's `_json` internals, so they went.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    # uvicorn's copy of its message with ANSI colour escapes: noise in a log line.
    "color_message",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        # `json.dumps(entry, default=str, separators=...)` without a new encoder per line.
        self._dumps = json.JSONEncoder(default=str, separators=(",", ":")).encode

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._dumps(entry)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items() if v is not None)
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


HELD_LOGGERS = ("httpx", "httpcore", "websockets", "aiohttp", "hpack", "redis")


class Throttled:
    """At most one warning per cause per `interval` seconds, with a count of the ones
    held back: an outage seen by every call at once is one line, not thousands."""

    def __init__(self, logger: logging.Logger, *, interval: float = 30.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, cause: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(cause)
        if last is not None and now - last < self._interval:
            self._held[cause] = self._held.get(cause, 0) + 1
            return
        self._last[cause] = now
        held = self._held.pop(cause, 0)
        if held:
            message += " (%d more like it in the last %.0f s)"
            args = (*args, held, now - last if last is not None else 0.0)
        self._logger.warning(message, *args, extra={"cause": cause})


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Neither format prints thread, process or multiprocessing names; collecting them
    # costs lookups on every record, two records per mint (bench/README.md).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Nor the caller's file, line or function: without `_srcfile`, `Logger._log` skips
    # `findCaller`'s stack walk (the logging HOWTO's "Optimization" section documents
    # this switch). Records then carry "(unknown file)", 0 and "(unknown function)".
    logging._srcfile = None
    # uvicorn's own access log would duplicate ours (and log query strings); ours has
    # the request id, tenant and user hash.
    logging.getLogger("uvicorn.access").disabled = True
    # Libraries that log requests or headers at INFO or DEBUG (websockets prints the
    # sideband's `Authorization: Bearer <server key>`; httpx, httpcore and aiohttp URLs
    # and headers) are held at WARNING whatever BROKER_LOG_LEVEL says: no secret reaches
    # a log line at any level. The broker logs what matters of those calls itself.
    for name in HELD_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
