"""The demo page's routes (dev mode only): the page is read once, when the routes are made,
not on every request."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
from starlette.applications import Starlette

from service.web.demo import demo_routes
from tests.web.conftest import make_settings


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
