"""The middleware: request ids (random, unique, never shared with a fork), the error
shape even for an unexpected failure, and each error's code on its access line."""

from __future__ import annotations

import logging
import os
import re

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.dev import create_dev_app
from service.web.middleware import _RandomIds, request_id_from
from tests.web.conftest import make_settings

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def test_generated_ids_are_32_hex_digits_and_unique_across_batches() -> None:
    ids = [request_id_from({"headers": []}) for _ in range(3 * _RandomIds._BATCH + 7)]

    assert all(HEX_ID.match(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_one_system_call_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.urandom

    def counting(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counting)
    ids = _RandomIds()
    made = [ids.next_hex() for _ in range(2 * _RandomIds._BATCH + 1)]

    assert calls == [16 * _RandomIds._BATCH] * 3
    assert len(set(made)) == len(made)


def test_a_valid_incoming_id_is_kept_and_an_invalid_one_replaced() -> None:
    kept = request_id_from({"headers": [(b"x-request-id", b"req-1.2:3")]})
    replaced = request_id_from({"headers": [(b"x-request-id", b"bad id\xff")]})

    assert kept == "req-1.2:3"
    assert HEX_ID.match(replaced)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    ids = _RandomIds()
    ids.next_hex()  # the parent's buffer now holds 255 unused ids
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        os.write(write_end, ids.next_hex().encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent = ids.next_hex()

    assert HEX_ID.match(child)
    assert child != parent


async def boom(request: Request) -> Response:
    raise RuntimeError("unexpected")


async def test_every_error_is_the_error_shape_and_its_code_is_on_the_access_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_dev_app(make_settings())
    app.router.routes.append(Route("/boom", boom, methods=["GET"]))
    caplog.set_level(logging.INFO, logger="service.access")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        responses = [
            await client.get("/boom"),
            await client.get("/nowhere"),
            await client.delete("/healthz"),
        ]

    assert [r.status_code for r in responses] == [500, 404, 405]
    assert responses[0].json() == {
        "error": {
            "message": "Internal server error.",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    assert [r.json()["error"]["code"] for r in responses[1:]] == ["not_found", "method_not_allowed"]
    assert set(responses[2].headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert all(HEX_ID.match(r.headers["x-request-id"]) for r in responses)
    access = [r.__dict__ for r in caplog.records if r.name == "service.access"]
    assert [(e["status"], e["error"]) for e in access] == [
        (500, "internal_error"),
        (404, "not_found"),
        (405, "method_not_allowed"),
    ]
    assert [r.getMessage() for r in caplog.records if r.name == "service.web"] == [
        "unhandled error"
    ]
