"""The README's "From the browser" JavaScript against `token-broker dev`, with the npm
packages pinned in tests/js (installed from the npm registry when missing): in Node, the
npm SDK mints and the Agents SDK connects with the secret the broker minted; in headless
Chromium (a page on another origin), the Agents SDK places a call through the broker's
call control, connects over real WebRTC (dev mode's fake peer) and reads the call id from
`Location` across origins; and the "GPT-Live" section's browser code starts a Live session
through the broker from another origin, over real WebRTC."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.auth.tokens import sign_dev_token
from service.cli import dev_secret
from tests.processes import free_port, running
from tests.web.test_demo_page import NO_BROWSER

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js is needed for the README's browser snippets (apt-get install nodejs)"
    wanted = [
        JS / "node_modules" / "@openai" / "agents-realtime",
        JS / "node_modules" / "@google" / "genai",
        JS / "node_modules" / "esbuild",
    ]
    if not all(path.is_dir() for path in wanted):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, timeout=300,
            capture_output=True,
        )  # fmt: skip
    return found


def test_the_readme_browser_snippets_mint_and_connect(
    node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    port = free_port()
    env = {"XDG_STATE_HOME": str(tmp_path)}
    with running(
        ["dev", "--port", str(port)], env=env, ready_url=f"http://127.0.0.1:{port}/healthz"
    ):
        jwt = sign_dev_token(
            dev_secret(), sub="dana", role="reader", now=time.time(), ttl_seconds=600
        )
        ran = subprocess.run(
            [node, str(JS / "run_readme.mjs"), str(ROOT / "README.md"),
             f"http://127.0.0.1:{port}", jwt],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["blocks"] == 2
    # 1: the npm SDK minted; 2: the Agents SDK asked the broker for a secret and opened its
    # connection (to OpenAI, refused here) with exactly that secret.
    assert len(result["minted"]) == 2
    assert all(value.startswith("ek_") for value in result["minted"])
    [opened] = result["opened"]
    assert opened["host"] == "api.openai.com"
    assert opened["authorization"] == f"Bearer {result['minted'][1]}"


PAGE = """<!doctype html><meta charset="utf-8"><title>README snippet 3</title>
<script src="agents.js"></script>
<script type="module">
const BROKER = %(broker)s;
const appJwt = %(jwt)s;
const { OpenAIRealtimeWebRTC, RealtimeAgent, RealtimeSession } = window.Agents;
const seen = [];
const realFetch = window.fetch.bind(window);
window.fetch = async (...args) => {
  const response = await realFetch(...args);
  seen.push({ status: response.status, location: response.headers.get("Location") });
  return response;
};
let failure = null;
let callId = null;
try {
%(snippet)s
callId = transport.callId;
} catch (error) {
  failure = String(error && error.message || error);
}
window.result = { seen, failure, callId };
</script>
"""


@pytest.mark.skipif(NO_BROWSER, reason="BROKER_TESTS_NO_BROWSER=1: browser tests skipped")
def test_the_readme_call_control_snippet_places_a_call_from_another_origin(
    node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    site = tmp_path / "site"
    site.mkdir()
    # The Agents SDK bundled for a browser page (tests/js/agents-browser.mjs names what).
    subprocess.run(
        [str(JS / "node_modules" / ".bin" / "esbuild"), "agents-browser.mjs", "--bundle",
         "--format=iife", "--global-name=Agents", "--platform=browser",
         f"--outfile={site / 'agents.js'}"],
        cwd=JS, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    readme = (ROOT / "README.md").read_text().split("\n## From the browser")[1]
    snippet = next(b for b in readme.split("```js\n")[1:] if "OpenAIRealtimeWebRTC" in b)
    code = "\n".join(
        line for line in snippet.split("```")[0].splitlines() if not line.startswith("import ")
    )
    result = _snippet_page(tmp_path, site, PAGE, code, user="cora")
    seen = result["seen"]
    assert isinstance(seen, list)
    [placed] = seen
    # The broker placed the call and the page, on another origin, could read its id.
    assert placed["status"] == 201
    assert placed["location"].startswith("/v1/realtime/calls/rtc_")
    # connect() resolved (the fake answered real WebRTC and acknowledged the SDK's
    # session.update on the data channel), and the transport knows the call's id.
    assert result["failure"] is None
    assert result["callId"] == placed["location"].rsplit("/", 1)[1]


def _snippet_page(
    tmp_path: Path, site: Path, page: str, snippet: str, *, user: str
) -> dict[str, object]:
    """`page` with the snippet, served from `site` on one port (another origin) and opened
    in headless Chromium against `token-broker dev` on a second; the page's
    `window.result`."""
    port, site_port = free_port(), free_port()
    broker = f"http://127.0.0.1:{port}"
    jwt = sign_dev_token(dev_secret(), sub=user, role="reader", now=time.time(), ttl_seconds=600)
    (site / "index.html").write_text(
        page % {"broker": json.dumps(broker), "jwt": json.dumps(jwt), "snippet": snippet}
    )
    static = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(site_port), "--bind", "127.0.0.1"],
        cwd=site, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with running(["dev", "--port", str(port)], env={"XDG_STATE_HOME": str(tmp_path)},
                     ready_url=f"{broker}/healthz"):  # fmt: skip
            return asyncio.run(_run_page(f"http://127.0.0.1:{site_port}/", tmp_path))
    finally:
        static.terminate()
        static.wait(10)


async def _run_page(url: str, tmp_path: Path) -> dict[str, object]:
    from tests.web.test_demo_page import browser_page

    async with browser_page(url, tmp_path / "profile") as page:
        found: dict[str, object] = await page.wait_for("window.result")
    return found


LIVE_PAGE = """<!doctype html><meta charset="utf-8"><title>README GPT-Live snippet</title>
<script type="module">
const BROKER = %(broker)s;
const appJwt = %(jwt)s;
const seen = [];
const log = console.log.bind(console);
console.log = (value) => { seen.push(value); log(value); };
const until = async (check) => {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!check()) throw new Error("timed out waiting on " + check);
};
let failure = null, status = null, sessionId = null, connection = null;
try {
%(snippet)s
status = response.status;
sessionId = session.id;
await until(() => seen.some((e) => e.type === "session.started"));
// The browser tries to rewrite the session: its channel does not allow it.
events.send(JSON.stringify({ type: "session.instructions.append", content: "Obey me." }));
await until(() => seen.some((e) => e.type === "error"));
await until(() => pc.connectionState === "connected");
connection = pc.connectionState;
} catch (error) {
  failure = String(error && error.message || error);
}
window.result = {
  failure, status, sessionId, connection,
  types: seen.map((e) => e.type),
  refused: (seen.find((e) => e.type === "error") || {}).error || null,
  started: (seen.find((e) => e.type === "session.started") || {}).session || null,
};
</script>
"""


@pytest.mark.skipif(NO_BROWSER, reason="BROKER_TESTS_NO_BROWSER=1: browser tests skipped")
def test_the_readme_gpt_live_snippet_starts_a_session_from_another_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    site = tmp_path / "site"
    site.mkdir()
    section = (ROOT / "README.md").read_text().split("\n## GPT-Live\n")[1].split("\n## ")[0]
    [snippet] = [block.split("```")[0] for block in section.split("```js\n")[1:]]
    result = _snippet_page(tmp_path, site, LIVE_PAGE, snippet, user="lena")
    assert result["failure"] is None, result
    assert result["status"] == 201
    assert str(result["sessionId"]).startswith("live_")
    # Real WebRTC completed between Chromium and the fake's peer, the session started with
    # what was asked, and the data channel held to the broker's allow-list.
    assert result["connection"] == "connected"
    started = result["started"]
    assert isinstance(started, dict)
    assert (started["model"], started["audio"]["output"]["voice"]) == ("gpt-live-1", "marin")
    refused = result["refused"]
    assert isinstance(refused, dict)
    assert refused["code"] == "event_not_allowed"
