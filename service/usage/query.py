"""The admin usage and costs queries (pure): their parameters, checked (a 400 names the
`param`), and the page of buckets they answer, in OpenAI's shapes (DESIGN 11).

    GET /v1/organization/usage/completions   start_time, end_time, bucket_width 1m|1h|1d,
                                             group_by (user_id, model, project_id),
                                             user_ids, models, project_ids, limit, page
    GET /v1/organization/costs               start_time, end_time, bucket_width 1d,
                                             group_by (user_id, line_item, project_id),
                                             project_ids, line_items, limit, page

List parameters come as `name[]=a&name[]=b` (openai-python) or `name=a&name=b`. `page` is
the `next_page` of the previous answer: the start of the next bucket. `project_id` is the
tenant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.errors import InvalidValue, UnknownParameter
from service.usage.ledger import COST, REQUESTS, BucketData
from service.usage.model import INPUT_KINDS, OUTPUT_KINDS, TOKEN_KINDS
from service.usage.periods import WIDTHS, Width

# Buckets per page by width: (default, max), as OpenAI's.
BUCKET_LIMITS: dict[Width, tuple[int, int]] = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
COSTS_LIMITS = (7, 180)
_INT = re.compile(r"[0-9]{1,12}")
_PAGE = re.compile(r"page_([0-9]{1,12})")
_SHOWN = 64
_COST_GROUPS = ("user_id", "project_id", "line_item")


@dataclass(frozen=True, slots=True)
class UsageQuery:
    start: int
    end: int | None
    width: Width
    limit: int
    group_by: tuple[str, ...] = ()
    filters: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def starts(self, now: float) -> tuple[list[int], int | None]:
        """This page's bucket starts, and the next page's first (None: no more)."""
        seconds = WIDTHS[self.width]
        first = self.start // seconds * seconds
        end = self.end if self.end is not None else int(now) + 1
        starts = [t for t in range(first, end, seconds)][: self.limit + 1]
        more = len(starts) > self.limit
        return starts[: self.limit], starts[self.limit] if more else None


def _items(
    items: Iterable[tuple[str, str]], scalars: set[str], lists: set[str]
) -> dict[str, list[str]]:
    given: dict[str, list[str]] = {}
    for raw, value in items:
        name = raw[:-2] if raw.endswith("[]") else raw
        if name not in scalars and name not in lists:
            shown = raw if len(raw) <= _SHOWN else raw[:_SHOWN] + "…"
            raise UnknownParameter(f"Unknown parameter: '{shown}'.", param=shown)
        if name in scalars and name in given:
            raise InvalidValue(f"'{name}' must be given at most once.", param=name)
        given.setdefault(name, []).append(value)
    return given


def _time(given: Mapping[str, list[str]], name: str) -> int | None:
    if name not in given:
        return None
    text = given[name][0]
    if _INT.fullmatch(text) is None:
        raise InvalidValue(f"'{name}' must be a Unix time in seconds.", param=name)
    return int(text)


def _limit(given: Mapping[str, list[str]], bounds: tuple[int, int]) -> int:
    default, most = bounds
    if "limit" not in given:
        return default
    text = given["limit"][0]
    if _INT.fullmatch(text) is None or not 1 <= int(text) <= most:
        raise InvalidValue(f"'limit' must be an integer from 1 to {most}.", param="limit")
    return int(text)


def _group_by(given: Mapping[str, list[str]], allowed: tuple[str, ...]) -> tuple[str, ...]:
    chosen: list[str] = []
    for value in given.get("group_by", []):
        for part in value.split(","):
            if part not in allowed:
                names = ", ".join(allowed)
                raise InvalidValue(f"'group_by' takes {names}.", param="group_by")
            if part not in chosen:
                chosen.append(part)
    return tuple(chosen)


def _window(given: Mapping[str, list[str]]) -> tuple[int, int | None]:
    start = _time(given, "start_time")
    if start is None:
        raise InvalidValue("Missing required parameter: 'start_time'.", param="start_time")
    end = _time(given, "end_time")
    if end is not None and end <= start:
        raise InvalidValue("'end_time' must be after 'start_time'.", param="end_time")
    if "page" in given:
        page = _PAGE.fullmatch(given["page"][0])
        if page is None or int(page.group(1)) < start:
            raise InvalidValue("'page' is not a page of this query.", param="page")
        start = int(page.group(1))
    return start, end


def _filters(given: Mapping[str, list[str]], names: Sequence[str]) -> dict[str, frozenset[str]]:
    return {name: frozenset(given[name]) for name in names if name in given}


def parse_usage_query(items: Iterable[tuple[str, str]]) -> UsageQuery:
    lists = {"group_by", "user_ids", "models", "project_ids"}
    given = _items(items, {"start_time", "end_time", "bucket_width", "limit", "page"}, lists)
    start, end = _window(given)
    text = given.get("bucket_width", ["1d"])[0]
    width = next((w for w in BUCKET_LIMITS if w == text), None)
    if width is None:
        raise InvalidValue("'bucket_width' must be 1m, 1h or 1d.", param="bucket_width")
    return UsageQuery(
        start=start,
        end=end,
        width=width,
        limit=_limit(given, BUCKET_LIMITS[width]),
        group_by=_group_by(given, ("user_id", "model", "project_id")),
        filters=_filters(given, ("user_ids", "models", "project_ids")),
    )


def parse_costs_query(items: Iterable[tuple[str, str]]) -> UsageQuery:
    lists = {"group_by", "project_ids", "line_items"}
    given = _items(items, {"start_time", "end_time", "bucket_width", "limit", "page"}, lists)
    start, end = _window(given)
    if given.get("bucket_width", ["1d"])[0] != "1d":
        raise InvalidValue("'bucket_width' must be 1d.", param="bucket_width")
    return UsageQuery(
        start=start,
        end=end,
        width="1d",
        limit=_limit(given, COSTS_LIMITS),
        group_by=_group_by(given, ("user_id", "line_item", "project_id")),
        filters=_filters(given, ("project_ids", "line_items")),
    )


def _bucket(start: int, width: Width, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "bucket",
        "start_time": start,
        "end_time": start + WIDTHS[width],
        "results": results,
    }


def page(
    query: UsageQuery, starts: list[int], next_start: int | None, data: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "object": "page",
        "data": data,
        "has_more": next_start is not None,
        "next_page": None if next_start is None else f"page_{next_start}",
    }


def _wanted(query: UsageQuery, tenant: str, user: str, model: str) -> bool:
    f = query.filters
    return (
        ("project_ids" not in f or tenant in f["project_ids"])
        and ("user_ids" not in f or user in f["user_ids"])
        and ("models" not in f or model in f["models"])
    )


def completions_page(
    query: UsageQuery, tenant: str, starts: list[int], next_start: int | None,
    buckets: Sequence[BucketData],
) -> dict[str, Any]:  # fmt: skip
    data = []
    for start, bucket in zip(starts, buckets, strict=True):
        groups: dict[tuple[str | None, ...], dict[str, int]] = {}
        for (user, model), metrics in bucket.items():
            if not _wanted(query, tenant, user, model):
                continue
            key = _key(query.group_by, tenant, user, model)
            total = groups.setdefault(key, {})
            for name, n in metrics.items():
                total[name] = total.get(name, 0) + n
        results = [
            _completions_result(query.group_by, key, m)
            for key, m in sorted(groups.items(), key=_order)
        ]
        data.append(_bucket(start, query.width, results))
    return page(query, starts, next_start, data)


def _order(item: tuple[tuple[str | None, ...] | tuple[str, ...], Any]) -> tuple[str, ...]:
    return tuple(part or "" for part in item[0])


def _key(group_by: Sequence[str], tenant: str, user: str, model: str) -> tuple[str | None, ...]:
    values = {"user_id": user, "model": model, "project_id": tenant}
    return tuple(values.get(name) for name in ("user_id", "model", "project_id", "line_item")
                 if name in group_by)  # fmt: skip


def _grouped(group_by: Sequence[str], key: tuple[str | None, ...]) -> dict[str, str | None]:
    names = [n for n in ("user_id", "model", "project_id", "line_item") if n in group_by]
    out: dict[str, str | None] = {n: None for n in ("user_id", "project_id")}
    out.update(zip(names, key, strict=True))
    return out


def _completions_result(
    group_by: Sequence[str], key: tuple[str | None, ...], m: Mapping[str, int]
) -> dict[str, Any]:
    tokens = {kind: m.get(kind, 0) for kind in TOKEN_KINDS}
    cached = sum(tokens[k] for k in INPUT_KINDS if "cached" in k)
    inputs = sum(tokens[k] for k in INPUT_KINDS)
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": inputs,
        "output_tokens": sum(tokens[k] for k in OUTPUT_KINDS),
        "input_cached_tokens": cached,
        "input_uncached_tokens": inputs - cached,
        **tokens,
        "num_model_requests": m.get(REQUESTS, 0),
        "model": None,
        "api_key_id": None,
        "batch": None,
        **_grouped(group_by, key),
    }


def costs_page(
    query: UsageQuery, tenant: str, starts: list[int], next_start: int | None,
    buckets: Sequence[BucketData],
) -> dict[str, Any]:  # fmt: skip
    lines = query.filters.get("line_items")
    data = []
    for start, bucket in zip(starts, buckets, strict=True):
        groups: dict[tuple[str, ...], int] = {}
        for (user, model), metrics in bucket.items():
            if not _wanted(query, tenant, user, model):
                continue
            for name, nano in metrics.items():
                if not name.startswith(COST):
                    continue
                line = f"{model}, {name[len(COST) :]}"
                if lines is not None and line not in lines:
                    continue
                values = {"user_id": user, "project_id": tenant, "line_item": line}
                line_key = tuple(values[n] for n in _COST_GROUPS if n in query.group_by)
                groups[line_key] = groups.get(line_key, 0) + nano
        results = []
        for key, nano in sorted(groups.items(), key=_order):
            names = [n for n in _COST_GROUPS if n in query.group_by]
            result: dict[str, Any] = {
                "object": "organization.costs.result",
                "amount": {"value": nano / 1_000_000_000, "currency": "usd"},
                "line_item": None,
                "project_id": None,
                "user_id": None,
                "api_key_id": None,
            }
            result.update(zip(names, key, strict=True))
            results.append(result)
        data.append(_bucket(start, "1d", results))
    return page(query, starts, next_start, data)
