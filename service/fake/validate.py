"""A small closed-world shape checker for the fake upstream.

The reference schemas are open (no `additionalProperties: false`) while the real API refuses
unknown fields, and jsonschema is a test-only dependency: so the fake describes what OpenAI
accepts with these few combinators and refuses the rest with OpenAI's error shape. A shape is
a function `(value, path) -> None` that raises `Refusal`; paths read like OpenAI's `param`
(`session.audio.input.format.rate`, `tools[0].name`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Shape = Callable[[Any, str], None]


class Refusal(Exception):
    """An OpenAI-shaped error answer from the fake (status plus the `error` object)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong_type(path: str, expected: str, value: object) -> Refusal:
    return Refusal(
        400,
        f"Invalid type for '{path}': expected {expected}, but got {_kind(value)} instead.",
        param=path,
        code="invalid_value",
    )


def _out_of_range(path: str, value: object, lo: float | None, hi: float | None) -> Refusal:
    bounds = (
        f"between {lo} and {hi}"
        if lo is not None and hi is not None
        else (f"at least {lo}" if lo is not None else f"at most {hi}")
    )
    return Refusal(
        400,
        f"Invalid '{path}': expected a value {bounds}, but got {value} instead.",
        param=path,
        code="invalid_value",
    )


def string(*, max_length: int | None = None, min_length: int = 0) -> Shape:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise _wrong_type(path, "a string", value)
        if len(value) < min_length:
            raise Refusal(
                400,
                f"Invalid '{path}': string too short. Expected a string with minimum length "
                f"{min_length}, but got a string with length {len(value)} instead.",
                param=path,
                code="string_below_min_length",
            )
        if max_length is not None and len(value) > max_length:
            raise Refusal(
                400,
                f"Invalid '{path}': string too long. Expected a string with maximum length "
                f"{max_length}, but got a string with length {len(value)} instead.",
                param=path,
                code="string_above_max_length",
            )

    return check


def integer(lo: int | None = None, hi: int | None = None) -> Shape:
    def check(value: Any, path: str) -> None:
        # bool is an int in Python and not in JSON.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(path, "an integer", value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _out_of_range(path, value, lo, hi)

    return check


def number(lo: float | None = None, hi: float | None = None) -> Shape:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(path, "a number", value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _out_of_range(path, value, lo, hi)

    return check


def boolean() -> Shape:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise _wrong_type(path, "a boolean", value)

    return check


def choice(*allowed: object) -> Shape:
    def check(value: Any, path: str) -> None:
        if isinstance(value, bool) or value not in allowed:
            supported = ", ".join(repr(a) for a in allowed)
            raise Refusal(
                400,
                f"Invalid value: {value!r}. Supported values are: {supported}.",
                param=path,
                code="invalid_value",
            )

    return check


def nullable(shape: Shape) -> Shape:
    def check(value: Any, path: str) -> None:
        if value is not None:
            shape(value, path)

    return check


def array(item: Shape, *, max_items: int | None = None) -> Shape:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise _wrong_type(path, "an array", value)
        if max_items is not None and len(value) > max_items:
            raise Refusal(
                400,
                f"Invalid '{path}': array too long. Expected an array with maximum length "
                f"{max_items}, but got an array with length {len(value)} instead.",
                param=path,
                code="array_above_max_length",
            )
        for index, element in enumerate(value):
            item(element, f"{path}[{index}]")

    return check


def any_of(*shapes: Shape, expected: str) -> Shape:
    """The first shape that accepts wins; when none does, one message names them all."""

    def check(value: Any, path: str) -> None:
        for shape in shapes:
            try:
                shape(value, path)
            except Refusal:
                continue
            return
        raise Refusal(
            400,
            f"Invalid value for '{path}': expected {expected}.",
            param=path,
            code="invalid_value",
        )

    return check


def obj(
    fields: Mapping[str, Shape], *, required: tuple[str, ...] = (), open: bool = False
) -> Shape:
    """A JSON object; unknown keys are refused unless `open` (OpenAI refuses them)."""

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _wrong_type(path, "an object", value)
        for key in required:
            if key not in value:
                raise Refusal(
                    400,
                    f"Missing required parameter: '{_join(path, key)}'.",
                    param=_join(path, key),
                    code="missing_required_parameter",
                )
        for key, element in value.items():
            shape = fields.get(key)
            if shape is None:
                if open:
                    continue
                raise Refusal(
                    400,
                    f"Unknown parameter: '{_join(path, key)}'.",
                    param=_join(path, key),
                    code="unknown_parameter",
                )
            shape(element, _join(path, key))

    return check


def tagged(variants: Mapping[str, Shape], *, tag: str = "type") -> Shape:
    """An object union told apart by its `type` field, as OpenAI's discriminators are."""

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _wrong_type(path, "an object", value)
        if tag not in value:
            raise Refusal(
                400,
                f"Missing required parameter: '{_join(path, tag)}'.",
                param=_join(path, tag),
                code="missing_required_parameter",
            )
        choice(*variants)(value[tag], _join(path, tag))
        variants[value[tag]](value, path)

    return check


def any_object() -> Shape:
    """Free-form objects: function parameters (JSON Schema), prompt variables."""

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _wrong_type(path, "an object", value)

    return check


def string_map(*, max_pairs: int, max_key: int, max_value: int) -> Shape:
    """OpenAI's `metadata`: up to 16 string pairs, keys ≤ 64 and values ≤ 512 characters."""
    key_shape = string(max_length=max_key)
    value_shape = string(max_length=max_value)

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _wrong_type(path, "an object", value)
        if len(value) > max_pairs:
            raise Refusal(
                400,
                f"Invalid '{path}': too many properties. Expected an object with at most "
                f"{max_pairs} properties, but got an object with {len(value)} properties instead.",
                param=path,
                code="object_above_max_properties",
            )
        for key, element in value.items():
            key_shape(key, path)
            value_shape(element, _join(path, key))

    return check
