"""The price table: the built-in one (with its source and date), a tenant's over it,
costs in exact nano-dollars, and unpriced usage named."""

from __future__ import annotations

import pytest

from service.usage.prices import PricesError, builtin_prices, parse_prices


def test_the_builtin_table_has_its_source_and_date_and_prices_the_realtime_and_live_models() -> (
    None
):
    table = builtin_prices()
    assert table.date
    assert "openai.com" in table.source
    for model in ("gpt-realtime", "gpt-realtime-mini", "gpt-realtime-2", "gpt-live-1"):
        assert table.price(model) is not None, model


def test_costs_are_exact_and_a_snapshot_is_priced_as_its_model() -> None:
    priced = builtin_prices().cost(
        "gpt-realtime-mini-2025-10-06", {"input_audio_tokens": 30, "input_cached_text_tokens": 7}
    )
    # $10 and $0.06 per 1M: 10,000 and 60 nano-USD a token.
    assert priced.cost == {"input_audio_tokens": 300_000, "input_cached_text_tokens": 420}
    assert priced.unpriced == ()
    assert builtin_prices().cost("gpt-live-1", {}, 90.0).cost == {"minutes": 75_000_000}


def test_usage_with_no_price_is_named_not_free_by_accident() -> None:
    priced = builtin_prices().cost("my-model", {"output_text_tokens": 5}, 12.0)
    assert priced.cost == {}
    assert priced.unpriced == ("output_text_tokens", "minutes")


def test_a_tenants_prices_go_over_the_builtin_table() -> None:
    table = parse_prices({"my-model": {"output_text_per_1m": 1.5}}).over(builtin_prices())
    assert table.cost("my-model", {"output_text_tokens": 2}).cost == {"output_text_tokens": 3000}
    assert table.price("gpt-realtime") is not None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"m": {"output_audio": 1}}, "m.output_audio: unknown price"),
        ({"m": {"per_minute": -1}}, "m.per_minute: must be a number"),
        ({"m": {"per_minute": True}}, "m.per_minute: must be a number"),
        ({"m": 3}, "m: must be an object"),
        ([], "must be an object"),
    ],
)
def test_a_bad_table_names_its_key(data: object, problem: str) -> None:
    with pytest.raises(PricesError, match=problem):
        parse_prices(data)
