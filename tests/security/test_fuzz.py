"""Property-based fuzzing of every endpoint: random methods, paths, headers and bodies.
Whatever arrives, the answer is never a 500, never a traceback, never slow, and every
error is the OpenAI-shaped JSON with an X-Request-ID."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from service.auth.tokens import sign_dev_token
from service.config.settings import load_settings
from service.dev import create_dev_app

SECRET = "fuzz-secret-0123456789-abcdefghijklmnopq"
ADMIN_KEY = "fuzz-admin-key-0123456789-abcdefghijkl"
PATHS = [
    "/v1/realtime/client_secrets",
    "/v1/realtime/sessions",
    "/v1/realtime/transcription_sessions",
    "/v1/realtime/translations/client_secrets",
    "/v1/organization/users",
    "/v1/organization/users/alice",
    "/v1/organization/users/%2e%2e%2fadmin",
    "/v1/vector_stores",
    "/v1/realtime/calls",
    "/v1/realtime/calls/rtc_1/hangup",
    "/v1/live/sessions",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
]
LISTS = ["/v1/realtime/calls", "/v1/organization/users", "/v1/vector_stores"]
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
session_keys = st.sampled_from(
    ["type", "model", "voice", "instructions", "temperature", "audio", "tools", "expires_after",
     "modalities", "turn_detection", "max_output_tokens", "output_modalities", "session"]
)  # fmt: skip
mint_like = st.fixed_dictionaries(
    {},
    optional={
        "session": st.dictionaries(session_keys, json_values, max_size=5),
        "expires_after": st.dictionaries(
            st.sampled_from(["anchor", "seconds"]), json_values, max_size=2
        ),
        "role": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    mint_like.map(lambda v: json.dumps(v).encode()),
    st.just(b'{"a": NaN}'),
    st.just(b'{"a": 1, "a": 2}'),
)
paths = st.one_of(
    st.sampled_from(PATHS),
    st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#?"),
        max_size=30,
    ).map(lambda s: "/" + s),
    st.sampled_from(PATHS).flatmap(
        lambda p: st.text(
            alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=10
        ).map(lambda q: f"{p}?limit={q}")
    ),
    # Any character in a list's query, percent-encoded: "²".isdigit() is true and
    # int("²") raises, which once answered 500.
    st.sampled_from(PATHS).flatmap(
        lambda p: st.tuples(
            st.sampled_from(["limit", "after", "before", "order"]),
            st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6),
        ).map(lambda pair: f"{p}?{pair[0]}={quote(pair[1], safe='')}")
    ),
    st.sampled_from(["²", "³", "¹", "٣", "\uff15", "1²"]).flatmap(
        lambda digits: st.sampled_from(LISTS).map(lambda p: f"{p}?limit={quote(digits, safe='')}")
    ),
)


def _assert_sane(status: int, body: bytes, headers: dict[str, str], elapsed: float) -> None:
    assert status != 500, body
    assert b"Traceback" not in body
    assert b'File "' not in body
    # No input costs seconds (a quadratic parse, a wait on a body that never comes): an
    # answer takes milliseconds; the bound is generous for a loaded machine.
    assert elapsed < 2.0
    assert "x-request-id" in headers
    if status >= 400 and body and headers.get("content-type", "").startswith("application/json"):
        error = json.loads(body)["error"]
        assert isinstance(error["message"], str)
        assert isinstance(error["type"], str)


def test_fuzz_every_endpoint() -> None:
    settings_ = load_settings(
        {"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": SECRET, "BROKER_ADMIN_API_KEY": ADMIN_KEY}
    )
    app = create_dev_app(settings_)
    token = sign_dev_token(SECRET, sub="fuzzer", role="owner", now=time.time())
    # Mostly credentials that pass, so that most examples reach the body parsers.
    valid = st.sampled_from([f"Bearer {token}", f"Bearer {ADMIN_KEY}"])
    invalid = st.sampled_from([None, "Bearer x", "Basic Zm9vOmJhcg=="]) | st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=40,
    )
    authorizations = st.one_of(valid, valid, valid, invalid)
    seen: set[int] = set()

    with TestClient(app, raise_server_exceptions=False) as client:

        @FUZZ
        @given(
            method=st.sampled_from(["POST", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
            path=paths,
            body=bodies,
            authorization=authorizations,
            content_type=st.sampled_from(
                [None, "application/json", "text/plain", "application/sdp", "multipart/form-data"]
            ),
        )
        def check(
            method: str, path: str, body: bytes, authorization: str | None, content_type: str | None
        ) -> None:
            headers: dict[bytes, bytes] = {}
            if authorization is not None:
                headers[b"Authorization"] = authorization.encode("latin-1")
            if content_type is not None:
                headers[b"Content-Type"] = content_type.encode()
            started = time.monotonic()
            response = client.request(method, path, content=body, headers=headers)
            elapsed = time.monotonic() - started
            seen.add(response.status_code)
            _assert_sane(response.status_code, response.content, dict(response.headers), elapsed)

        check()

    # The fuzzer reached past authentication, not only the 401/404 walls.
    assert 200 in seen
    assert seen & {400, 413, 422}
