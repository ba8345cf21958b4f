"""Every log line of a full run, through the real formatters: no secret in any of them,
one access line per request, an audit event per mint."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from service.auth.tokens import sign_dev_token
from service.dev import create_dev_app
from service.logs import ConsoleFormatter, JsonFormatter, current_request_id
from tests.web.conftest import SECRET, make_settings

# The access line names a route by its template: never a user id of the path.
USER_ROUTE = "/v1/organization/users/{user_id:path}"

UPSTREAM_KEY = "test-upstream-key-LEAKCANARY-01234"  # fake: never a real key's shape
ADMIN_KEY = "admin-key-0123456789-abcdef"
POLICY = '{"roles": {"reader": {"limits": ["4/minute"]}, "owner": {"limits": ["4/minute"]}}}'


class Capture(logging.Handler):
    """Formats every record with both formatters, the way production would."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self._formatters = (JsonFormatter(), ConsoleFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.extend(f.format(record) for f in self._formatters)


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def jwt(sub: str, role: str = "reader") -> str:
    return sign_dev_token(SECRET, sub=sub, role=role, now=time.time())


def echoing_upstream(request: httpx.Request) -> httpx.Response:
    """An upstream that refuses and echoes the key it was given, as OpenAI's 401 does."""
    key = request.headers.get("authorization", "")
    if request.url.path.endswith("/client_secrets"):
        return httpx.Response(401, json={"error": {"message": f"Incorrect API key: {key}"}})
    return httpx.Response(500, text=f"internal error for {key}")


