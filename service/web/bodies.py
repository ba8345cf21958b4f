"""Reading request bodies: bounded in size, strict JSON."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from service.errors import InvalidJSON, RequestTooLarge

MAX_BODY_BYTES = 64 * 1024


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refusing more than `limit` bytes without reading past it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes, *, empty: object = None) -> object:
    """Strict JSON: UTF-8 only, no NaN/Infinity. An empty body gives `empty`."""
    if not raw.strip():
        if empty is None:
            raise InvalidJSON("The request body must be a JSON object.")
        return empty
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidJSON("The request body is not valid JSON.") from exc


def parse_json_object(raw: bytes, *, empty: object = None) -> dict[str, Any]:
    value = parse_json(raw, empty=empty)
    if not isinstance(value, dict):
        raise InvalidJSON("The request body must be a JSON object.")
    return value


async def read_json_object(request: Request, *, empty: object = None) -> dict[str, Any]:
    return parse_json_object(await read_body(request), empty=empty)
