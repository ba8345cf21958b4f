from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import yaml

from service.errors import (
    BrokerError,
    InvalidJSON,
    InvalidRequest,
    InvalidValue,
    UnknownParameter,
)
from service.vector_stores.checks import LIST_ORDERS, check_object_id, validate_create

SPEC = Path(__file__).parents[1] / "schemas" / "openai-openapi-subset.yaml"
CODES: dict[type[BrokerError], str] = {
    InvalidJSON: "invalid_json",
    UnknownParameter: "unknown_parameter",
    InvalidValue: "invalid_value",
}


def _raises(
    exc_type: type[BrokerError], param: str | None, act: Callable[[], object]
) -> BrokerError:
    """Run `act`, check it raised exactly `exc_type` with `param`, a 400 and its code."""
    with pytest.raises(BrokerError) as info:
        act()
    exc = info.value
    assert type(exc) is exc_type
    assert isinstance(exc, InvalidRequest)
    assert exc.status == 400
    assert exc.param == param
    assert exc.body()["error"] == {
        "message": exc.message,
        "type": "invalid_request_error",
        "param": param,
        "code": CODES[exc_type],
    }
    return exc


# ---------------------------------------------------------------- list cursors
# The rest of a list's query (limit, order, repeats, unknown names) is the shared parser's:
# tests/web/test_handlers.py, and through HTTP tests/web/test_vector_stores_api.py.


@pytest.mark.parametrize("value", ["v", "vs_abc-1", "vs_Z_9", "v" * 256])
def test_an_object_id_is_passed_as_given(value: str) -> None:
    assert check_object_id("after", value) == value


@pytest.mark.parametrize("name", ["after", "before"])
@pytest.mark.parametrize("raw", ["", "v" * 257, "vs 1", "vs/1", "vs.1", "vs%1", "vs\n", "vs_é"])
def test_anything_else_is_refused_naming_the_cursor(name: str, raw: str) -> None:
    _raises(InvalidValue, name, lambda: check_object_id(name, raw))


def test_a_refused_cursor_is_not_echoed() -> None:
    exc = _raises(InvalidValue, "after", lambda: check_object_id("after", "secret value!"))
    assert "secret" not in exc.message


# ---------------------------------------------------------------- create body: shape


FULL_BODY: dict[str, Any] = {
    "file_ids": ["file-1", "file-2"],
    "name": "Support docs",
    "description": "What the helpdesk answers from",
    "expires_after": {"anchor": "last_active_at", "days": 7},
    "chunking_strategy": {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    },
    "metadata": {"team": "support"},
}


def test_create_full_body_forwarded_unchanged() -> None:
    body = json.loads(json.dumps(FULL_BODY))
    assert validate_create(body) == FULL_BODY


def test_create_empty_body_accepted() -> None:
    assert validate_create({}) == {}


def test_create_returns_a_new_dict() -> None:
    body: dict[str, Any] = {"name": "x"}
    result = validate_create(body)
    result["name"] = "y"
    assert body == {"name": "x"}


@pytest.mark.parametrize("body", [None, [], "name", 3, True, [{"name": "x"}]])
def test_create_body_not_an_object(body: object) -> None:
    _raises(InvalidJSON, None, lambda: validate_create(body))


@pytest.mark.parametrize("name", ["model", "Name", "file_id", "vector_store_id"])
def test_create_unknown_top_level_field(name: str) -> None:
    _raises(UnknownParameter, name, lambda: validate_create({"name": "ok", name: "x"}))


LONG_NAME = "x" * 64 + "y" * 100_000
SHOWN = "x" * 64 + "…"


@pytest.mark.parametrize(
    ("act", "param"),
    [
        (lambda: validate_create({LONG_NAME: "x"}), SHOWN),
        (
            lambda: validate_create({"expires_after": {LONG_NAME: 1}}),
            f"expires_after.{SHOWN}",
        ),
    ],
)
def test_an_unknown_name_is_echoed_cut_to_64_characters(
    act: Callable[[], object], param: str
) -> None:
    exc = _raises(UnknownParameter, param, act)
    assert exc.message == f"Unknown parameter: '{param}'."
    assert "y" not in exc.message