async def test_a_full_run_logs_no_secret_and_one_access_line_per_request(
    capture: Capture,
) -> None:
    tokens = {name: jwt(name) for name in ("alice", "bob", "busy")}
    tokens["olga"] = jwt("olga", role="owner")
    bad_token = jwt("mallory")[:-4] + "AAAA"
    secrets_seen: list[str] = []
    requests = 0

    good = create_dev_app(
        make_settings({"BROKER_ADMIN_API_KEY": ADMIN_KEY, "BROKER_POLICY": POLICY})
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=good), base_url="http://broker"
    ) as client:

        async def call(method: str, path: str, bearer: str, **kw: object) -> httpx.Response:
            nonlocal requests
            requests += 1
            headers = {"Authorization": f"Bearer {bearer}"}
            return await client.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]

        ga = await call("POST", "/v1/realtime/client_secrets", tokens["alice"], json={})
        beta = await call(
            "POST", "/v1/realtime/sessions", tokens["bob"], json={"model": "gpt-realtime"}
        )
        tx = await call("POST", "/v1/realtime/transcription_sessions", tokens["alice"], json={})
        assert [r.status_code for r in (ga, beta, tx)] == [200, 200, 200], tx.text
        secrets_seen += [
            ga.json()["value"],
            beta.json()["client_secret"]["value"],
            tx.json()["client_secret"]["value"],
        ]
        assert (
            await call("POST", "/v1/realtime/client_secrets", bad_token, json={})
        ).status_code == 401
        statuses = [
            (await call("POST", "/v1/realtime/client_secrets", tokens["busy"], json={})).status_code
            for _ in range(5)
        ]
        assert statuses == [200] * 4 + [429]
        assert (await call("GET", "/v1/organization/users", ADMIN_KEY)).status_code == 200
        assert (
            await call("POST", "/v1/organization/users/bob", tokens["olga"], json={"role": "owner"})
        ).status_code == 200
        assert (await call("DELETE", "/v1/organization/users/bob", ADMIN_KEY)).status_code == 200

    settings = make_settings({"BROKER_UPSTREAM": "openai", "BROKER_UPSTREAM_API_KEY": UPSTREAM_KEY})
    broken = create_dev_app(settings, transport=httpx.MockTransport(echoing_upstream))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=broken), base_url="http://broker"
    ) as client:
        for path in ("/v1/realtime/client_secrets", "/v1/vector_stores"):
            requests += 1
            response = await client.request(
                "POST" if "client" in path else "GET",
                path,
                headers={"Authorization": f"Bearer {tokens['alice']}"},
                json={} if "client" in path else None,
            )
            assert response.status_code in (502, 503), response.text

    forbidden = [UPSTREAM_KEY, ADMIN_KEY, SECRET, bad_token, *tokens.values(), *secrets_seen]
    assert len(capture.lines) > 2 * requests  # access lines, audits, upstream warnings
    for line in capture.lines:
        leaked = [secret[:12] for secret in forbidden if secret in line]
        assert leaked == [], line

    access = [r.__dict__ for r in capture.records if r.name == "service.access"]
    assert len(access) == requests
    assert len({entry["request_id"] for entry in access}) == requests
    for entry in access:
        assert {"request_id", "tenant", "user_hash", "status", "latency_ms"} <= set(entry)
        assert entry["latency_ms"] >= 0
    minted = [e for e in access if e["status"] == 200 and "realtime" in str(e["path"])]
    assert minted
    assert all(e["tenant"] == "default" and e["user_hash"] for e in minted)
    json_access = [
        json.loads(line) for line in capture.lines if '"logger":"service.access"' in line
    ]
    assert len(json_access) == requests

    audits = [r.__dict__ for r in capture.records if r.name.startswith("service.audit")]
    mints = [a for a in audits if a["action"] == "secret.minted"]
    assert len(mints) == 3 + 4  # GA, beta, transcription, then busy's four
    assert {m["endpoint"] for m in mints} == {
        "client_secrets",
        "sessions",
        "transcription_sessions",
    }
    for m in mints:
        assert m["tenant"] == "default"
        assert m["user_hash"]
        assert m["expires_at"] > time.time()
        assert isinstance(m["adjusted"], list)
    assert {a["action"] for a in audits} >= {"secret.minted", "user.role_updated", "user.deleted"}

    # Every 4xx/5xx line carries its error code, a 401's its reason; a 2xx line neither.
    assert [(e["error"], e["reason"]) for e in access if e["status"] == 401] == [
        ("invalid_token", "bad_signature")
    ]
    assert [e["error"] for e in access if e["status"] == 429] == ["rate_limit_exceeded"]
    assert all(e["error"] for e in access if e["status"] >= 400)
    assert not [e for e in access if e["status"] < 400 and {"error", "reason"} & set(e)]
    # The admin key's requests are its tenant's (it has no user to hash).
    users = [e for e in access if str(e["path"]).startswith("/v1/organization/users")]
    assert [e["tenant"] for e in users] == ["default"] * 3
    # A mint's audit line joins its access line by the request id, and so does a
    # directory change's (the role update by olga, the revocation by the admin key).
    by_id = {e["request_id"]: e for e in access}
    for m in mints:
        joined = by_id[m["request_id"]]
        assert (joined["status"], joined["user_hash"]) == (200, m["user_hash"])
    changes = [a for a in audits if a["action"].startswith("user.")]
    assert [
        (a["action"], by_id[a["request_id"]]["method"], by_id[a["request_id"]]["path"])
        for a in changes
    ] == [
        ("user.role_updated", "POST", USER_ROUTE),
        ("user.deleted", "DELETE", USER_ROUTE),
    ]


def test_httpx_request_lines_are_not_logged_at_info(restored_logging: None) -> None:
    from service.logs import configure_logging

    configure_logging("debug", "json")
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)


def test_library_loggers_are_held_at_every_level(restored_logging: None) -> None:
    from service.logs import configure_logging

    configure_logging("debug", "json")

    # Their INFO lines carry URLs, headers or frames: WARNING and above only.
    for name in ("websockets.client", "websockets.server", "aiohttp.client", "redis.asyncio",
                 "aiortc.rtcpeerconnection", "aioice.ice", "hpack", "uvicorn.asgi"):  # fmt: skip
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    # uvicorn's protocol logger keeps its INFO lines, not websockets' DEBUG ones.
    assert logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)
    assert not logging.getLogger("uvicorn.error").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("service.calls.controller").isEnabledFor(logging.DEBUG)


JWT_IN_URL = jwt("in-url")


