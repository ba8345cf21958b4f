"""The fake Gemini Live peer: one WebSocket session of
`/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContentConstrained`,
opened with an ephemeral token (`?access_token=` or `Authorization: Token <name>`).

As Gemini does: the first message is `setup`; the token decides whether the session starts
(service.fake.gemini.tokens: uses, new-session expiry) and which setup holds (its locked
one over the client's), and the peer answers `setupComplete`. A user turn ends with
`clientContent` (`turnComplete`), `realtimeInput.text`, or spoken audio
(`realtimeInput.audio`: voice activity in service.fake.gemini.speech; `activityStart` /
`activityEnd` when the setup disables automatic detection; `audioStreamEnd`). Each turn
is answered in the setup's modality: audio (a tone, 24 kHz PCM inline data) with its
transcription when `outputAudioTranscription` is on, or text; then `generationComplete`,
and `turnComplete` with `usageMetadata`. The answer names the session's voice, so that a
client can hear which setup won. A message that is not a client message closes the session
with 1007; a token refused or expired, with 1008 (and the reason).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from service.fake.gemini.shapes import GeminiShapes
from service.fake.gemini.speech import (
    OUTPUT_MIME,
    TONE_SECONDS,
    VoiceActivity,
    audio_tokens,
    rate_of,
    tone_chunks,
)
from service.fake.gemini.status import payload_message
from service.fake.gemini.tokens import FakeAuthTokens, SessionRefused
from service.fake.validate import Refusal

Message = dict[str, Any]
WORDS = ("Hello", " from", " the fake", " Gemini")
# A WebSocket close reason holds at most 123 bytes.
REASON_BYTES = 123


class Closing(Exception):
    """The session ends from the peer's side: the WebSocket closes with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode()[:REASON_BYTES].decode(errors="ignore")


def token_of(websocket: WebSocket) -> str | None:
    found = websocket.query_params.get("access_token")
    if found:
        return found
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "token" and value.strip() else None


async def serve_session(websocket: WebSocket, tokens: FakeAuthTokens, shapes: GeminiShapes) -> None:
    """Run one Live session until either side leaves."""
    await websocket.accept()
    name = token_of(websocket)
    try:
        first = await _receive(websocket, shapes)
        if "setup" not in first:
            raise Closing(1007, "The first message must be setup.")
        try:
            setup = tokens.start(name, first["setup"])
        except SessionRefused as refused:
            raise Closing(refused.code, refused.reason) from None
        session = LiveSession(websocket, setup)
        await session.send({"setupComplete": {}})
        while True:
            message = await _receive(websocket, shapes)
            if "setup" in message:
                raise Closing(1007, "setup may be sent only once, first.")
            if name is None or tokens.expired(name):
                raise Closing(1008, "The access token has expired.")
            await session.handle(message)
    except Closing as closing:
        # The client may have left meanwhile: then there is nobody to tell.
        with contextlib.suppress(WebSocketDisconnect):
            await websocket.close(closing.code, closing.reason)
    except WebSocketDisconnect:
        return


