"""Waiting for something that signals nothing a test could await (a controller's task, a
server in another process, a socket the server drops on its own time): poll, within a
generous bound, and say what never happened. One helper for the suite, in two forms."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_SECONDS = 0.005


async def eventually(
    check: Callable[[], object] | Callable[[], Awaitable[object]],
    *,
    seconds: float = 3.0,
    what: str = "the condition",
) -> None:
    """Return once `check()` (a function or a coroutine function) is true; fail after
    `seconds` naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(POLL_SECONDS)


def eventually_sync(check: Callable[[], object], *, seconds: float, what: str) -> float:
    """`eventually` for tests that drive other processes from plain functions: the
    seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started >= seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started
