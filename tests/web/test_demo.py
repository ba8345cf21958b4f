"""The demo page's routes (dev mode only): the page is read once, when the routes are made,
not on every request; and what its spend line needs of dev mode: a priced policy, and an
owner token from `/dev/token` that reads the usage API a reader may not."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette

from service.cli import dev_environ
from service.config.settings import load_settings, unpriced_policy_models
from service.dev import create_dev_app
from service.web.demo import demo_routes
from tests.web.conftest import SECRET, make_settings


async def test_the_page_is_read_once_when_the_routes_are_made(tmp_path: Path) -> None:
    page = tmp_path / "demo.html"
    page.write_text("<p>first</p>", encoding="utf-8")
    settings = dataclasses.replace(make_settings(), dev=True)
    app = Starlette(routes=demo_routes(settings, page=page))
    # Changed, then gone: a page read per request would show either.
    page.write_text("<p>second</p>", encoding="utf-8")
    served = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        served.append(await client.get("/"))
        page.unlink()
        served.append(await client.get("/"))

    assert [(r.status_code, r.text) for r in served] == [(200, "<p>first</p>")] * 2
    assert served[0].headers["cache-control"] == "no-store"
    assert served[0].headers["content-type"].startswith("text/html")


def test_dev_mode_prices_every_model_of_its_policy() -> None:
    settings = load_settings(dev_environ({"BROKER_JWT_SECRET": SECRET}))
    (tenant,) = settings.tenants

    assert "owner" in tenant.policy.roles  # the page reads the usage API as one
    assert unpriced_policy_models(tenant) == []  # so the page's spend is never a silent $0


async def test_the_pages_usage_reader_is_an_owner_where_a_reader_is_refused() -> None:
    settings = dataclasses.replace(
        load_settings(dev_environ({"BROKER_JWT_SECRET": SECRET})), dev=True
    )
    midnight = int(time.time()) // 86400 * 86400
    costs = f"/v1/organization/costs?start_time={midnight}&bucket_width=1d&group_by[]=user_id"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_dev_app(settings)), base_url="http://broker"
    ) as client:
        answers = {}
        for role in ("reader", "owner"):
            issued = await client.post(
                "/dev/token", json={"user_id": "demo-usage-reader", "role": role}
            )
            token = issued.json()["token"]
            answers[role] = await client.get(costs, headers={"Authorization": f"Bearer {token}"})

    assert answers["reader"].status_code == 403
    assert answers["owner"].status_code == 200
    (today,) = answers["owner"].json()["data"]
    assert today["start_time"] == midnight
