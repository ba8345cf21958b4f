"""calls.relaying.Relays: what a store failure leaves behind (nothing registered, no
exception out of a browser's event)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest

from service.calls.relaying import Relays
from service.calls.store_memory import MemoryCallStore
from service.errors import StoreUnavailable


class FlakyStore(MemoryCallStore):
    """The memory store, whose publish fails while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def publish(self, event: dict[str, Any], *, to: str | None = None) -> None:
        if self.down:
            raise StoreUnavailable("redis publish failed (ConnectionError)")
        await super().publish(event, to=to)


def relays(store: MemoryCallStore) -> Relays:
    def spawn(work: Awaitable[Any]) -> None:
        raise AssertionError("nothing is spawned here")

    return Relays(store=store, owner="replica-a", held=lambda t, c: None, spawn=spawn)


async def test_an_attach_whose_publish_fails_leaves_nothing_registered() -> None:
    store = FlakyStore()
    hub = relays(store)
    store.down = True

    with pytest.raises(StoreUnavailable):
        await hub.attach("acme", "rtc_1")

    # Nothing delivers to a relay that never started: a later down event finds no session.
    assert hub.attached("acme", "rtc_1") is None


async def test_a_browser_event_to_a_remote_supervisor_with_the_store_down_is_refused() -> None:
    store = FlakyStore()
    hub = relays(store)
    session = await hub.attach("acme", "rtc_1")
    hub.on_event("relay.owner", "acme", {"call_id": "rtc_1", "owner": "replica-b"})
    store.down = True

    sent = await hub.up(session, {"type": "response.create"})

    assert sent is False  # the browser gets call_unavailable; no exception escapes
