"""multipart/form-data read as it streams in: the parts asked for, and every cap."""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from python_multipart import MultipartParser

from service.calls.sdp import parse_multipart
from service.errors import BrokerError, InvalidValue, RequestTooLarge
from service.web import multipart
from service.web.multipart import (
    MAX_FRAMING_BYTES,
    MAX_PART_BYTES,
    MAX_PART_HEADERS,
    MAX_PARTS,
    SLICE,
    FormReader,
)
from tests.calls.conftest import POLICY, close_harness, dev_harness

OFFER = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
KEEP = {"sdp": 32 * 1024, "session": 64 * 1024}
BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def form(files: Any) -> tuple[str, bytes]:
    """The content type and body httpx sends for `files` (as the OpenAI SDKs do)."""
    request = httpx.Request("POST", "http://x/", files=files)
    return request.headers["content-type"], request.read()


def read(content_type: str, body: bytes, step: int | None = None, **caps: int) -> dict[str, bytes]:
    """The body fed whole, or `step` bytes at a time as a slow client sends it."""
    reader = FormReader(content_type, KEEP, **caps)
    size = step or max(1, len(body))
    for start in range(0, len(body), size):
        reader.feed(body[start : start + size])
    return reader.close()


def part(headers: bytes, content: bytes = b"") -> bytes:
    return b"--" + BOUNDARY.encode() + b"\r\n" + headers + b"\r\n" + content + b"\r\n"


def named(name: str, content: bytes = b"") -> bytes:
    return part(b'Content-Disposition: form-data; name="' + name.encode() + b'"\r\n', content)


END = b"--" + BOUNDARY.encode() + b"--\r\n"


def refusal(content_type: str, body: bytes, **caps: int) -> BrokerError:
    with pytest.raises(BrokerError) as caught:
        read(content_type, body, **caps)
    return caught.value


# --- what is accepted ------------------------------------------------------------------


@pytest.mark.parametrize("step", [None, 1, 7, 1000])
def test_the_parts_asked_for_by_name_however_the_body_is_cut(step: int | None) -> None:
    content_type, body = form(
        {"sdp": (None, OFFER, "application/sdp"), "session": (None, b'{"type": "realtime"}')}
    )
    assert read(content_type, body, step) == {"sdp": OFFER, "session": b'{"type": "realtime"}'}


def test_other_parts_are_dropped_and_the_first_of_a_name_wins() -> None:
    body = (
        named("model", b"gpt")
        + part(b"Content-Type: text/plain\r\n", b"no name")
        + named("sdp", OFFER)
        + named("sdp", b"second")
        + END
    )
    assert read(CONTENT_TYPE, body) == {"sdp": OFFER}


def test_quoted_boundary_and_upper_case_type_and_an_epilogue() -> None:
    body = named("sdp", OFFER) + END + b"anything after the end is ignored" * 100
    assert read(f'MULTIPART/FORM-DATA; BOUNDARY="{BOUNDARY}"', body) == {"sdp": OFFER}


def test_a_part_exactly_at_its_limit_and_exactly_max_parts() -> None:
    body = named("sdp", b"s" * KEEP["sdp"]) + named("x") * (MAX_PARTS - 1) + END
    assert read(CONTENT_TYPE, body) == {"sdp": b"s" * KEEP["sdp"]}


async def test_what_the_official_sdk_sends_places_a_call() -> None:
    h = dev_harness(POLICY)
    # openai 3.x speaks through httpx2, so its in-process transport comes from there.
    transport = httpx2.ASGITransport(app=h.app)
    try:
        async with httpx2.AsyncClient(transport=transport) as http:
            client = openai.AsyncOpenAI(
                api_key=h.token(), base_url="http://b/v1", http_client=http, max_retries=0
            )
            placed = await client.realtime.calls.with_raw_response.create(
                sdp=OFFER.decode(), session={"type": "realtime", "instructions": "ignored"}
            )
        assert placed.http_request.headers["content-type"].startswith("multipart/form-data")
        assert placed.status_code == 201
        call_id = placed.headers["location"].rsplit("/", 1)[1]
        assert h.fake.calls[call_id].session["instructions"] == "You are the Acme assistant."
    finally:
        await close_harness(h)


# The old parser (the standard library's email) is the reference for what clients send.
_names = st.sampled_from(["sdp", "session", "model", "file"])
_content = st.binary(max_size=300)
_parts = st.lists(
    st.tuples(_names, _content, st.sampled_from([None, "application/sdp", "application/json"])),
    max_size=6,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(parts=_parts, filename=st.booleans(), step=st.integers(1, 2000))
def test_same_parts_as_the_email_parser_read(
    parts: list[tuple[str, bytes, str | None]], filename: bool, step: int
) -> None:
    files = [(name, ("f.txt" if filename else None, content, ct)) for name, content, ct in parts]
    content_type, body = form(files or {"x": (None, b"")})
    expected = {k: v for k, v in parse_multipart(content_type, body).items() if k in KEEP}
    assert read(content_type, body, step) == expected


# --- what is refused ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/mixed; boundary=x",
        "application/sdp",
        "",
    ],
)
def test_not_a_form_with_a_boundary(content_type: str) -> None:
    with pytest.raises(InvalidValue, match="could not be read"):
        FormReader(content_type, KEEP)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "closing boundary"),
        (named("sdp", OFFER), "closing boundary"),
        (named("sdp", OFFER).replace(b"\r\n", b"\n") + END, "could not be read"),
        (b"a preamble\r\n" + named("sdp", OFFER) + END, "could not be read"),
        (b"--another\r\n\r\nx\r\n--another--\r\n", "could not be read"),
    ],
    ids=["empty", "unterminated", "bare LF", "preamble", "wrong boundary"],
)
def test_a_malformed_body_is_a_400(body: bytes, message: str) -> None:
    refused = refusal(CONTENT_TYPE, body)
    assert isinstance(refused, InvalidValue)
    assert message in refused.message


