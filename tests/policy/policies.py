"""The policy of README "Policy", shared by the parse and apply tests."""

from __future__ import annotations

from typing import Any

READER: dict[str, Any] = {
    "models": ["gpt-realtime-mini", "gpt-realtime"],
    "voices": ["alloy", "verse"],
    "modalities": ["text", "audio"],
    "audio_formats": ["audio/pcm", "audio/pcmu"],
    "temperature": {"min": 0.6, "max": 1.0, "default": 0.8},
    "max_output_tokens": 1024,
    "speed": {"min": 0.8, "max": 1.2},
    "turn_detection": {
        "types": ["server_vad", "semantic_vad"],
        "silence_duration_ms": {"min": 300, "max": 1500},
        "prefix_padding_ms": {"min": 100, "max": 500},
        "threshold": {"min": 0.3, "max": 0.7},
    },
    "instructions": {"mode": "prefix", "text": "You are the Acme assistant.", "max_chars": 40},
    "tools": {"allow": ["lookup_order", "crm"]},
    "transcription_models": ["gpt-4o-mini-transcribe", "whisper-1"],
    "ttl_seconds": {"default": 60, "max": 300},
    "limits": ["5/minute", "200/day"],
    "max_concurrent_calls": 2,
    "max_call_seconds": 600,
}
DESIGN_POLICY: dict[str, Any] = {
    "default_role": "reader",
    "on_violation": "clamp",
    "tenant_limits": ["600/minute"],
    "roles": {"reader": READER, "owner": {"limits": ["100/minute"]}},
}
