"""Waiting for something that signals nothing a test could await (a controller's task, a
server in another process, a socket the server drops on its own time): poll, within a
generous bound, and say what never happened. One helper for the suite, in two forms.

And its opposite, `settle`: to assert that something did *not* happen, act (or step a
scheduler through its public method), let what that queued on the loop run, then
assert. Never sleep for a while and assert nothing: a sleep long enough to fail on a
loaded machine is a sleep too short to mean anything on a fast one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_SECONDS = 0.005
SETTLE_ROUNDS = 10


async def eventually(
    check: Callable[[], object] | Callable[[], Awaitable[object]],
    *,
    seconds: float = 3.0,
    what: str = "the condition",
    every: float = POLL_SECONDS,
) -> None:
    """Return once `check()` (a function or a coroutine function) is true; fail after
    `seconds` naming `what`. `every`: the pause between checks, longer for a check that
    costs something (a request to another process)."""
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
        await asyncio.sleep(every)


def eventually_sync(
    check: Callable[[], object], *, seconds: float, what: str, every: float = 0.02
) -> float:
    """`eventually` for tests that drive other processes from plain functions: the
    seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started >= seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(every)
    return time.monotonic() - started


async def settle(rounds: int = SETTLE_ROUNDS) -> None:
    """Let what is already queued on this loop run: callbacks, the tasks they wake, the
    tasks those start (`rounds` turns of the loop, no time passing)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
