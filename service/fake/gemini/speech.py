"""The fake Gemini's ears and voice, on the Live API's audio: 16-bit little-endian PCM, mono
(`audio/pcm;rate=16000` in, 24 kHz out).

Voice activity is measured in audio time (samples heard), never on the clock, so that a test
which sends a tone and then silence gets a turn whatever the machine's load: a sample whose
level passes `SPEECH_LEVEL` is speech (the level service.fake.webrtc uses for the same
microphone), and `silence_ms` of quiet after it ends the turn.
"""

from __future__ import annotations

import array
import base64
import math
import re
import sys

OUTPUT_RATE = 24_000
OUTPUT_MIME = f"audio/pcm;rate={OUTPUT_RATE}"
INPUT_RATE = 16_000
TONE_HZ = 440.0
TONE_SECONDS = 0.5
CHUNK_SECONDS = 0.1
SPEECH_LEVEL = 1500
DEFAULT_SILENCE_MS = 500
# Gemini counts audio at 32 tokens a second (its token-counting guide).
AUDIO_TOKENS_PER_SECOND = 32
_RATE = re.compile(r"rate=([0-9]+)")


def samples_of(pcm: bytes) -> array.array[int]:
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def rate_of(mime_type: str) -> int:
    found = _RATE.search(mime_type)
    return int(found.group(1)) if found else INPUT_RATE


def tone_chunks() -> list[str]:
    """The fake's spoken answer: TONE_SECONDS of a soft 440 Hz tone at 24 kHz, in base64
    chunks of CHUNK_SECONDS (as Gemini streams its audio in several messages)."""
    total = int(OUTPUT_RATE * TONE_SECONDS)
    step = int(OUTPUT_RATE * CHUNK_SECONDS)
    # A short fade in and out, so that the tone starts and stops without a click.
    fade = OUTPUT_RATE // 100
    samples = array.array("h")
    for n in range(total):
        envelope = min(1.0, n / fade, (total - n) / fade)
        samples.append(int(6000 * envelope * math.sin(2 * math.pi * TONE_HZ * n / OUTPUT_RATE)))
    if sys.byteorder == "big":
        samples.byteswap()
    pcm = samples.tobytes()
    return [
        base64.b64encode(pcm[start * 2 : (start + step) * 2]).decode()
        for start in range(0, total, step)
    ]


def audio_tokens(seconds: float) -> int:
    return max(1, math.ceil(seconds * AUDIO_TOKENS_PER_SECOND))


class VoiceActivity:
    """Turns in a stream of PCM chunks. `feed` says "started" when speech begins, "ended"
    when `silence_ms` of quiet followed it, else None; `heard` is the current turn's length
    in seconds, from its first loud sample to its end."""

    def __init__(self, silence_ms: int = DEFAULT_SILENCE_MS) -> None:
        self.silence_seconds = silence_ms / 1000
        self.speaking = False
        self.heard = 0.0
        self._quiet = 0.0

    def feed(self, pcm: bytes, rate: int) -> str | None:
        samples = samples_of(pcm)
        if not samples:
            return None
        seconds = len(samples) / rate
        loud = max(abs(s) for s in samples) > SPEECH_LEVEL
        if loud:
            started = not self.speaking
            if started:
                self.speaking, self.heard = True, 0.0
            self.heard += seconds
            self._quiet = 0.0
            return "started" if started else None
        if not self.speaking:
            return None
        self.heard += seconds
        self._quiet += seconds
        if self._quiet >= self.silence_seconds:
            return self.end()
        return None

    def end(self) -> str | None:
        """End the turn now (the client's `audioStreamEnd`); "ended" if one was under way."""
        if not self.speaking:
            return None
        self.speaking, self._quiet = False, 0.0
        return "ended"
