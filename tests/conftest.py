"""Fixtures shared by the whole suite. Helpers owned by one area live next to its tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """For tests that call `configure_logging`: it changes process-wide state (root
    handlers and level, the caller lookup, library loggers), put back afterwards."""
    root = logging.getLogger()
    handlers, level, srcfile = root.handlers[:], root.level, logging._srcfile
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging._srcfile = srcfile
        logging.getLogger("uvicorn.access").disabled = False
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.NOTSET)
