"""Token kinds as OpenAI reports them: a Realtime `response.done` and a Responses API
usage, the cached share taken out of each modality."""

from __future__ import annotations

from service.usage.model import Pending, realtime_counts, responses_counts


def test_realtime_usage_splits_cached_tokens_by_modality() -> None:
    usage = {
        "input_tokens": 150,
        "output_tokens": 210,
        "input_token_details": {
            "text_tokens": 50,
            "audio_tokens": 100,
            "cached_tokens": 25,
            "cached_tokens_details": {"text_tokens": 20, "audio_tokens": 5},
        },
        "output_token_details": {"text_tokens": 10, "audio_tokens": 200},
    }
    assert realtime_counts(usage) == {
        "input_text_tokens": 30,
        "input_cached_text_tokens": 20,
        "input_audio_tokens": 95,
        "input_cached_audio_tokens": 5,
        "output_text_tokens": 10,
        "output_audio_tokens": 200,
    }


def test_realtime_usage_without_details_counts_as_text() -> None:
    assert realtime_counts({"input_tokens": 4, "output_tokens": 6}) == {
        "input_text_tokens": 4,
        "output_text_tokens": 6,
    }
    assert realtime_counts({"input_tokens": -3, "output_tokens": "9"}) == {}


def test_responses_usage_is_text_with_its_cached_share() -> None:
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 3}
    assert responses_counts(usage) == {
        "input_text_tokens": 6,
        "input_cached_text_tokens": 4,
        "output_text_tokens": 3,
    }


def test_pending_usage_taken_and_restored_is_counted_once() -> None:
    pending = Pending()
    pending.add("m", {"output_text_tokens": 2})
    taken = pending.take()
    assert not pending
    pending.add("m", {"output_text_tokens": 1})
    pending.restore(taken)
    (tally,) = pending.take().values()
    assert (tally.counts, tally.requests) == ({"output_text_tokens": 3}, 2)
