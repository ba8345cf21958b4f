"""Strict JSON request bodies: UTF-8 only, no NaN/Infinity, an object where one is
expected. Used by the web layer and by the mint memo (service/mint_plans.py)."""

from __future__ import annotations

import json
from typing import Any

from service.errors import InvalidJSON


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
