"""Logging setup: structured JSON lines in production, a readable console format in dev.

Fields come from `extra=` on each call. Nothing here ever formats a token, key or
client secret: callers log hashes (`user_hash`) and ids only.

Two lines are written per mint (access and audit), so the per-record cost matters
(bench/README.md): the JSON encoder is built once, the caller lookup is switched off and
the handler skips a flush that cannot do anything. The output is the same as
`json.dumps(entry, default=str, separators=(",", ":"))` (tests/test_logs.py compares).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

try:
    from _json import make_encoder  # CPython's C accelerator behind `json.dumps`
except ImportError:  # pragma: no cover - CPython always has it
    make_encoder = None  # type: ignore[assignment, misc]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _json_encoder() -> Callable[[dict[str, Any]], str]:
    """`json.dumps(obj, default=str, separators=(",", ":"))`, without building an encoder
    per call: `dumps` with any option makes a `JSONEncoder` and, in `encode`, a C
    encoder every time (~1.5 µs of a 3.5 µs line). The C encoder is reusable: it keeps
    no state between calls (its `markers`, kept so that a circular value still fails the
    way `dumps` fails, is empty again after each). Falls back to the stock encoder where
    `_json`, CPython's accelerator behind json, is missing."""
    if make_encoder is None:  # pragma: no cover - CPython always has it
        return json.JSONEncoder(default=str, separators=(",", ":")).encode
    # The arguments `JSONEncoder.iterencode` passes for dumps(default=str, separators):
    # markers, default, encoder, indent, separators, sort_keys, skipkeys, allow_nan.
    markers: dict[int, Any] = {}
    encode = make_encoder(markers, str, encode_basestring_ascii, None, ":", ",", False, False, True)

    def dumps(entry: dict[str, Any]) -> str:
        try:
            return "".join(encode(entry, 0))
        except BaseException:
            # An encoding that fails half-way can leave ids in `markers`; a later value
            # that reuses one of those ids would then be refused as circular.
            markers.clear()
            raise

    return dumps


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._dumps = _json_encoder()

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


def _unbuffered(stream: TextIO) -> bool:
    """True when a write reaches the file descriptor at once, as Python's own stderr
    does (a write-through text layer over a raw, unbuffered file)."""
    return bool(getattr(stream, "write_through", False)) and isinstance(
        getattr(stream, "buffer", None), io.RawIOBase
    )


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that skips `flush()` on an unbuffered stream: there is nothing to
    flush, and the call takes the handler's lock a second time per record. On any other
    stream it behaves exactly like StreamHandler."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._skip_flush = _unbuffered(stream)

    def flush(self) -> None:
        if not self._skip_flush:
            super().flush()


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    handler = LineHandler(sys.stderr)
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
    # httpx logs every request URL at INFO; the upstream client logs what matters itself.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
