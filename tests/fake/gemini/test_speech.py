"""The fake Gemini's ears and voice: turns in PCM by audio time, and its answer's audio."""

from __future__ import annotations

import array
import base64
import math

from service.fake.gemini.speech import (
    OUTPUT_RATE,
    TONE_SECONDS,
    VoiceActivity,
    audio_tokens,
    rate_of,
    tone_chunks,
)

RATE = 16_000


def pcm(seconds: float, level: int) -> bytes:
    """`seconds` of a square wave at `level` (0: silence), 16-bit little-endian."""
    count = int(RATE * seconds)
    samples = array.array("h", (level if (n // 20) % 2 else -level for n in range(count)))
    return samples.tobytes()


def test_speech_then_enough_quiet_is_a_turn() -> None:
    ears = VoiceActivity(silence_ms=500)

    said = [ears.feed(pcm(0.1, 8000), RATE) for _ in range(3)]
    quiet = [ears.feed(pcm(0.1, 0), RATE) for _ in range(5)]

    assert said == ["started", None, None]
    assert quiet == [None, None, None, None, "ended"]
    assert math.isclose(ears.heard, 0.8)
    assert not ears.speaking


def test_quiet_or_murmur_alone_is_no_turn() -> None:
    ears = VoiceActivity()

    heard = [ears.feed(pcm(0.1, level), RATE) for level in (0, 1000, 0, 1400)]

    assert heard == [None] * 4
    assert ears.end() is None


def test_the_end_of_the_stream_ends_a_turn_under_way() -> None:
    ears = VoiceActivity(silence_ms=2000)
    ears.feed(pcm(0.2, 8000), RATE)

    assert ears.end() == "ended"
    assert ears.end() is None


def test_the_answer_is_half_a_second_of_24_khz_pcm_in_chunks() -> None:
    chunks = [base64.b64decode(chunk) for chunk in tone_chunks()]

    assert len(chunks) == 5
    assert sum(len(chunk) for chunk in chunks) == OUTPUT_RATE * TONE_SECONDS * 2
    loud = array.array("h", chunks[2])
    assert max(loud) > 1500  # the fake's own voice passes its own speech level


def test_rates_and_tokens() -> None:
    assert rate_of("audio/pcm;rate=24000") == 24_000
    assert rate_of("audio/pcm") == RATE
    assert audio_tokens(0.5) == 16
    assert audio_tokens(0.0) == 1
