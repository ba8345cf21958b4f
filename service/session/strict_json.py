"""Strict JSON: request bodies (UTF-8 only, no NaN/Infinity, no number too large for a
double, an object where one is expected) and checks of the wire shapes, in OpenAI's
wording.

Each check takes a value and its parameter path, returns the value typed, or raises
`InvalidValue` / `UnknownParameter` naming that path. Messages follow OpenAI's wording;
none of them echoes the value, so a secret pasted into the wrong field is never
reflected into an error or a log. Like `service.session.translate`, this module knows nothing of
the session dataclasses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from service.errors import InvalidJSON, InvalidValue, UnknownParameter

MAX_ID_CHARS = 256
# Free text (instructions, tool descriptions, transcription prompts) is bounded by this
# hard cap whatever the policy says; the request body limit bounds the sum.
TEXT_MAX_CHARS = 65_536


class _NonFinite(ValueError):
    """A number the JSON spells finitely but a double cannot hold (`1e999`)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # Python's own float() reads `1e999` as inf, which `parse_constant` never sees; sent
    # on, it would be `Infinity` (not JSON) in the body the broker writes upstream.
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


class _OutOfRange:
    """Stands for a non-finite number while the body is read again to name its field."""


_OUT_OF_RANGE = _OutOfRange()


def _marked_float(text: str) -> float | _OutOfRange:
    value = float(text)
    return value if math.isfinite(value) else _OUT_OF_RANGE


# Built once: `json.loads` with a hook builds a decoder and its scanner on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# Only for a body refused for such a number: the refusal then names its field.
_MARKING_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_marked_float)


def parse_json(raw: bytes, *, empty: object = None) -> object:
    """Strict JSON: UTF-8 only, no NaN/Infinity, every number finite as a double (a 400
    naming the field of one that is not). An empty body gives `empty`."""
    if not raw.strip():
        if empty is None:
            raise InvalidJSON("The request body must be a JSON object.")
        return empty
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJSON("The request body is not valid JSON.") from exc
    return parse_json_text(text)


def parse_json_text(text: str) -> object:
    """`parse_json` of text already decoded (a WebSocket's text frame)."""
    try:
        return _DECODER.decode(text)
    except _NonFinite:
        path = _out_of_range_field(text)
        if not path:
            raise InvalidJSON("The request body holds a number out of range.") from None
        invalid(path, "number out of range.")
    except (ValueError, RecursionError) as exc:
        raise InvalidJSON("The request body is not valid JSON.") from exc


def _out_of_range_field(text: str) -> str | None:
    """The path of the first number out of range in the JSON `text`, if it can be told."""
    try:
        return _out_of_range_path(_MARKING_DECODER.decode(text), "")
    except (ValueError, RecursionError):
        return None


def _out_of_range_path(value: object, path: str) -> str | None:
    """The path of the first number out of range in `value` ("" for `value` itself)."""
    if value is _OUT_OF_RANGE:
        return path
    items: Iterable[tuple[str | int, object]] = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        found = _out_of_range_path(item, join(path, key))
        if found is not None:
            return found
    return None


def parse_json_object(raw: bytes, *, empty: object = None) -> dict[str, Any]:
    value = parse_json(raw, empty=empty)
    if not isinstance(value, dict):
        raise InvalidJSON("The request body must be a JSON object.")
    return value


MAX_LIST_ITEMS = 128


def join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return names.get(type(value), "an unsupported value")


def wrong_type(path: str, expected: str, value: object) -> NoReturn:
    raise InvalidValue(
        f"Invalid type for '{path}': expected {expected}, but got {_type_name(value)} instead.",
        param=path,
    )


def invalid(path: str, message: str) -> NoReturn:
    raise InvalidValue(f"Invalid value for '{path}': {message}", param=path)


def check_keys(obj: Mapping[str, Any], allowed: Iterable[str], prefix: str) -> None:
    """Reject the first key outside `allowed` (sorted, so the answer is stable)."""
    if isinstance(allowed, frozenset) and obj.keys() <= allowed:
        return  # the usual case, without building two sets
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        path = join(prefix, unknown[0])
        raise UnknownParameter(f"Unknown parameter: '{path}'.", param=path)


def as_object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        wrong_type(path, "an object", value)
    return value


def as_str(
    value: object,
    path: str,
    *,
    max_chars: int = MAX_ID_CHARS,
    choices: Iterable[str] | None = None,
    min_chars: int = 0,
) -> str:
    if not isinstance(value, str):
        wrong_type(path, "a string", value)
    if choices is not None:
        options = choices if isinstance(choices, tuple) else tuple(choices)
        if value not in options:
            invalid(path, f"supported values are: {', '.join(repr(o) for o in options)}.")
    size = len(value)
    if size > max_chars:
        invalid(path, f"string too long; expected at most {max_chars} characters.")
    if size < min_chars:
        invalid(path, "expected a non-empty string.")
    return value


def as_bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        wrong_type(path, "a boolean", value)
    return value


def as_int(value: object, path: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        wrong_type(path, "an integer", value)
    _check_range(value, path, low, high)
    return value


def as_number(
    value: object, path: str, low: float | None = None, high: float | None = None
) -> float:
    # bool is an int subclass: `true` is not a number. NaN/Infinity never get here
    # because the JSON parser of the web layer rejects them; an integer too large for a
    # double does (JSON integers are exact).
    if isinstance(value, bool) or not isinstance(value, int | float):
        wrong_type(path, "a number", value)
    _check_range(value, path, low, high)
    try:
        return float(value)
    except OverflowError:
        invalid(path, "number out of range.")


def _check_range(value: float, path: str, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        invalid(path, f"expected a value ≥ {low:g}.")
    if high is not None and value > high:
        invalid(path, f"expected a value ≤ {high:g}.")


def as_str_list(
    value: object,
    path: str,
    *,
    choices: Iterable[str] | None = None,
    max_chars: int = MAX_ID_CHARS,
    min_items: int = 0,
) -> tuple[str, ...]:
    if not isinstance(value, list):
        wrong_type(path, "an array", value)
    if len(value) < min_items:
        invalid(path, f"expected at least {min_items} item(s).")
    if len(value) > MAX_LIST_ITEMS:
        invalid(path, f"expected at most {MAX_LIST_ITEMS} items.")
    return tuple(
        as_str(item, join(path, i), choices=choices, max_chars=max_chars)
        for i, item in enumerate(value)
    )
