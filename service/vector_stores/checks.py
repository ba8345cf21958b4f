"""Validation of the vector-store requests the broker proxies (pure: no I/O, no state).

``GET /v1/vector_stores`` and ``POST /v1/vector_stores`` are forwarded upstream, but only
after these checks, so that a malformed request costs no upstream call and the caller gets
an OpenAI-shaped 400 naming the offending ``param``. The rules are those of
``CreateVectorStoreRequest`` and the list operation in the vendored OpenAPI subset, for
every field the official SDK sends (it also sends ``description``). A list's query is read
by the one parser of list queries (web.handlers.parse_page_query: ``limit``, repeats,
unknown names) with this module's cursor rule (``check_object_id``) and ``LIST_ORDERS``.

Where the spec sets no bound, the broker sets a generous one of its own so that an oversized
value is refused here rather than relayed: ``name`` ≤ 256 characters, ``description`` ≤ 512,
each file id and each list cursor ≤ 256. Integers must be JSON integers: ``true`` and ``7.0``
are refused. Error messages never echo the caller's values, only parameter names and bounds;
an unknown name is echoed (message and ``param``) cut to 64 characters and an ellipsis.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from service.errors import InvalidJSON, InvalidValue, UnknownParameter

# A list's `order` values, upstream's default first.
LIST_ORDERS = ("desc", "asc")
MAX_CURSOR_CHARS = 256

MAX_FILE_IDS = 500
MAX_FILE_ID_CHARS = 256
MAX_NAME_CHARS = 256
MAX_DESCRIPTION_CHARS = 512
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
EXPIRES_ANCHORS = ("last_active_at",)
EXPIRES_DAYS_MIN = 1
EXPIRES_DAYS_MAX = 365
CHUNK_SIZE_MIN = 100
CHUNK_SIZE_MAX = 4096
# An unknown parameter's name is the caller's text: echoed, but no longer than this.
MAX_ECHOED_NAME_CHARS = 64

# An object id as upstream writes them (`vs_...`): anything else is refused, not relayed.
_OBJECT_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CURSOR_CHARS}}}")


def check_object_id(param: str, value: str) -> str:
    """A list cursor (`after`, `before`): the value, or an `InvalidValue` naming `param`
    that does not echo it (web.handlers.parse_page_query calls this for each cursor)."""
    if _OBJECT_ID.fullmatch(value) is None:
        raise InvalidValue(
            f"'{param}' must be an object id: 1 to {MAX_CURSOR_CHARS} characters "
            "among letters, digits, '_' and '-'.",
            param=param,
        )
    return value


def validate_create(body: object) -> dict[str, Any]:
    """Validate a vector-store create body; return the body to forward (values unchanged).

    Raises ``InvalidJSON`` when the body is not a JSON object, ``UnknownParameter`` for a
    field the spec does not define (at any depth), ``InvalidValue`` for everything else;
    ``param`` names the field, e.g. ``file_ids[3]`` or ``expires_after.days``.
    """
    if not isinstance(body, Mapping):
        raise InvalidJSON("The request body must be a JSON object.")
    for key, value in body.items():
        check = _CREATE_FIELDS.get(key) if isinstance(key, str) else None
        if check is None:
            raise _unknown(str(key))
        check(value)
    return dict(body)


def _check_file_ids(value: object) -> None:
    if not isinstance(value, list):
        raise InvalidValue("'file_ids' must be an array of file ids.", param="file_ids")
    if len(value) > MAX_FILE_IDS:
        raise InvalidValue(
            f"'file_ids' must hold at most {MAX_FILE_IDS} ids (got {len(value)}).",
            param="file_ids",
        )
    for index, file_id in enumerate(value):
        _check_string(file_id, f"file_ids[{index}]", MAX_FILE_ID_CHARS, allow_empty=False)


def _check_name(value: object) -> None:
    _check_string(value, "name", MAX_NAME_CHARS)


def _check_description(value: object) -> None:
    _check_string(value, "description", MAX_DESCRIPTION_CHARS)


def _check_metadata(value: object) -> None:
    if value is None:
        return
    pairs = _object(value, "metadata")
    if len(pairs) > MAX_METADATA_PAIRS:
        raise InvalidValue(
            f"'metadata' must hold at most {MAX_METADATA_PAIRS} pairs (got {len(pairs)}).",
            param="metadata",
        )
    for key, item in pairs.items():
        # A bad key is reported as 'metadata': echoing an over-long key in `param` helps nobody.
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise InvalidValue(
                f"'metadata' keys must be at most {MAX_METADATA_KEY_CHARS} characters.",
                param="metadata",
            )
        _check_string(item, f"metadata.{key}", MAX_METADATA_VALUE_CHARS)


def _check_expires_after(value: object) -> None:
    param = "expires_after"
    obj = _object(value, param)
    _only_keys(obj, param, ("anchor", "days"))
    if _required(obj, param, "anchor") not in EXPIRES_ANCHORS:
        raise InvalidValue(
            "'expires_after.anchor' must be 'last_active_at'.", param="expires_after.anchor"
        )
    _check_int(_required(obj, param, "days"), f"{param}.days", EXPIRES_DAYS_MIN, EXPIRES_DAYS_MAX)


def _check_chunking_strategy(value: object) -> None:
    param = "chunking_strategy"
    obj = _object(value, param)
    kind = _required(obj, param, "type")
    if kind == "auto":
        _only_keys(obj, param, ("type",))
    elif kind == "static":
        _only_keys(obj, param, ("type", "static"))
        inner = f"{param}.static"
        static = _object(_required(obj, param, "static"), inner)
        _only_keys(static, inner, ("max_chunk_size_tokens", "chunk_overlap_tokens"))
        size = _check_int(
            _required(static, inner, "max_chunk_size_tokens"),
            f"{inner}.max_chunk_size_tokens",
            CHUNK_SIZE_MIN,
            CHUNK_SIZE_MAX,
        )
        # "must not exceed half of max_chunk_size_tokens": for integers, overlap <= size // 2.
        _check_int(
            _required(static, inner, "chunk_overlap_tokens"),
            f"{inner}.chunk_overlap_tokens",
            0,
            size // 2,
        )
    else:
        raise InvalidValue(
            "'chunking_strategy.type' must be 'auto' or 'static'.", param=f"{param}.type"
        )


_CREATE_FIELDS: Mapping[str, Callable[[object], None]] = {
    "file_ids": _check_file_ids,
    "name": _check_name,
    "description": _check_description,
    "expires_after": _check_expires_after,
    "chunking_strategy": _check_chunking_strategy,
    "metadata": _check_metadata,
}


def _unknown(name: str, *, parent: str | None = None) -> UnknownParameter:
    """The refusal of an unknown parameter, naming it (cut: it is the caller's text)."""
    if len(name) > MAX_ECHOED_NAME_CHARS:
        name = name[:MAX_ECHOED_NAME_CHARS] + "…"
    path = name if parent is None else f"{parent}.{name}"
    return UnknownParameter(f"Unknown parameter: '{path}'.", param=path)


def _object(value: object, param: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidValue(f"'{param}' must be an object.", param=param)
    return value


def _only_keys(obj: Mapping[str, object], param: str, allowed: Sequence[str]) -> None:
    for key in obj:
        if key not in allowed:
            raise _unknown(key, parent=param)


def _required(obj: Mapping[str, object], param: str, key: str) -> object:
    if key not in obj:
        raise InvalidValue(f"Missing required parameter: '{param}.{key}'.", param=f"{param}.{key}")
    return obj[key]


def _check_string(value: object, param: str, max_chars: int, *, allow_empty: bool = True) -> None:
    if not isinstance(value, str):
        raise InvalidValue(f"'{param}' must be a string.", param=param)
    if len(value) > max_chars or (not value and not allow_empty):
        low = 0 if allow_empty else 1
        raise InvalidValue(f"'{param}' must be {low} to {max_chars} characters long.", param=param)


def _check_int(value: object, param: str, low: int, high: int) -> int:
    # bool is a subclass of int in Python, but `true` is not an integer in JSON.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidValue(f"'{param}' must be an integer between {low} and {high}.", param=param)
    return value
