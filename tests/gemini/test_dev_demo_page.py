"""The demo page in Gemini dev mode (`token-broker dev --upstream gemini`), in headless
Chromium with a fake microphone: it mints with Google's @google/genai (the bundle dev mode
serves), opens a Live session on the fake Gemini with the token, sends the microphone, plays
the model's audio and shows the session's messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import free_port, running
from tests.web.test_demo_page import NO_BROWSER, Page, browser_page, signed_in_as

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(NO_BROWSER, reason="BROKER_TESTS_NO_BROWSER=1: browser tests skipped"),
]


@pytest.fixture
def gemini_dev(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "BROKER_LOG_LEVEL": "warning"}
    base = f"http://127.0.0.1:{port}"
    with running(
        ["dev", "--upstream", "gemini", "--port", str(port)], env=env, ready_url=f"{base}/healthz"
    ):
        yield base


def events(text: str) -> list[str]:
    return text.splitlines()


async def click(page: Page, element_id: str) -> None:
    """A click as a user makes it (DevTools input events), whose user gesture lets the page
    start its audio: an `element.click()` from script would leave the AudioContext held."""
    x, y = await page.evaluate(
        f"(() => {{ const r = document.getElementById({json.dumps(element_id)})"
        ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        params = {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
        await page.socket.send_json(
            {"id": next(page.ids), "method": "Input.dispatchMouseEvent", "params": params}
        )


async def test_the_demo_page_talks_to_the_fake_gemini_live_peer(
    gemini_dev: str, tmp_path: Path
) -> None:
    async with browser_page(gemini_dev + "/", tmp_path / "profile") as page:
        await signed_in_as(page, "gina")
        assert await page.evaluate("document.getElementById('openai-controls').hidden") is True
        await page.wait_for("!!window.geminiStats")  # the Gemini mode has loaded

        await click(page, "gemini-live")
        # The fake microphone's beeps are turns: the peer answers one with audio.
        await page.wait_for("(window.geminiStats?.played ?? 0) > 0")
        await page.wait_for(f"{page.text('events')}.includes('serverContent.turnComplete')")
        await page.evaluate("document.getElementById('gemini-text').click()")
        await page.wait_for("window.geminiStats.turns >= 2")
        shown = events(await page.evaluate(page.text("events")))
        setup = json.loads(await page.evaluate(page.text("session")))
        token_shown = await page.evaluate(page.text("secret"))
        html = await page.evaluate("document.documentElement.outerHTML")
        stats = await page.evaluate("window.geminiStats")
        note = await page.evaluate(page.text("policy-note"))
        await page.evaluate("document.getElementById('hangup').click()")
        ended = events(await page.evaluate(page.text("events")))

    assert shown[0] == "— Gemini Live session (a fresh token, then the Live API with it) —"
    assert shown[1].startswith("token auth_tokens/•")
    assert shown[2] == "setupComplete"
    assert "serverContent.modelTurn: audio (audio/pcm;rate=24000)" in shown
    # The session asked for text; the token's locked setup (audio) held.
    assert not any(line.startswith('serverContent.modelTurn: "') for line in shown)
    transcript = [line for line in shown if line.startswith("serverContent.outputTranscription")]
    assert transcript[-1] == 'serverContent.outputTranscription: " (voice Puck)."'
    assert any(line.startswith('serverContent.inputTranscription: "(speech, ') for line in shown)
    done = [line for line in shown if line.startswith("serverContent.turnComplete")]
    assert all(": usageMetadata " in line for line in done)
    assert '(sent a text turn: "Hello from the demo page.")' in shown
    assert stats["sent"] > 0  # the microphone went in
    assert stats["peak"] > 1500
    assert stats["audioChunks"] >= 10
    assert stats["played"] == stats["audioChunks"]
    # The page showed the setup the broker locked: the policy's voice and instructions.
    voice = setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]
    assert voice["voiceName"] == "Puck"
    assert setup["systemInstruction"]["parts"][0]["text"].startswith("You are the token-broker")
    # The token's name stays out of the page; the session ends with Hang up.
    assert token_shown == "auth_tokens/••••••••"
    assert not any(word.startswith("auth_tokens/") and "•" not in word for word in html.split())
    assert ended[-1] == "(hung up: the Live session is closed)"
    assert "locks these into each Gemini token's setup" in note