def test_the_handler_holds_libraries_even_when_they_reopen_their_loggers(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.logs import configure_logging

    configure_logging("debug", "json")
    reopened = ("uvicorn.error", "websockets.client", "aioice.ice")
    try:
        for name in reopened:  # as uvicorn --log-level debug, or a dependency, would
            logging.getLogger(name).setLevel(logging.DEBUG)
        uvicorn_error = logging.getLogger("uvicorn.error")
        # websockets' handshake and frame lines on uvicorn's logger, its client's header.
        uvicorn_error.debug("< %s: %s", "sec-websocket-protocol", f"realtime, k.{JWT_IN_URL}")
        uvicorn_error.debug("< %s", 'TEXT \'{"type": "response.create"}\' [27 bytes]')
        logging.getLogger("websockets.client").debug("> Authorization: Bearer %s", UPSTREAM_KEY)
        logging.getLogger("aioice.ice").info("Connection(0) candidate %s", "10.0.0.1")
        # uvicorn's own handshake line: kept, its query redacted.
        target = f"/v1/realtime?call_id=rtc_1&access_token={JWT_IN_URL}"
        uvicorn_error.info('%s - "WebSocket %s" %d', "127.0.0.1:5000", target, 401)
        logging.getLogger("service.web.relay").debug("a broker line at debug")
    finally:
        for name in reopened:
            logging.getLogger(name).setLevel(logging.NOTSET)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["msg"] for line in lines] == [
        '127.0.0.1:5000 - "WebSocket /v1/realtime?call_id=[redacted]&access_token=[redacted]" 401',
        "a broker line at debug",
    ]


