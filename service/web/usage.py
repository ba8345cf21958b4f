"""Usage, costs and the tenant's spend limit in OpenAI's admin shapes (DESIGN 11):
`GET /v1/organization/usage/completions`, `GET /v1/organization/costs`,
`GET|POST|DELETE /v1/organization/spend_limit`. An admin key or an owner's JWT (a reader
gets 403, as on the organization-users routes); `project_id` is the tenant. Parse, call
the ledger (service.usage), render."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from service.calls.controller import CallController
from service.clock import Clock, system_clock
from service.directory import Actor, Directory
from service.errors import (
    InvalidValue,
    NotFound,
    ServiceUnavailable,
    StoreUnavailable,
    UnknownParameter,
)
from service.logs import current_request_id
from service.usage.budgets import SPEND_LIMIT_REACHED
from service.usage.ledger import Ledger
from service.usage.model import NANO
from service.usage.query import (
    completions_page,
    costs_page,
    parse_costs_query,
    parse_usage_query,
)
from service.web.bodies import read_json_object
from service.web.calls import controller_of
from service.web.handlers import authorize, broker_of
from service.web.openapi import DIRECTORY, DocumentedRoute, Operation, json_body, query

# A child of `service.audit`, as the directory's and the mints' audit lines.
audit_logger = logging.getLogger("service.audit.spend_limit")

COMPLETIONS_PATH = "/v1/organization/usage/completions"
COSTS_PATH = "/v1/organization/costs"
SPEND_LIMIT_PATH = "/v1/organization/spend_limit"

_INT = {"type": "integer", "minimum": 0}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_PAGE = {
    "type": "object",
    "required": ["object", "data", "has_more", "next_page"],
    "properties": {
        "object": {"const": "page"},
        "data": {"type": "array", "items": {"type": "object"}},
        "has_more": {"type": "boolean"},
        "next_page": {"type": ["string", "null"]},
    },
}
_WINDOW = (
    {"name": "start_time", "in": "query", "required": True, "schema": _INT},
    query("end_time", _INT),
    query("page", {"type": "string"}),
)
USAGE = Operation(
    "Usage of supervised calls and GPT-Live sessions per bucket (owner or admin key).",
    _PAGE,
    DIRECTORY,
    parameters=(
        *_WINDOW,
        query("bucket_width", {"enum": ["1m", "1h", "1d"]}),
        query("group_by", {"type": "array", "items": {"enum": ["user_id", "model", "project_id"]}}),
        query("user_ids", _STRINGS),
        query("models", _STRINGS),
        query("project_ids", _STRINGS),
        query("limit", {"type": "integer", "minimum": 1, "maximum": 1440}),
    ),
)
COSTS = Operation(
    "Costs in USD per day, as priced (owner or admin key).",
    _PAGE,
    DIRECTORY,
    parameters=(
        *_WINDOW,
        query("bucket_width", {"enum": ["1d"]}),
        query(
            "group_by", {"type": "array", "items": {"enum": ["user_id", "line_item", "project_id"]}}
        ),
        query("project_ids", _STRINGS),
        query("line_items", _STRINGS),
        query("limit", {"type": "integer", "minimum": 1, "maximum": 180}),
    ),
)
_LIMIT = {
    "type": "object",
    "required": ["object", "currency", "interval", "threshold_amount", "enforcement"],
    "properties": {
        "object": {"const": "organization.spend_limit"},
        "currency": {"const": "USD"},
        "interval": {"const": "month"},
        "threshold_amount": _INT,
        "enforcement": {
            "type": "object",
            "properties": {"status": {"enum": ["inactive", "enforcing"]}},
        },
    },
}
GET_LIMIT = Operation("The tenant's hard monthly spend limit.", _LIMIT, DIRECTORY)
SET_LIMIT = Operation(
    "Create or replace the tenant's hard monthly spend limit (cents).",
    _LIMIT,
    (*DIRECTORY, 413),
    request=json_body(
        {
            "type": "object",
            "required": ["currency", "interval", "threshold_amount"],
            "properties": {
                "currency": {"const": "USD"},
                "interval": {"const": "month"},
                "threshold_amount": _INT,
            },
        }
    ),
    request_required=True,
)
DELETE_LIMIT = Operation(
    "Delete the tenant's spend limit: its work goes through again at once.",
    {
        "type": "object",
        "required": ["object", "deleted"],
        "properties": {"object": {"const": "organization.spend_limit.deleted"}},
    },
    DIRECTORY,
)


async def _actor(request: Request, clock: Clock) -> Actor:
    broker = broker_of(request)
    return await authorize(request, Directory(broker.store, broker.settings.tenants, clock=clock))


def _ledger(request: Request) -> Ledger:
    return controller_of(request).store.ledger


async def _read(call: Any) -> Any:
    try:
        return await call
    except StoreUnavailable as exc:
        raise ServiceUnavailable(
            "The usage ledger is unavailable.", code="store_unavailable"
        ) from exc


def _limit_object(cents: int, tenant_month: int) -> dict[str, Any]:
    enforcing = tenant_month >= cents * (NANO // 100)
    return {
        "object": "organization.spend_limit",
        "currency": "USD",
        "interval": "month",
        "threshold_amount": cents,
        "enforcement": {"status": "enforcing" if enforcing else "inactive"},
        "notification_channel": None,
    }


def _audit(action: str, actor: Actor, cents: int | None, clock: Clock) -> None:
    """A spend-limit change is an operator's act: who, when, the new threshold."""
    audit_logger.info(
        "spend limit change",
        extra={
            "event": "audit",
            "action": action,
            "tenant": actor.tenant,
            "actor": actor.label,
            "threshold_amount": cents,
            "at": int(clock()),
            "request_id": current_request_id(),
        },
    )


