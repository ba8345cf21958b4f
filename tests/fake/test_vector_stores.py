"""Cursor pagination of the fake's vector stores, directly and over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.clock import ManualClock
from service.fake.validate import Refusal
from service.fake.vector_stores import VectorStores


@pytest.fixture
def seven(clock: ManualClock) -> tuple[VectorStores, list[str]]:
    """Seven stores, two per second, so that ties on created_at are exercised too."""
    stores = VectorStores()
    ids = []
    for index in range(7):
        ids.append(stores.create({"name": f"s{index}"}, clock())["id"])
        if index % 2 == 1:
            clock.advance(1)
    return stores, ids


def ids_of(page: dict[str, Any]) -> list[str]:
    return [store["id"] for store in page["data"]]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_after_walks_every_page_in_order(seven: tuple[VectorStores, list[str]], order: str) -> None:
    stores, created = seven
    expected = created if order == "asc" else created[::-1]
    seen: list[str] = []
    after = None
    pages = 0

    while True:
        page = stores.page(limit=3, order=order, after=after)
        pages += 1
        seen += ids_of(page)
        assert page["first_id"] == ids_of(page)[0]
        assert page["last_id"] == ids_of(page)[-1]
        if not page["has_more"]:
            break
        after = page["last_id"]

    assert seen == expected
    assert pages == 3


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_before_walks_back_page_by_page(seven: tuple[VectorStores, list[str]], order: str) -> None:
    stores, created = seven
    expected = created if order == "asc" else created[::-1]
    last_page = stores.page(limit=7, order=order, after=expected[3])
    assert ids_of(last_page) == expected[4:]

    previous = stores.page(limit=2, order=order, before=expected[4])
    earlier = stores.page(limit=2, order=order, before=previous["first_id"])
    first = stores.page(limit=2, order=order, before=earlier["first_id"])

    # Pages keep list order; has_more says whether more lies further back.
    assert ids_of(previous) == expected[2:4]
    assert previous["has_more"] is True
    assert ids_of(earlier) == expected[0:2]
    assert earlier["has_more"] is False
    assert ids_of(first) == []
    assert first["has_more"] is False
    assert first["first_id"] is None


def test_default_is_twenty_newest_first(clock: ManualClock) -> None:
    stores = VectorStores()
    created = []
    for index in range(25):
        created.append(stores.create({"name": str(index)}, clock())["id"])
        clock.advance(1)

    page = stores.page()

    assert ids_of(page) == created[::-1][:20]
    assert page["has_more"] is True


def test_after_and_before_together_bound_a_window(
    seven: tuple[VectorStores, list[str]],
) -> None:
    stores, created = seven

    page = stores.page(limit=10, order="asc", after=created[1], before=created[5])

    assert ids_of(page) == created[2:5]
    assert page["has_more"] is False


def test_an_unknown_cursor_is_refused(seven: tuple[VectorStores, list[str]]) -> None:
    stores, _ = seven

    with pytest.raises(Refusal) as refused:
        stores.page(after="vs_nope")

    assert (refused.value.status, refused.value.param) == (400, "after")


async def test_pagination_over_http(fake: httpx.AsyncClient) -> None:
    for index in range(5):
        await fake.post("/v1/vector_stores", json={"name": f"s{index}"})

    first = (await fake.get("/v1/vector_stores", params={"limit": 2, "order": "asc"})).json()
    second = (
        await fake.get(
            "/v1/vector_stores", params={"limit": 2, "order": "asc", "after": first["last_id"]}
        )
    ).json()
    back = (
        await fake.get(
            "/v1/vector_stores",
            params={"limit": 2, "order": "asc", "before": second["first_id"]},
        )
    ).json()

    assert [s["name"] for s in first["data"]] == ["s0", "s1"]
    assert [s["name"] for s in second["data"]] == ["s2", "s3"]
    assert second["has_more"] is True
    assert back["data"] == first["data"]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "vs_missing"}, "after"),
    ],
)
async def test_bad_list_parameters_are_refused(
    fake: httpx.AsyncClient, params: dict[str, str], param: str
) -> None:
    response = await fake.get("/v1/vector_stores", params=params)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