def test_an_unknown_name_of_64_characters_is_echoed_whole() -> None:
    _raises(UnknownParameter, "z" * 64, lambda: validate_create({"z" * 64: 1}))


# ---------------------------------------------------------------- file_ids


def test_file_ids_count_boundary() -> None:
    ids = [f"file-{i}" for i in range(500)]
    assert validate_create({"file_ids": ids}) == {"file_ids": ids}
    _raises(InvalidValue, "file_ids", lambda: validate_create({"file_ids": [*ids, "file-x"]}))


def test_file_ids_empty_list_accepted() -> None:
    assert validate_create({"file_ids": []}) == {"file_ids": []}


def test_file_id_length_boundary() -> None:
    assert validate_create({"file_ids": ["f" * 256]})
    _raises(InvalidValue, "file_ids[1]", lambda: validate_create({"file_ids": ["a", "f" * 257]}))


@pytest.mark.parametrize("bad", ["", 3, None, ["file-1"], {"id": "file-1"}])
def test_file_id_not_a_nonempty_string(bad: object) -> None:
    body = {"file_ids": ["file-0", "file-1", "file-2", bad]}
    _raises(InvalidValue, "file_ids[3]", lambda: validate_create(body))


@pytest.mark.parametrize("bad", ["file-1", None, {"0": "file-1"}, 1])
def test_file_ids_not_a_list(bad: object) -> None:
    _raises(InvalidValue, "file_ids", lambda: validate_create({"file_ids": bad}))


# ---------------------------------------------------------------- name, description


@pytest.mark.parametrize(("field", "cap"), [("name", 256), ("description", 512)])
def test_text_length_boundary(field: str, cap: int) -> None:
    assert validate_create({field: "n" * cap}) == {field: "n" * cap}
    assert validate_create({field: ""}) == {field: ""}
    _raises(InvalidValue, field, lambda: validate_create({field: "n" * (cap + 1)}))


@pytest.mark.parametrize("field", ["name", "description"])
@pytest.mark.parametrize("bad", [None, 3, True, ["x"], {"x": "y"}])
def test_text_not_a_string(field: str, bad: object) -> None:
    _raises(InvalidValue, field, lambda: validate_create({field: bad}))


# ---------------------------------------------------------------- metadata


def test_metadata_pair_count_boundary() -> None:
    sixteen = {f"k{i}": "v" for i in range(16)}
    assert validate_create({"metadata": sixteen}) == {"metadata": sixteen}
    seventeen = {**sixteen, "k16": "v"}
    _raises(InvalidValue, "metadata", lambda: validate_create({"metadata": seventeen}))


def test_metadata_key_length_boundary() -> None:
    assert validate_create({"metadata": {"k" * 64: "v"}})
    _raises(InvalidValue, "metadata", lambda: validate_create({"metadata": {"k" * 65: "v"}}))


def test_metadata_value_length_boundary() -> None:
    assert validate_create({"metadata": {"team": "v" * 512}})
    body = {"metadata": {"a": "ok", "team": "v" * 513}}
    _raises(InvalidValue, "metadata.team", lambda: validate_create(body))


def test_metadata_null_and_empty_accepted() -> None:
    assert validate_create({"metadata": None}) == {"metadata": None}
    assert validate_create({"metadata": {}}) == {"metadata": {}}


@pytest.mark.parametrize("bad", [3, None, True, ["v"], {"nested": "x"}])
def test_metadata_value_not_a_string(bad: object) -> None:
    _raises(InvalidValue, "metadata.team", lambda: validate_create({"metadata": {"team": bad}}))


@pytest.mark.parametrize("bad", ["team=support", [["team", "support"]], 3, True])
def test_metadata_not_an_object(bad: object) -> None:
    _raises(InvalidValue, "metadata", lambda: validate_create({"metadata": bad}))


