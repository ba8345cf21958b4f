"""What each fake endpoint accepts and refuses, checked on the shapes directly."""

from __future__ import annotations

from typing import Any

import pytest

from service.fake.shapes import RequestShapes
from service.fake.validate import Refusal

SHAPES = RequestShapes.build()


@pytest.mark.parametrize(
    ("shape", "body"),
    [
        (SHAPES.ga_client_secret, {}),
        (SHAPES.ga_client_secret, {"session": {"type": "transcription", "include": []}}),
        (
            SHAPES.ga_client_secret,
            {
                "session": {
                    "type": "realtime",
                    "audio": {"output": {"voice": {"id": "voice_123"}}},
                    "tools": [{"type": "mcp", "server_label": "crm", "server_url": "https://x"}],
                    "tool_choice": {"type": "function", "name": "lookup_order"},
                    "truncation": {"type": "retention_ratio", "retention_ratio": 0.5},
                    "tracing": "auto",
                    "prompt": {"id": "pmpt_1", "variables": {"city": "Paris"}},
                    "reasoning": {"effort": "low"},
                }
            },
        ),
        (SHAPES.beta_session, {"turn_detection": None, "tracing": {"workflow_name": "w"}}),
        (SHAPES.beta_session, {"truncation": "disabled", "prompt": {"id": "pmpt_1"}}),
        (SHAPES.beta_transcription, {"input_audio_noise_reduction": {"type": "far_field"}}),
        (
            SHAPES.vector_store_create,
            {
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
                }
            },
        ),
    ],
)
def test_accepts_what_openai_accepts(shape: Any, body: dict[str, Any]) -> None:
    shape(body, "")


@pytest.mark.parametrize(
    ("shape", "body", "param"),
    [
        (SHAPES.ga_client_secret, {"session": {"type": "realtime", "temperature": 1}},
         "session.temperature"),
        (SHAPES.ga_client_secret, {"session": {"type": "realtime", "modalities": ["text"]}},
         "session.modalities"),
        (SHAPES.ga_client_secret, {"session": {"type": "transcription", "model": "x"}},
         "session.model"),
        (SHAPES.ga_client_secret, {"session": {"type": "voice"}}, "session.type"),
        (SHAPES.ga_client_secret,
         {"session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm",
                                                                         "rate": 16000}}}}},
         "session.audio.input.format.rate"),
        (SHAPES.ga_client_secret,
         {"session": {"type": "realtime", "audio": {"output": {"speed": 3}}}},
         "session.audio.output.speed"),
        (SHAPES.ga_client_secret, {"expires_after": {"seconds": 7201}}, "expires_after.seconds"),
        (SHAPES.ga_client_secret, {"expires_after": {"anchor": "now"}}, "expires_after.anchor"),
        (SHAPES.beta_session, {"output_modalities": ["audio"]}, "output_modalities"),
        (SHAPES.beta_session, {"input_audio_format": "audio/pcm"}, "input_audio_format"),
        (SHAPES.beta_session, {"max_response_output_tokens": 5000}, "max_response_output_tokens"),
        (SHAPES.beta_session, {"client_secret": {"value": "ek_x"}}, "client_secret.value"),
        (SHAPES.beta_transcription, {"temperature": 0.8}, "temperature"),
        (SHAPES.vector_store_create, {"file_ids": ["f"] * 501}, "file_ids"),
        (SHAPES.vector_store_create, {"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        (SHAPES.vector_store_create, {"expires_after": {"anchor": "last_active_at"}},
         "expires_after.days"),
        (SHAPES.vector_store_create, {"chunking_strategy": {"type": "static"}},
         "chunking_strategy.static"),
    ],
)  # fmt: skip
def test_refuses_what_openai_refuses(shape: Any, body: dict[str, Any], param: str) -> None:
    with pytest.raises(Refusal) as refused:
        shape(body, "")

    assert refused.value.status == 400
    assert refused.value.param == param
