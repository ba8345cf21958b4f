"""Logging setup: structured JSON lines in production, a readable console format in dev.

Fields come from `extra=` on each call. Nothing here ever formats a token, key or
client secret: callers log hashes (`user_hash`) and ids only. Libraries, which log what
they see, are held to `LIBRARY_FLOORS` at every BROKER_LOG_LEVEL, and uvicorn's request
targets lose their query values (`LibraryGuard`).

Two lines are written per mint (access and audit): the JSON encoder is built once and
the caller lookup is switched off (bench/README.md). A C-level encoder and a handler that
skipped its flush saved ~3 µs of a ~500 µs mint (under 1%): not worth leaning on
CPython's `_json` internals, so they went.

`REQUEST_ID` holds the id of the HTTP request being served (set by the web layer's
middleware): a line written on a request's behalf, an audit line most of all, carries it
(`current_request_id()`), so that it joins that request's access line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from service.redact import redact_target

# A context variable, not an argument threaded through every layer: the mint, the
# directory and call control write audit lines deep below the handler. Tasks started
# while a request is served inherit its id (a call's supervisor, its placing request's).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, None outside of one."""
    return REQUEST_ID.get()


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


# Libraries' loggers and the least level they may write at, whatever BROKER_LOG_LEVEL says.
# Below these, they log what must never reach a line: websockets prints every handshake
# header and frame at DEBUG (the sideband's `Authorization: Bearer <server key>`, a user's
# words in `conversation.item.create`); httpx, httpcore, aiohttp and hpack URLs and
# headers; redis commands; aiortc and aioice the WebRTC exchanges of dev mode's fake.
# uvicorn hands its WebSocket protocol the `uvicorn.error` logger, so at DEBUG that one
# would print the relay's `Sec-WebSocket-Protocol: ..., openai-insecure-api-key.<JWT>`
# and each browser frame: it keeps INFO (startup, shutdown, refusals); `uvicorn.asgi`
# traces ASGI messages. The broker logs what matters of all of this itself.
LIBRARY_FLOORS: Mapping[str, int] = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiohttp": logging.WARNING,
    "hpack": logging.WARNING,
    "websockets": logging.WARNING,
    "redis": logging.WARNING,
    "aiortc": logging.WARNING,
    "aioice": logging.WARNING,
    "uvicorn.error": logging.INFO,
    "uvicorn.asgi": logging.WARNING,
    # A malformed multipart body is the caller's problem, answered with a 400; 0.0.18 also
    # warns on every well-formed body ("Skipping data after last boundary").
    "python_multipart": logging.ERROR,
}
HELD_LOGGERS = tuple(LIBRARY_FLOORS)


class LibraryGuard(logging.Filter):
    """On the log handler, so it holds whatever a library does to its own logger's level
    later (uvicorn's `--log-level`, a `setLevel` in a dependency): drops a library's
    record below its floor (`LIBRARY_FLOORS`, by logger name and its parents), and
    redacts the query of any request target in uvicorn's lines (`"WebSocket
    /v1/realtime?call_id=[redacted]&access_token=[redacted]" 403`): a client may put
    its JWT there (the relay refuses it), and ids are not for the log either."""

    def __init__(self) -> None:
        super().__init__()
        self._floors: dict[str, int] = {}

    def _floor(self, name: str) -> int:
        floor = self._floors.get(name)
        if floor is None:
            floor, candidate = logging.NOTSET, name
            while candidate:
                if candidate in LIBRARY_FLOORS:
                    floor = LIBRARY_FLOORS[candidate]
                    break
                candidate = candidate.rpartition(".")[0]
            if len(self._floors) < 1024:  # logger names are few; bounded all the same
                self._floors[name] = floor
        return floor

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self._floor(record.name):
            return False
        if record.name.startswith("uvicorn") and isinstance(record.args, tuple):
            record.args = tuple(
                redact_target(arg) if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


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
    handler.addFilter(LibraryGuard())
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
    # the request id, tenant and user hash, and the path without its query.
    logging.getLogger("uvicorn.access").disabled = True
    # Levels as well as the handler's guard: a record below its floor is then not even
    # made (and a handler added later, pytest's caplog, sees none either).
    # A floor only ever raises a library's level: under BROKER_LOG_LEVEL=warning uvicorn's
    # INFO lines stay out too.
    for name, floor in LIBRARY_FLOORS.items():
        logging.getLogger(name).setLevel(max(floor, root.level))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