def test_metadata_non_string_key() -> None:
    _raises(InvalidValue, "metadata", lambda: validate_create({"metadata": {1: "v"}}))


# ---------------------------------------------------------------- expires_after


@pytest.mark.parametrize("days", [1, 365])
def test_expires_days_accepted(days: int) -> None:
    body = {"expires_after": {"anchor": "last_active_at", "days": days}}
    assert validate_create(body) == body


@pytest.mark.parametrize("days", [0, 366, -1, True, 7.0, "7", None])
def test_expires_days_refused(days: object) -> None:
    body = {"expires_after": {"anchor": "last_active_at", "days": days}}
    _raises(InvalidValue, "expires_after.days", lambda: validate_create(body))


@pytest.mark.parametrize("anchor", ["created_at", "", None, 1])
def test_expires_anchor_refused(anchor: object) -> None:
    body = {"expires_after": {"anchor": anchor, "days": 7}}
    _raises(InvalidValue, "expires_after.anchor", lambda: validate_create(body))


@pytest.mark.parametrize("missing", ["anchor", "days"])
def test_expires_field_required(missing: str) -> None:
    expires = {"anchor": "last_active_at", "days": 7}
    del expires[missing]
    body = {"expires_after": expires}
    _raises(InvalidValue, f"expires_after.{missing}", lambda: validate_create(body))


def test_expires_unknown_field() -> None:
    body = {"expires_after": {"anchor": "last_active_at", "days": 7, "hours": 1}}
    _raises(UnknownParameter, "expires_after.hours", lambda: validate_create(body))


@pytest.mark.parametrize("bad", [7, None, "7 days", [7]])
def test_expires_not_an_object(bad: object) -> None:
    _raises(InvalidValue, "expires_after", lambda: validate_create({"expires_after": bad}))


# ---------------------------------------------------------------- chunking_strategy


def _static(size: object, overlap: object) -> dict[str, Any]:
    return {
        "chunking_strategy": {
            "type": "static",
            "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap},
        }
    }


SIZE = "chunking_strategy.static.max_chunk_size_tokens"
OVERLAP = "chunking_strategy.static.chunk_overlap_tokens"


def test_chunking_auto_accepted() -> None:
    body = {"chunking_strategy": {"type": "auto"}}
    assert validate_create(body) == body


def test_chunking_auto_with_extra_field() -> None:
    body = {"chunking_strategy": {"type": "auto", "static": {}}}
    _raises(UnknownParameter, "chunking_strategy.static", lambda: validate_create(body))


@pytest.mark.parametrize("size", [100, 4096])
def test_chunk_size_accepted(size: int) -> None:
    assert validate_create(_static(size, 0)) == _static(size, 0)


@pytest.mark.parametrize("size", [99, 4097, 0, True, 800.0, "800", None])
def test_chunk_size_refused(size: object) -> None:
    _raises(InvalidValue, SIZE, lambda: validate_create(_static(size, 0)))


@pytest.mark.parametrize(("size", "overlap"), [(800, 400), (800, 0), (101, 50), (4096, 2048)])
def test_chunk_overlap_accepted(size: int, overlap: int) -> None:
    assert validate_create(_static(size, overlap)) == _static(size, overlap)


@pytest.mark.parametrize(
    ("size", "overlap"),
    [(800, 401), (101, 51), (100, 51), (800, -1), (800, True), (800, 10.0), (800, None)],
)
def test_chunk_overlap_refused(size: int, overlap: object) -> None:
    _raises(InvalidValue, OVERLAP, lambda: validate_create(_static(size, overlap)))


@pytest.mark.parametrize("missing", ["max_chunk_size_tokens", "chunk_overlap_tokens"])
def test_chunk_static_fields_required(missing: str) -> None:
    body = _static(800, 400)
    del body["chunking_strategy"]["static"][missing]
    param = f"chunking_strategy.static.{missing}"
    _raises(InvalidValue, param, lambda: validate_create(body))


