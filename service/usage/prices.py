"""Prices (pure): USD per 1M tokens of each kind, and per minute of call time, per
model; the built-in table (prices.json, with its source and date) and a tenant's
`PRICES` / `PRICES_FILE` over it (DESIGN 11).

A model is found by its name, else by its name without a date snapshot suffix
(`gpt-realtime-2025-08-28` is priced as `gpt-realtime`). What has no price costs
nothing here and is reported as unpriced (`Priced.unpriced`): the caller counts it
(a metric), so unpriced usage is visible, never silently free.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from service.usage.model import MINUTES, NANO, TOKEN_KINDS

# Price keys (DESIGN 11, plus the image ones) and the kind each prices.
PRICE_KEYS: dict[str, str] = {
    "input_text_per_1m": "input_text_tokens",
    "input_cached_text_per_1m": "input_cached_text_tokens",
    "input_audio_per_1m": "input_audio_tokens",
    "input_cached_audio_per_1m": "input_cached_audio_tokens",
    "input_image_per_1m": "input_image_tokens",
    "input_cached_image_per_1m": "input_cached_image_tokens",
    "output_text_per_1m": "output_text_tokens",
    "output_audio_per_1m": "output_audio_tokens",
    "per_minute": MINUTES,
}
_KEY_OF = {kind: key for key, kind in PRICE_KEYS.items()}
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
# Nano-USD per token is USD per 1M tokens times this.
_PER_TOKEN = Decimal(NANO) / Decimal(1_000_000)
_MAX_PRICE = Decimal(100_000)


class PricesError(ValueError):
    """A price table that cannot be used; `problems` names each key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per 1M tokens by kind, and per minute (`minutes`)."""

    rates: Mapping[str, Decimal]

    def render(self) -> dict[str, float]:
        return {_KEY_OF[kind]: float(rate) for kind, rate in self.rates.items()}


@dataclass(frozen=True, slots=True)
class Priced:
    """Money by line kind (nano-USD), and the kinds used that have no price."""

    cost: dict[str, int] = field(default_factory=dict)
    unpriced: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PriceTable:
    models: Mapping[str, ModelPrice]
    source: str = ""
    date: str = ""

    def price(self, model: str) -> ModelPrice | None:
        found = self.models.get(model)
        if found is None:
            found = self.models.get(_SNAPSHOT.sub("", model))
        return found

    def cost(self, model: str, counts: Mapping[str, int], seconds: float = 0.0) -> Priced:
        price = self.price(model)
        rates = price.rates if price is not None else {}
        cost: dict[str, int] = {}
        unpriced: list[str] = []
        for kind, n in counts.items():
            if n <= 0:
                continue
            rate = rates.get(kind)
            if rate is None:
                unpriced.append(kind)
            else:
                cost[kind] = _nano(rate * _PER_TOKEN * n)
        if seconds > 0:
            per_minute = rates.get(MINUTES)
            if per_minute is not None:
                cost[MINUTES] = _nano(per_minute * Decimal(NANO) * Decimal(repr(seconds)) / 60)
            elif price is None:
                # A model priced by tokens is not priced by the minute (Realtime): only
                # the time of a model with no price at all is unpriced.
                unpriced.append(MINUTES)
        return Priced({k: v for k, v in cost.items() if v}, tuple(unpriced))

    def over(self, other: PriceTable) -> PriceTable:
        """This table's models over `other`'s (a tenant's PRICES over the built-in)."""
        return PriceTable({**other.models, **self.models}, self.source or other.source,
                          self.date or other.date)  # fmt: skip

    def render(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "date": self.date,
            "models": {name: price.render() for name, price in sorted(self.models.items())},
        }


def _nano(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def parse_prices(data: object) -> PriceTable:
    """A table from PRICES' JSON (or TOML) shape: `{"<model>": {"<key>": USD, ...}}`, or
    the built-in file's `{"source", "date", "models": {...}}`. Raises PricesError."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise PricesError(["must be an object of model → prices"])
    source, date = "", ""
    models_data: object = data
    if "models" in data:
        models_data = data["models"]
        source, date = str(data.get("source", "")), str(data.get("date", ""))
        for key in sorted(set(data) - {"models", "source", "date"}):
            problems.append(f"{key}: unknown key")
    if not isinstance(models_data, Mapping):
        raise PricesError(["models: must be an object of model → prices"])
    models: dict[str, ModelPrice] = {}
    for name, raw in models_data.items():
        if not isinstance(raw, Mapping) or not raw:
            problems.append(f"{name}: must be an object of prices (e.g. output_audio_per_1m)")
            continue
        rates: dict[str, Decimal] = {}
        for key, value in raw.items():
            if key not in PRICE_KEYS:
                problems.append(f"{name}.{key}: unknown price; use {', '.join(PRICE_KEYS)}")
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 <= value <= _MAX_PRICE
            ):
                problems.append(f"{name}.{key}: must be a number of USD from 0 to {_MAX_PRICE}")
            else:
                rates[PRICE_KEYS[key]] = Decimal(repr(value))
        models[str(name)] = ModelPrice(rates)
    if problems:
        raise PricesError(problems)
    return PriceTable(models, source, date)


@lru_cache(maxsize=1)
def builtin_prices() -> PriceTable:
    """The table shipped with the package (service/usage/prices.json)."""
    text = (resources.files("service.usage") / "prices.json").read_text(encoding="utf-8")
    return parse_prices(json.loads(text))


def unpriced_models(table: PriceTable, models: list[str]) -> list[str]:
    return [m for m in models if table.price(m) is None]


__all__ = ["TOKEN_KINDS", "PriceTable", "Priced", "PricesError", "builtin_prices", "parse_prices"]