def _threshold(body: dict[str, Any]) -> int:
    for name in sorted(
        set(body) - {"currency", "interval", "threshold_amount", "notification_channel"}
    ):
        raise UnknownParameter(f"Unknown parameter: '{name[:64]}'.", param=name[:64])
    if body.get("currency") != "USD":
        raise InvalidValue("'currency' must be \"USD\".", param="currency")
    if body.get("interval") != "month":
        raise InvalidValue("'interval' must be \"month\".", param="interval")
    if body.get("notification_channel") is not None:
        raise InvalidValue(
            "The broker sends no notifications: leave 'notification_channel' out.",
            param="notification_channel",
        )
    cents = body.get("threshold_amount")
    if not isinstance(cents, int) or isinstance(cents, bool) or not 0 <= cents <= 10**13:
        raise InvalidValue(
            "'threshold_amount' must be a whole number of cents.", param="threshold_amount"
        )
    return cents


def usage_routes(*, clock: Clock = system_clock) -> list[BaseRoute]:
    """The usage, costs and spend-limit routes; `clock` is the ledger's now."""

    async def completions(request: Request) -> Response:
        actor = await _actor(request, clock)
        parsed = parse_usage_query(request.query_params.multi_items())
        starts, next_start = parsed.starts(clock())
        data = await _read(_ledger(request).buckets(actor.tenant, parsed.width, starts))
        return JSONResponse(completions_page(parsed, actor.tenant, starts, next_start, data))

    async def costs(request: Request) -> Response:
        actor = await _actor(request, clock)
        parsed = parse_costs_query(request.query_params.multi_items())
        starts, next_start = parsed.starts(clock())
        data = await _read(_ledger(request).buckets(actor.tenant, "1d", starts))
        return JSONResponse(costs_page(parsed, actor.tenant, starts, next_start, data))

    async def spend_limit(request: Request) -> Response:
        actor = await _actor(request, clock)
        ledger = _ledger(request)
        if request.method == "DELETE":
            if not await _read(ledger.delete_spend_limit(actor.tenant)):
                raise NotFound("No spend limit is set.")
            _audit("spend_limit.deleted", actor, None, clock)
            await controller_of(request).spending.limit_changed_everywhere(actor.tenant)
            return JSONResponse({"object": "organization.spend_limit.deleted", "deleted": True})
        if request.method == "POST":
            cents = _threshold(await read_json_object(request))
            await _read(ledger.set_spend_limit(actor.tenant, cents))
            _audit("spend_limit.updated", actor, cents, clock)
            await controller_of(request).spending.limit_changed_everywhere(actor.tenant)
        spend = await _read(ledger.spend(actor.tenant, "", clock()))
        if spend.limit_cents is None:
            raise NotFound("No spend limit is set.")
        if request.method == "POST" and spend.limit_reached:
            # Enforcing from now: the tenant's running calls end, on every replica.
            calls: CallController = controller_of(request)
            await calls.spending.end_tenant_everywhere(actor.tenant, SPEND_LIMIT_REACHED)
        return JSONResponse(_limit_object(spend.limit_cents, spend.tenant_month))

    return [
        DocumentedRoute(COMPLETIONS_PATH, completions, get=USAGE),
        DocumentedRoute(COSTS_PATH, costs, get=COSTS),
        DocumentedRoute(
            SPEND_LIMIT_PATH, spend_limit, get=GET_LIMIT, post=SET_LIMIT, delete=DELETE_LIMIT
        ),
    ]