def test_chunk_static_unknown_field() -> None:
    body = _static(800, 400)
    body["chunking_strategy"]["static"]["min_chunk_size_tokens"] = 10
    param = "chunking_strategy.static.min_chunk_size_tokens"
    _raises(UnknownParameter, param, lambda: validate_create(body))


def test_chunk_static_object_required() -> None:
    body = {"chunking_strategy": {"type": "static"}}
    _raises(InvalidValue, "chunking_strategy.static", lambda: validate_create(body))


@pytest.mark.parametrize("bad", [None, 800, "800", []])
def test_chunk_static_not_an_object(bad: object) -> None:
    body = {"chunking_strategy": {"type": "static", "static": bad}}
    _raises(InvalidValue, "chunking_strategy.static", lambda: validate_create(body))


@pytest.mark.parametrize("kind", ["other", "", None, "AUTO"])
def test_chunk_type_refused(kind: object) -> None:
    body = {"chunking_strategy": {"type": kind}}
    _raises(InvalidValue, "chunking_strategy.type", lambda: validate_create(body))


def test_chunk_type_required() -> None:
    body: dict[str, Any] = {"chunking_strategy": {}}
    _raises(InvalidValue, "chunking_strategy.type", lambda: validate_create(body))


def test_chunk_unknown_field_on_static() -> None:
    body = _static(800, 400)
    body["chunking_strategy"]["auto"] = {}
    _raises(UnknownParameter, "chunking_strategy.auto", lambda: validate_create(body))


@pytest.mark.parametrize("bad", ["auto", None, ["auto"]])
def test_chunking_not_an_object(bad: object) -> None:
    _raises(InvalidValue, "chunking_strategy", lambda: validate_create({"chunking_strategy": bad}))


# ---------------------------------------------------------------- against the spec and the SDK


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return spec


def test_fields_and_bounds_match_vendored_spec() -> None:
    spec = _spec()
    schemas = spec["components"]["schemas"]
    create = schemas["CreateVectorStoreRequest"]
    assert create["additionalProperties"] is False
    for field in create["properties"]:
        assert field in FULL_BODY  # every spec field is exercised by the full-body test
    assert create["properties"]["file_ids"]["maxItems"] == 500
    days = schemas["VectorStoreExpirationAfter"]["properties"]["days"]
    assert (days["minimum"], days["maximum"]) == (1, 365)
    size = schemas["StaticChunkingStrategy"]["properties"]["max_chunk_size_tokens"]
    assert (size["minimum"], size["maximum"]) == (100, 4096)
    list_params = {p["name"]: p for p in spec["paths"]["/vector_stores"]["get"]["parameters"]}
    assert set(list_params) == {"limit", "order", "after", "before"}
    order = list_params["order"]["schema"]
    assert (sorted(order["enum"]), order["default"]) == (sorted(LIST_ORDERS), LIST_ORDERS[0])


def _sdk_client(seen: list[httpx2.Request]) -> openai.OpenAI:
    store = {
        "id": "vs_1",
        "object": "vector_store",
        "created_at": 1,
        "name": "n",
        "usage_bytes": 0,
        "file_counts": {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, "total": 0},
        "status": "completed",
        "last_active_at": None,
        "metadata": None,
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=store)

    transport = httpx2.MockTransport(handler)
    return openai.OpenAI(
        api_key="test-jwt",
        base_url="http://127.0.0.1/v1",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )


def test_sdk_create_body_is_accepted() -> None:
    seen: list[httpx2.Request] = []
    with _sdk_client(seen) as client:
        client.vector_stores.create(
            file_ids=["file-1"],
            name="Support docs",
            description="What the helpdesk answers from",
            expires_after={"anchor": "last_active_at", "days": 365},
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 4096, "chunk_overlap_tokens": 2048},
            },
            metadata={"team": "support"},
        )
    sent = json.loads(seen[0].content)
    assert set(sent) == set(FULL_BODY)
    assert validate_create(sent) == sent
