"""The fake's shape combinators: what they accept and how they word refusals."""

from __future__ import annotations

from typing import Any

import pytest

from service.fake.validate import (
    Refusal,
    Shape,
    any_of,
    array,
    boolean,
    choice,
    integer,
    nullable,
    number,
    obj,
    string,
    string_map,
    tagged,
)

SESSION = obj(
    {
        "name": string(max_length=5),
        "count": integer(1, 10),
        "ratio": number(0.0, 1.0),
        "flag": boolean(),
        "kind": choice("a", "b"),
        "tags": array(string(), max_items=2),
        "maybe": nullable(integer()),
        "either": any_of(integer(), choice("inf"), expected="an integer or 'inf'"),
        "format": tagged(
            {"pcm": obj({"type": string(), "rate": integer()}), "ulaw": obj({"type": string()})}
        ),
        "meta": string_map(max_pairs=2, max_key=3, max_value=4),
    },
    required=("name",),
)


def refusal(shape: Shape, value: Any) -> Refusal:
    with pytest.raises(Refusal) as refused:
        shape(value, "session")
    return refused.value


def test_accepts_a_valid_value() -> None:
    SESSION(
        {
            "name": "abc",
            "count": 3,
            "ratio": 1,
            "flag": False,
            "kind": "b",
            "tags": ["x"],
            "maybe": None,
            "either": "inf",
            "format": {"type": "pcm", "rate": 24000},
            "meta": {"k": "v"},
        },
        "session",
    )


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        ({}, "session.name", "missing_required_parameter"),
        ({"name": "a", "extra": 1}, "session.extra", "unknown_parameter"),
        ({"name": "toolong"}, "session.name", "string_above_max_length"),
        ({"name": 1}, "session.name", "invalid_value"),
        ({"name": "a", "count": True}, "session.count", "invalid_value"),
        ({"name": "a", "count": 1.5}, "session.count", "invalid_value"),
        ({"name": "a", "count": 11}, "session.count", "invalid_value"),
        ({"name": "a", "ratio": "1"}, "session.ratio", "invalid_value"),
        ({"name": "a", "flag": 1}, "session.flag", "invalid_value"),
        ({"name": "a", "kind": "c"}, "session.kind", "invalid_value"),
        ({"name": "a", "tags": ["x", "y", "z"]}, "session.tags", "array_above_max_length"),
        ({"name": "a", "tags": ["x", 2]}, "session.tags[1]", "invalid_value"),
        ({"name": "a", "either": "all"}, "session.either", "invalid_value"),
        ({"name": "a", "format": {"rate": 1}}, "session.format.type", "missing_required_parameter"),
        ({"name": "a", "format": {"type": "mp3"}}, "session.format.type", "invalid_value"),
        (
            {"name": "a", "format": {"type": "ulaw", "rate": 8000}},
            "session.format.rate",
            "unknown_parameter",
        ),
        (
            {"name": "a", "meta": {"a": "1", "b": "2", "c": "3"}},
            "session.meta",
            "object_above_max_properties",
        ),
        ({"name": "a", "meta": {"long": "1"}}, "session.meta", "string_above_max_length"),
        ({"name": "a", "meta": {"k": "12345"}}, "session.meta.k", "string_above_max_length"),
        ("name", "session", "invalid_value"),
    ],
)
def test_refuses_with_param_and_code(value: Any, param: str, code: str) -> None:
    refused = refusal(SESSION, value)

    assert (refused.status, refused.param, refused.code) == (400, param, code)
    assert refused.body()["error"] == {
        "message": refused.message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }


def test_messages_read_like_openais() -> None:
    assert refusal(SESSION, {"name": "a", "temperature": 1}).message == (
        "Unknown parameter: 'session.temperature'."
    )
    assert refusal(SESSION, {"name": 5}).message == (
        "Invalid type for 'session.name': expected a string, but got an integer instead."
    )
