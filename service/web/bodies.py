"""Reading request bodies: bounded in size, strict JSON."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from service.errors import RequestTooLarge
from service.session.strict_json import parse_json, parse_json_object

__all__ = ["MAX_BODY_BYTES", "parse_json", "parse_json_object", "read_body", "read_json_object"]

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


async def read_json_object(request: Request, *, empty: object = None) -> dict[str, Any]:
    return parse_json_object(await read_body(request), empty=empty)