def test_more_parts_than_the_cap_is_a_400() -> None:
    refused = refusal(CONTENT_TYPE, named("sdp", OFFER) + named("x") * MAX_PARTS + END)
    assert (refused.status, refused.code, refused.param) == (400, "invalid_value", None)
    assert refused.message == f"The multipart body has more than {MAX_PARTS} parts."


def test_a_part_over_its_limit_is_a_413_naming_it() -> None:
    refused = refusal(CONTENT_TYPE, named("sdp", b"s" * (KEEP["sdp"] + 1)) + END)
    assert isinstance(refused, RequestTooLarge)
    assert (refused.status, refused.code, refused.param) == (413, "request_too_large", "sdp")
    assert refused.message == f"The 'sdp' part is larger than {KEEP['sdp']} bytes."


def test_a_dropped_part_over_the_default_limit_is_a_413_without_its_name() -> None:
    refused = refusal(CONTENT_TYPE, named("made-up", b"x" * (MAX_PART_BYTES + 1)) + END)
    assert (refused.status, refused.param) == (413, None)
    assert "made-up" not in refused.message


@pytest.mark.parametrize(
    "body",
    [
        # Each under every other cap (python-multipart's own header limits included).
        part(b"X-Long: " + b"h" * 3000 + b"\r\n") * 3 + END,
        (named("x" * 600) * MAX_PARTS) + END,
    ],
    ids=["long headers", "long names"],
)
def test_framing_over_its_cap_is_a_400(body: bytes) -> None:
    refused = refusal(CONTENT_TYPE, body)
    assert (refused.status, refused.param) == (400, None)
    assert "boundaries and part headers" in refused.message


def test_more_headers_in_a_part_than_the_cap_is_a_400() -> None:
    disposition = b'Content-Disposition: form-data; name="sdp"\r\n'
    eight = part(disposition + b"X-A: 1\r\n" * (MAX_PART_HEADERS - 1), OFFER) + END
    assert read(CONTENT_TYPE, eight) == {"sdp": OFFER}
    nine = part(disposition + b"X-A: 1\r\n" * MAX_PART_HEADERS, OFFER) + END
    refused = refusal(CONTENT_TYPE, nine)
    # python-multipart 0.0.27 and later have the same cap of their own, and refuse first.
    assert (refused.status, refused.code, refused.param) == (400, "invalid_value", None)


def test_a_content_transfer_encoding_is_refused() -> None:
    body = part(
        b'Content-Disposition: form-data; name="sdp"\r\nContent-Transfer-Encoding: base64\r\n',
        b"dj0w",
    )
    refused = refusal(CONTENT_TYPE, body + END)
    assert (refused.status, refused.param) == (400, "sdp")
    assert "Content-Transfer-Encoding" in refused.message
    binary = part(
        b'Content-Disposition: form-data; name="sdp"\r\nContent-Transfer-Encoding: binary\r\n',
        OFFER,
    )
    assert read(CONTENT_TYPE, binary + END) == {"sdp": OFFER}


# --- what it costs ----------------------------------------------------------------------


class CountingParser(MultipartParser):
    written = 0

    def write(self, data: bytes) -> int:
        CountingParser.written += len(data)
        written: int = super().write(data)
        return written


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[CountingParser]:
    CountingParser.written = 0
    monkeypatch.setattr(multipart, "MultipartParser", CountingParser)
    return CountingParser


def empty_parts(count: int) -> bytes:
    """The flood of issue 29: `count` parts with neither headers nor content."""
    return b"--b\r\n\r\n" + b"\r\n--b\r\n\r\n" * (count - 1) + b"\r\n--b--\r\n"


def test_a_flood_of_empty_parts_stops_at_the_cap(counting: type[CountingParser]) -> None:
    body = empty_parts(6500)
    assert 58_000 < len(body) < 64 * 1024
    refused = refusal("multipart/form-data; boundary=b", body)
    assert refused.message == f"The multipart body has more than {MAX_PARTS} parts."
    # The parser saw the first slice only, not the 6,500 parts.
    assert counting.written <= SLICE


@pytest.mark.parametrize(
    "body",
    [
        part(b"X-Long: " + b"h" * 60_000 + b"\r\n") + END,
        part(b"a: b\r\n" * 10_000) + END,
        b"\r\n" * 30_000 + named("sdp", OFFER) + END,
    ],
    ids=["long header", "many headers", "leading blank lines"],
)
def test_bytes_parsed_byte_by_byte_are_bounded(counting: type[CountingParser], body: bytes) -> None:
    """What the parser walks in Python, byte by byte (headers, boundaries, blank lines),
    is at most the framing cap and one slice, whatever the body holds."""
    with pytest.raises(InvalidValue):
        read(CONTENT_TYPE, body)
    assert counting.written <= MAX_FRAMING_BYTES + SLICE
