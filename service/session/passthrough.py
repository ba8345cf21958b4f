"""Pass-through session objects: checked against the spec, kept as JSON.

MCP tools, tracing, truncation, prompt and reasoning are not modelled field by field:
the session keeps them as the client sent them (without nulls), once each key has been
checked here with the strict checks of `service.session.strict_json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.session.model import REASONING_EFFORTS
from service.session.strict_json import (
    TEXT_MAX_CHARS,
    as_bool,
    as_int,
    as_number,
    as_object,
    as_str,
    as_str_list,
    check_keys,
    join,
)

_MCP_KEYS = (
    "type",
    "server_label",
    "server_url",
    "connector_id",
    "tunnel_id",
    "authorization",
    "server_description",
    "headers",
    "allowed_tools",
    "allowed_callers",
    "require_approval",
    "defer_loading",
)
_CONNECTORS = (
    "connector_dropbox",
    "connector_gmail",
    "connector_googlecalendar",
    "connector_googledrive",
    "connector_microsoftteams",
    "connector_outlookcalendar",
    "connector_outlookemail",
    "connector_sharepoint",
)
_URL_MAX_CHARS = 2048


def check_mcp_tool(obj: Mapping[str, Any], path: str) -> dict[str, Any]:
    """An MCP tool (GA only), checked key by key; returned without nulls."""
    check_keys(obj, _MCP_KEYS, path)
    as_str(obj.get("server_label"), join(path, "server_label"), min_chars=1)
    checks = {
        "server_url": lambda v, p: as_str(v, p, max_chars=_URL_MAX_CHARS),
        "connector_id": lambda v, p: as_str(v, p, choices=_CONNECTORS),
        "tunnel_id": lambda v, p: as_str(v, p),
        "authorization": lambda v, p: as_str(v, p, max_chars=TEXT_MAX_CHARS),
        "server_description": lambda v, p: as_str(v, p, max_chars=TEXT_MAX_CHARS),
        "headers": _check_headers,
        "allowed_tools": _check_allowed_tools,
        "allowed_callers": lambda v, p: as_str_list(
            v, p, choices=("direct", "programmatic"), min_items=1
        ),
        "require_approval": _check_require_approval,
        "defer_loading": as_bool,
    }
    for key, check in checks.items():
        if obj.get(key) is not None:
            check(obj[key], join(path, key))
    return {k: v for k, v in obj.items() if v is not None}


def _check_headers(value: object, path: str) -> None:
    for name, header in as_object(value, path).items():
        as_str(header, join(path, name), max_chars=TEXT_MAX_CHARS)


def _check_tool_filter(value: object, path: str) -> None:
    obj = as_object(value, path)
    check_keys(obj, ("tool_names", "read_only"), path)
    if "tool_names" in obj:
        as_str_list(obj["tool_names"], join(path, "tool_names"))
    if "read_only" in obj:
        as_bool(obj["read_only"], join(path, "read_only"))


def _check_allowed_tools(value: object, path: str) -> None:
    if isinstance(value, list):
        as_str_list(value, path)
    else:
        _check_tool_filter(value, path)


def _check_require_approval(value: object, path: str) -> None:
    if isinstance(value, str):
        as_str(value, path, choices=("always", "never"))
        return
    obj = as_object(value, path)
    check_keys(obj, ("always", "never"), path)
    for key in ("always", "never"):
        if key in obj:
            _check_tool_filter(obj[key], join(path, key))


def check_tracing(value: object, path: str) -> str | dict[str, Any]:
    if isinstance(value, str):
        return as_str(value, path, choices=("auto",))
    obj = as_object(value, path)
    check_keys(obj, ("workflow_name", "group_id", "metadata"), path)
    for key in ("workflow_name", "group_id"):
        if key in obj:
            as_str(obj[key], join(path, key))
    if "metadata" in obj:
        as_object(obj["metadata"], join(path, "metadata"))
    return dict(obj)


def check_truncation(value: object, path: str) -> str | dict[str, Any]:
    if isinstance(value, str):
        return as_str(value, path, choices=("auto", "disabled"))
    obj = as_object(value, path)
    check_keys(obj, ("type", "retention_ratio", "token_limits"), path)
    as_str(obj.get("type"), join(path, "type"), choices=("retention_ratio",))
    as_number(obj.get("retention_ratio"), join(path, "retention_ratio"), 0.0, 1.0)
    if "token_limits" in obj:
        limits = as_object(obj["token_limits"], join(path, "token_limits"))
        check_keys(limits, ("post_instructions",), join(path, "token_limits"))
        if "post_instructions" in limits:
            as_int(limits["post_instructions"], join(path, "token_limits.post_instructions"), 0)
    return dict(obj)


def check_prompt(value: object, path: str) -> dict[str, Any]:
    obj = as_object(value, path)
    check_keys(obj, ("id", "version", "variables"), path)
    as_str(obj.get("id"), join(path, "id"), min_chars=1)
    if obj.get("version") is not None:
        as_str(obj["version"], join(path, "version"))
    if obj.get("variables") is not None:
        as_object(obj["variables"], join(path, "variables"))
    return {k: v for k, v in obj.items() if v is not None}


def check_reasoning(value: object, path: str) -> dict[str, Any]:
    obj = as_object(value, path)
    check_keys(obj, ("effort",), path)
    if "effort" in obj:
        as_str(obj["effort"], join(path, "effort"), choices=REASONING_EFFORTS)
    return dict(obj)
