"""The README's Gemini browser snippet ("Gemini Live from the browser") against `token-broker
dev --upstream gemini`, in headless Chromium from a page on another origin, with
@google/genai pinned in tests/js and bundled by esbuild: the SDK mints through the broker
with the app JWT, then opens a Live session on dev mode's fake Gemini with the token, and
the peer answers its turn. And the demo page's copy of that bundle
(service/web/static/genai.mjs) is what the pinned packages build."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.auth.tokens import sign_dev_token
from service.cli import dev_secret
from tests.processes import free_port, running
from tests.test_readme_js import JS, ROOT, _run_page, node  # noqa: F401 (a fixture)
from tests.web.test_demo_page import NO_BROWSER

pytestmark = pytest.mark.process

BUNDLE = ROOT / "service" / "web" / "static" / "genai.mjs"
SECTION = "\n### Gemini Live from the browser\n"

PAGE = """<!doctype html><meta charset="utf-8"><title>README Gemini snippet</title>
<script type="module">
%(imports)s
const BROKER = %(broker)s;
const GEMINI = %(broker)s;
const appJwt = %(jwt)s;
const seen = [];
const log = console.log.bind(console);
console.log = (value) => { seen.push(value); log(value); };
const until = async (check) => {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!check()) throw new Error("timed out waiting on " + check);
};
const realFetch = window.fetch.bind(window);
const fetched = [];
window.fetch = async (...args) => {
  const response = await realFetch(...args);
  fetched.push({ url: String(args[0]), status: response.status });
  return response;
};
let failure = null, minted = null;
try {
%(snippet)s
minted = { name: token.name, uses: token.uses, setup: token.bidiGenerateContentSetup };
await until(() => seen.some((m) => m.serverContent?.turnComplete));
session.close();
} catch (error) {
  failure = String(error && error.message || error);
}
window.result = { failure, token: minted, fetched, seen };
</script>
"""


def build_command(outfile: Path) -> list[str]:
    """tests/js's `build:demo` script, writing to `outfile`."""
    script = json.loads((JS / "package.json").read_text())["scripts"]["build:demo"]
    words = shlex.split(script)
    assert words[0] == "esbuild"
    return [
        str(JS / "node_modules" / ".bin" / "esbuild"),
        *(f"--outfile={outfile}" if w.startswith("--outfile=") else w for w in words[1:]),
    ]


def snippet() -> tuple[str, str]:
    """The README block: its imports (of the bundle the test builds, in place of the npm
    package) and the rest, which the page runs inside a `try`."""
    section = (ROOT / "README.md").read_text().split(SECTION)[1].split("\n## ")[0]
    [block] = [part.split("```")[0] for part in section.split("```js\n")[1:]]
    lines = block.replace('from "@google/genai"', 'from "./genai.mjs"').splitlines()
    imports = [line for line in lines if line.startswith("import ")]
    return "\n".join(imports), "\n".join(line for line in lines if line not in imports)


def test_the_demo_pages_genai_bundle_is_what_the_pinned_packages_build(
    node: str,  # noqa: F811 (the fixture installs tests/js)
    tmp_path: Path,
) -> None:
    built = tmp_path / "genai.mjs"

    subprocess.run(build_command(built), cwd=JS, check=True, capture_output=True, timeout=120)

    assert built.read_bytes() == BUNDLE.read_bytes(), (
        "service/web/static/genai.mjs is not what tests/js builds: run `npm run build:demo` "
        "in tests/js after changing @google/genai's pin"
    )


@pytest.mark.skipif(NO_BROWSER, reason="BROKER_TESTS_NO_BROWSER=1: browser tests skipped")
def test_the_readme_gemini_snippet_mints_and_talks_from_another_origin(
    node: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    site = tmp_path / "site"
    site.mkdir()
    subprocess.run(
        build_command(site / "genai.mjs"), cwd=JS, check=True, capture_output=True, timeout=120
    )
    port, site_port = free_port(), free_port()
    broker = f"http://127.0.0.1:{port}"
    jwt = sign_dev_token(dev_secret(), sub="gail", role="reader", now=time.time(), ttl_seconds=600)
    imports, code = snippet()
    page = PAGE % {
        "broker": json.dumps(broker), "jwt": json.dumps(jwt), "imports": imports, "snippet": code
    }  # fmt: skip
    (site / "index.html").write_text(page)
    static = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(site_port), "--bind", "127.0.0.1"],
        cwd=site, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with running(
            ["dev", "--upstream", "gemini", "--port", str(port)],
            env={"XDG_STATE_HOME": str(tmp_path)},
            ready_url=f"{broker}/healthz",
        ):
            result = asyncio.run(_run_page(f"http://127.0.0.1:{site_port}/", tmp_path))
    finally:
        static.terminate()
        static.wait(10)

    assert result["failure"] is None, result
    # The SDK minted through the broker, across origins.
    assert result["fetched"] == [{"url": f"{broker}/v1alpha/auth_tokens", "status": 200}]
    token = result["token"]
    assert isinstance(token, dict)
    assert str(token["name"]).startswith("auth_tokens/")
    # The setup the broker locked: the asked model, and the policy's voice and instructions.
    setup = token["setup"]
    assert setup["model"] == "models/gemini-live-2.5-flash-preview"
    voice = setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]
    assert voice == {"voiceName": "Puck"}
    # The fake Gemini answered the turn: audio, its transcription, usage, turnComplete.
    seen = result["seen"]
    assert isinstance(seen, list)
    assert seen[0] == {"setupComplete": {}}
    parts = [
        p
        for m in seen
        for p in (m.get("serverContent", {}).get("modelTurn") or {}).get("parts", [])
    ]
    assert parts
    assert all(p["inlineData"]["mimeType"] == "audio/pcm;rate=24000" for p in parts)
    said = "".join(
        m["serverContent"]["outputTranscription"]["text"]
        for m in seen
        if "outputTranscription" in m.get("serverContent", {})
    )
    assert said == "Hello from the fake Gemini (voice Puck)."
    assert seen[-1]["usageMetadata"]["totalTokenCount"] > 0