async def _receive(websocket: WebSocket, shapes: GeminiShapes) -> Message:
    raw = await websocket.receive()
    if raw["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(raw.get("code", 1000))
    data = raw.get("text") if raw.get("text") is not None else raw.get("bytes")
    try:
        message = json.loads(data or "")
    except (ValueError, TypeError):
        raise Closing(1007, "Invalid JSON payload received.") from None
    try:
        return shapes.read_message(message)
    except Refusal as refusal:
        raise Closing(1007, payload_message(refusal)) from None


class LiveSession:
    """One started session: its effective `setup`, the turn it is hearing."""

    def __init__(self, websocket: WebSocket, setup: Message) -> None:
        self.websocket = websocket
        self.setup = setup
        detection = setup.get("realtimeInputConfig", {}).get("automaticActivityDetection", {})
        self.automatic = not detection.get("disabled", False)
        self.ears = VoiceActivity(detection.get("silenceDurationMs", 500))
        self.pending_text: list[str] = []
        self.in_activity = False

    async def send(self, message: Message) -> None:
        await self.websocket.send_text(json.dumps(message))

    async def handle(self, message: Message) -> None:
        if "clientContent" in message:
            content = message["clientContent"]
            for turn in content.get("turns", []):
                self.pending_text.extend(p["text"] for p in turn.get("parts", []) if "text" in p)
            if content.get("turnComplete", False):
                await self.answer_text()
        elif "realtimeInput" in message:
            await self.realtime(message["realtimeInput"])
        # A toolResponse needs nothing: the fake never calls a tool.

    async def realtime(self, given: Message) -> None:
        if "text" in given:
            self.pending_text.append(given["text"])
            await self.answer_text()
        chunks = [given["audio"]] if "audio" in given else []
        chunks += [c for c in given.get("mediaChunks", []) if c["mimeType"].startswith("audio/")]
        for chunk in chunks:
            pcm = _decode(chunk["data"])
            rate = rate_of(chunk["mimeType"])
            if self.automatic:
                if self.ears.feed(pcm, rate) == "ended":
                    await self.answer_audio(self.ears.heard)
            elif self.in_activity:
                self.ears.heard += len(pcm) / 2 / rate
        if given.get("audioStreamEnd") and self.automatic and self.ears.end() == "ended":
            await self.answer_audio(self.ears.heard)
        if "activityStart" in given and not self.automatic:
            self.in_activity, self.ears.heard = True, 0.0
        if "activityEnd" in given and not self.automatic and self.in_activity:
            self.in_activity = False
            await self.answer_audio(self.ears.heard)

    async def answer_text(self) -> None:
        prompt = " ".join(self.pending_text)
        self.pending_text.clear()
        await self.answer([{"modality": "TEXT", "tokenCount": max(1, math.ceil(len(prompt) / 4))}])

    async def answer_audio(self, seconds: float) -> None:
        if "inputAudioTranscription" in self.setup:
            heard = f"(speech, {seconds:.1f} s)"
            await self.send({"serverContent": {"inputTranscription": {"text": heard}}})
        await self.answer([{"modality": "AUDIO", "tokenCount": audio_tokens(seconds)}])

    async def answer(self, prompt: list[Message]) -> None:
        generation = self.setup.get("generationConfig", {})
        modality = (generation.get("responseModalities") or ["AUDIO"])[0]
        voice = (
            generation.get("speechConfig", {})
            .get("voiceConfig", {})
            .get("prebuiltVoiceConfig", {})
            .get("voiceName")
        )
        words = [*WORDS, f" (voice {voice})." if voice else "."]
        if modality == "TEXT":
            for word in words:
                await self.send({"serverContent": {"modelTurn": {"parts": [{"text": word}]}}})
            response = {"modality": "TEXT", "tokenCount": len(words)}
        else:
            chunks = tone_chunks()
            transcribe = "outputAudioTranscription" in self.setup
            for index, data in enumerate(chunks):
                part = {"inlineData": {"mimeType": OUTPUT_MIME, "data": data}}
                await self.send({"serverContent": {"modelTurn": {"parts": [part]}}})
                # The transcription streams beside the audio, a piece at a time.
                if transcribe and index < len(words):
                    content = {"outputTranscription": {"text": words[index]}}
                    await self.send({"serverContent": content})
            if transcribe and len(words) > len(chunks):
                rest = "".join(words[len(chunks) :])
                await self.send({"serverContent": {"outputTranscription": {"text": rest}}})
            response = {"modality": "AUDIO", "tokenCount": audio_tokens(TONE_SECONDS)}
        await self.send({"serverContent": {"generationComplete": True}})
        prompt_tokens = sum(p["tokenCount"] for p in prompt)
        usage = {
            "promptTokenCount": prompt_tokens,
            "responseTokenCount": response["tokenCount"],
            "totalTokenCount": prompt_tokens + response["tokenCount"],
            "promptTokensDetails": prompt,
            "responseTokensDetails": [response],
        }
        await self.send({"serverContent": {"turnComplete": True}, "usageMetadata": usage})


def _decode(data: str) -> bytes:
    # Either base64 alphabet, as proto JSON takes.
    return base64.b64decode(data.replace("-", "+").replace("_", "/"))
