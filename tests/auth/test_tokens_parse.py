"""The token reader's shortcuts (one prebuilt JSON decoder, the header cache) read
exactly what the plain reader reads and refuse exactly what it refuses."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.auth import tokens as auth
from service.errors import InvalidToken


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def plain(raw: bytes) -> object:
    """The reader as it was: `json.loads` with the hooks, built per call."""
    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=auth._unique_keys,
            parse_constant=auth._no_constant,
        )
    except (ValueError, RecursionError, InvalidToken):
        return "refused"
    return value if isinstance(value, dict) else "refused"


def fast(raw: bytes) -> object:
    try:
        return auth._json_object(raw)
    except InvalidToken:
        return "refused"


SEGMENTS = [
    b'{"alg":"HS256","typ":"JWT"}',
    b'{"alg":"HS256","alg":"none"}',
    b'{"a":{"b":1,"b":2}}',
    b'{"x":NaN}',
    b'{"x":-Infinity}',
    b'{"x":1e400}',
    b"[1,2]",
    b'{"a":1} x',
    b' {"a":"\\u00e9"} ',
    b'{"a":1}\x00',
    '{"é":1}'.encode("utf-16"),
    b"\xff",
    b"[" * 100_000,
]


@pytest.mark.parametrize("raw", SEGMENTS)
def test_the_prebuilt_decoder_reads_as_json_loads_did(raw: bytes) -> None:
    assert fast(raw) == plain(raw)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(JSONISH)
def test_any_document_reads_the_same(value: Any) -> None:
    raw = json.dumps(value).encode()
    assert fast(raw) == plain(raw)
    duplicated = raw.replace(b'{"', b'{"k": 1, "k": 2, "', 1)
    assert fast(duplicated) == plain(duplicated)


def test_a_header_is_read_once_and_shared_read_only() -> None:
    segment = b64(b'{"alg":"HS256","typ":"JWT","kid":"cache-test"}')
    first = auth._header(segment)
    hits = auth._header.cache_info().hits
    assert auth._header(segment) is first
    assert auth._header.cache_info().hits == hits + 1
    assert dict(first) == {"alg": "HS256", "typ": "JWT", "kid": "cache-test"}


@pytest.mark.parametrize(
    "segment",
    [
        b64(b'{"alg":"HS256","alg":"none"}'),
        b64(b'{"alg":NaN}'),
        b64(b'["HS256"]'),
        b64(b'{"alg":"HS256"}')[:-1] + "B",  # non-canonical last character
        "A",  # impossible base64url length
    ],
)
def test_a_bad_header_is_refused_every_time_and_never_cached(segment: str) -> None:
    for _ in range(2):
        size = auth._header.cache_info().currsize
        with pytest.raises(InvalidToken):
            auth._header(segment)
        assert auth._header.cache_info().currsize == size


def test_the_header_cache_is_bounded() -> None:
    for i in range(200):
        auth._header(b64(json.dumps({"alg": "HS256", "kid": f"k{i}"}).encode()))
    assert auth._header.cache_info().currsize <= 64