async def test_no_query_string_reaches_the_access_line(capture: Capture) -> None:
    app = create_dev_app(make_settings({"BROKER_ADMIN_API_KEY": ADMIN_KEY}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        listed = await client.get(f"/v1/organization/users?access_token={JWT_IN_URL}")
        minted = await client.post(
            f"/v1/realtime/client_secrets?token={JWT_IN_URL}&key={UPSTREAM_KEY}", json={}
        )

    assert (listed.status_code, minted.status_code) == (401, 401)  # never read from the URL
    access = [r.__dict__ for r in capture.records if r.name == "service.access"]
    assert [(e["path"], e["status"]) for e in access] == [
        ("/v1/organization/users", 401),
        ("/v1/realtime/client_secrets", 401),
    ]
    # The broker's own lines (this process's httpx client, the test's, logs its URLs).
    broker = [r for r in capture.records if r.name.startswith("service.")]
    assert broker
    assert not [r for r in broker if JWT_IN_URL in f"{r.getMessage()} {vars(r)}"]


def unsigned(header: dict[str, object], payload: dict[str, object]) -> str:
    def segment(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{segment(header)}.{segment(payload)}.AAAA"


async def test_a_401s_access_line_says_why_and_the_caller_is_told_nothing_more(
    capture: Capture,
) -> None:
    settings = make_settings({"BROKER_JWT_ISSUER": "https://idp", "BROKER_JWT_AUDIENCE": "app"})
    now = time.time()

    def signed(**kwargs: Any) -> str:
        options: dict[str, Any] = {"issuer": "https://idp", "audience": "app", "now": now}
        return sign_dev_token(SECRET, sub="mallory", role="owner", **{**options, **kwargs})

    good = signed()
    attempts = {
        "missing": None,
        "malformed": "Basic bWFsbG9yeQ==",
        "expired": f"Bearer {signed(now=now - 7200)}",
        "bad_signature": f"Bearer {good[:-4]}AAAA",
        "unknown_issuer": f"Bearer {signed(issuer='https://evil')}",
        "audience": f"Bearer {signed(audience=None)}",
        "algorithm": f"Bearer {unsigned({'alg': 'none'}, {'sub': 'mallory', 'exp': now + 60})}",
    }
    app = create_dev_app(settings)
    bodies = set()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        for authorization in attempts.values():
            headers = {} if authorization is None else {"Authorization": authorization}
            response = await client.post("/v1/realtime/client_secrets", headers=headers, json={})
            assert response.status_code == 401
            bodies.add(response.content)

    access = [r.__dict__ for r in capture.records if r.name == "service.access"]
    assert [(e["status"], e["error"], e["reason"]) for e in access] == [
        (401, "invalid_token", reason) for reason in attempts
    ]
    assert len(bodies) == 1  # the same body whatever the cause
    tokens = [a.partition(" ")[2] for a in attempts.values() if a is not None]
    for line in capture.lines:
        assert not [t for t in tokens if t in line], line


async def test_the_call_admin_endpoints_note_their_caller(capture: Capture) -> None:
    app = create_dev_app(make_settings({"BROKER_ADMIN_API_KEY": ADMIN_KEY}))
    owner = {"Authorization": f"Bearer {jwt('olga', role='owner')}"}
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        statuses = [
            (await client.get("/v1/realtime/calls", headers=admin)).status_code,
            (await client.get("/v1/realtime/calls", headers=owner)).status_code,
            (await client.post("/v1/realtime/calls/rtc_gone/hangup", headers=admin)).status_code,
        ]

    access = [r.__dict__ for r in capture.records if r.name == "service.access"]
    assert statuses == [200, 200, 404]
    assert [e["tenant"] for e in access] == ["default"] * 3
    assert [bool(e["user_hash"]) for e in access] == [False, True, False]
    assert access[2]["error"] == "not_found"


async def test_an_audit_line_carries_the_id_its_request_came_with(capture: Capture) -> None:
    app = create_dev_app(make_settings())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        headers = {"Authorization": f"Bearer {jwt('alice')}", "X-Request-ID": "req-42"}
        minted = await client.post("/v1/realtime/client_secrets", headers=headers, json={})

    assert minted.status_code == 200
    audits = [r.__dict__ for r in capture.records if r.name.startswith("service.audit")]
    assert [(a["action"], a["request_id"]) for a in audits] == [("secret.minted", "req-42")]
    # The id is the request's only: none is left behind for what runs after it.
    assert current_request_id() is None


async def test_a_directory_changes_audit_line_carries_its_requests_id(capture: Capture) -> None:
    app = create_dev_app(make_settings({"BROKER_ADMIN_API_KEY": ADMIN_KEY}))
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        minted = await client.post(
            "/v1/realtime/client_secrets",
            headers={"Authorization": f"Bearer {jwt('bob')}"},
            json={},
        )
        updated = await client.post(
            "/v1/organization/users/bob",
            headers={**admin, "X-Request-ID": "req-role"},
            json={"role": "owner"},
        )
        deleted = await client.delete(
            "/v1/organization/users/bob", headers={**admin, "X-Request-ID": "req-revoke"}
        )

    assert [r.status_code for r in (minted, updated, deleted)] == [200, 200, 200]
    audits = [r.__dict__ for r in capture.records if r.name == "service.audit"]
    changes = [(a["action"], a["request_id"]) for a in audits if a["action"].startswith("user.")]
    assert changes == [("user.role_updated", "req-role"), ("user.deleted", "req-revoke")]
    access = [r.__dict__ for r in capture.records if r.name == "service.access"]
    by_id = {e["request_id"]: e for e in access}
    joined = [by_id[request_id] for request_id in ("req-role", "req-revoke")]
    assert [(e["method"], e["path"], e["status"]) for e in joined] == [
        ("POST", USER_ROUTE, 200),
        ("DELETE", USER_ROUTE, 200),
    ]
    json_audits = [json.loads(line) for line in capture.lines if '"action":"user.' in line]
    assert [line["request_id"] for line in json_audits] == ["req-role", "req-revoke"]


async def test_the_access_line_never_names_a_user_or_an_unmatched_path(
    capture: Capture,
) -> None:
    app = create_dev_app(make_settings({"BROKER_ADMIN_API_KEY": ADMIN_KEY}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        await client.get("/v1/organization/users/alice-the-user", headers=admin)
        await client.get("/v1/eyJhbGciOiJIUzI1NiJ9.a-token-in-a-path")

    access = [r.__dict__ for r in capture.records if r.name == "service.access"]
    assert [(e["path"], e["status"]) for e in access] == [(USER_ROUTE, 404), ("other", 404)]
    # The broker's own lines (the test's httpx client logs its URLs itself).
    broker = [JsonFormatter().format(r) for r in capture.records if r.name.startswith("service.")]
    assert broker
    assert not any("alice-the-user" in line or "eyJhbG" in line for line in broker)
