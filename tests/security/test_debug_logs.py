"""At BROKER_LOG_LEVEL=debug, nothing secret and no frame content reaches the log, from the
broker or from any library it runs on (DESIGN 13): a real `token-broker serve` on the fake
upstream (its own process), driven over real sockets through every path that carries a
credential or a user's words. uvicorn hands the relay's handshake and frames to websockets,
which logs them at DEBUG under `uvicorn.error`; the call's sideband is websockets' client
with the server key; upstream calls are httpx's. The whole output is searched for every
secret, each JWT's signature segment on its own too, and for the words of the call."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from service.auth.tokens import sign_dev_token
from tests.eventually import eventually_sync
from tests.processes import fake_upstream, free_port, running

pytestmark = pytest.mark.process

SECRET = "debug-logs-secret-0123456789-abcdefghijk"
ADMIN_KEY = "debug-logs-admin-key-0123456789"
UPSTREAM_KEY = "test-debug-logs-upstream-key-0123456789"
HASH_KEY = "debug-logs-user-hash-key-0123456789-abcdef"
# Words of the call that no line may carry: the policy's instructions (in every
# session.updated the sideband reads), what the browser sends through the relay, and what
# the user says (the fake echoes it in server events on the sideband). Short, because
# websockets shows a long frame's first 48 and last 24 characters only.
POLICY_WORDS = "policy-q3v"
RELAY_WORDS = "typed-k7z"
SPOKEN_WORDS = "spoken-x9w"
OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
LIVE_BODY = {"session": {"model": "gpt-live-1"}, "transport": {"type": "webrtc", "sdp": OFFER}}
POLICY = {
    "default_role": "reader",
    "roles": {
        "reader": {
            "instructions": {"mode": "server", "text": POLICY_WORDS},
            "client_channel": "relay",
            "client_events": ["conversation.item.create", "response.create", "session.update"],
            "max_concurrent_calls": 2,
            "limits": ["1000/minute"],
        },
        # A relay role mints no secret: the client secret comes from a role that may.
        "minter": {
            "instructions": {"mode": "server", "text": POLICY_WORDS},
            "limits": ["1000/minute"],
        },
    },
}


def jwt(sub: str, role: str = "reader") -> str:
    return sign_dev_token(SECRET, sub=sub, role=role, now=time.time())


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    eventually_sync(check, seconds=seconds, what=what)


def user_message(text: str) -> dict[str, Any]:
    content = [{"type": "input_text", "text": text}]
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": content}}  # fmt: skip


def relay_session(url: str, call_id: str, token: str) -> None:
    """The browser on the relay, authenticated by subprotocol as OpenAI's SDK does: a
    session.update until the call answers, then a user's message and a response.create
    with instructions of its own (which the policy's server-side instructions overrule)."""
    protocols = [Subprotocol("realtime"), Subprotocol(f"openai-insecure-api-key.{token}")]
    events: list[dict[str, Any]] = []
    with connect(f"{url}/v1/realtime?call_id={call_id}", subprotocols=protocols) as ws:
        assert ws.subprotocol == "realtime"
        update = {"type": "session.update", "session": {"audio": {"output": {"voice": "ash"}}}}
        deadline = time.monotonic() + 5
        while not any(e.get("type") == "session.updated" for e in events):
            assert time.monotonic() < deadline, events
            ws.send(json.dumps(update))
            with contextlib.suppress(TimeoutError):
                events.append(json.loads(ws.recv(timeout=0.5)))
        ws.send(json.dumps(user_message(RELAY_WORDS)))
        ws.send(json.dumps({"type": "response.create", "response": {"instructions": RELAY_WORDS}}))
        with contextlib.suppress(TimeoutError):
            while True:
                ws.recv(timeout=0.5)


def test_at_debug_level_no_secret_and_no_words_of_a_call_are_logged(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    fake_port, port = free_port(), free_port()
    fake = f"http://127.0.0.1:{fake_port}/v1"
    url = f"http://127.0.0.1:{port}"
    env = {
        "BROKER_HOST": "127.0.0.1",
        "BROKER_PORT": str(port),
        "BROKER_JWT_SECRET": SECRET,
        "BROKER_ADMIN_API_KEY": ADMIN_KEY,
        "BROKER_UPSTREAM_API_KEY": UPSTREAM_KEY,
        "BROKER_UPSTREAM_URL": fake,
        "BROKER_USER_HASH_KEY": HASH_KEY,
        "BROKER_POLICY": json.dumps(POLICY),
        "BROKER_LOG_LEVEL": "debug",
    }
    tokens = {name: jwt(name) for name in ("mia", "rita", "rita-relay", "lena", "quinn", "hal")}
    tokens["mia"] = jwt("mia", role="minter")
    tokens["rita-relay"] = jwt("rita")  # a second token of the call's user, for the relay
    shown: list[str] = []  # what the broker handed out: client secrets, SDP credentials
    with contextlib.ExitStack() as stack:
        stack.enter_context(fake_upstream(fake_port, log=tmp_path / "fake.log"))
        stack.enter_context(running(["serve"], env=env, ready_url=f"{url}/healthz", log=log))

        def bearer(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[name]}"}

        minted = httpx.post(
            f"{url}/v1/realtime/client_secrets",
            json={"session": {"type": "realtime"}},
            headers=bearer("mia"),
        )
        assert minted.status_code == 200, minted.text
        shown.append(minted.json()["value"])

        placed = httpx.post(
            f"{url}/v1/realtime/calls",
            content=OFFER,
            headers={**bearer("rita"), "Content-Type": "application/sdp"},
            timeout=10,
        )
        assert placed.status_code == 201, placed.text
        shown += [line.split(":", 1)[1] for line in placed.text.splitlines() if "ice-pwd" in line]
        call_id = placed.headers["location"].rsplit("/", 1)[1]

        upstream = {"Authorization": f"Bearer {UPSTREAM_KEY}"}  # the fake's own routes

        def fake_call() -> dict[str, Any]:
            found = httpx.get(f"{fake}/_fake/realtime/calls/{call_id}", headers=upstream)
            return dict(found.json()) if found.status_code == 200 else {}

        wait_for(lambda: fake_call().get("sidebands") == 1, 10, "the sideband joined")
        spoken = httpx.post(
            f"{fake}/_fake/realtime/calls/{call_id}/events",
            json=user_message(SPOKEN_WORDS),
            headers=upstream,
        )
        assert spoken.is_success, spoken.text

        relay_session(url.replace("http", "ws"), call_id, tokens["rita-relay"])

        # A token in the URL, as a careless client sends it: refused, and its line redacted.
        with pytest.raises(InvalidStatus):
            connect(
                f"{url.replace('http', 'ws')}/v1/realtime?call_id={call_id}"
                f"&access_token={tokens['quinn']}",
                subprotocols=[Subprotocol("realtime")],
            )
        in_query = httpx.get(f"{url}/v1/organization/users?access_token={tokens['hal']}")
        assert in_query.status_code == 401

        live = httpx.post(
            f"{url}/v1/live/sessions",
            json={
                "session": {"model": "gpt-live-1"},
                "transport": {"type": "webrtc", "sdp": OFFER},
            },
            headers=bearer("lena"),
            timeout=10,
        )
        assert live.status_code == 201, live.text
        listed = httpx.get(
            f"{url}/v1/organization/users", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert listed.status_code == 200
        hangup = httpx.post(
            f"{url}/v1/realtime/calls/{call_id}/hangup",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert hangup.status_code == 200
    output = log.read_text()

    assert '"level":"debug"' in output  # debug lines were written: the search means something
    assert "WebSocket /v1/realtime?call_id=[redacted]&access_token=[redacted]" in output
    assert "relay attached" in output
    secrets = {
        "upstream key": UPSTREAM_KEY,
        "admin key": ADMIN_KEY,
        "JWT secret": SECRET,
        "user hash key": HASH_KEY,
        **{f"JWT of {name}": token for name, token in tokens.items()},
        **{f"signature of {name}'s JWT": t.rsplit(".", 1)[1] for name, t in tokens.items()},
        **{f"handed out #{n}": value.strip() for n, value in enumerate(shown)},
        "policy instructions": POLICY_WORDS,
        "words typed": RELAY_WORDS,
        "words spoken": SPOKEN_WORDS,
    }
    assert [what for what, secret in secrets.items() if secret in output] == []
