"""SDP offer checks, the fake's answers, multipart parsing."""

from __future__ import annotations

import httpx
import pytest

from service.calls.sdp import answer_for, check_offer, parse_multipart
from service.errors import InvalidValue

OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.mark.parametrize("raw", [b"", b"hello", b"v=0\r\ns=-\r\n", b"\xff\xfe", b"v=0\nm=" * 9000])
def test_bad_offers_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidValue) as caught:
        check_offer(raw)
    assert caught.value.param == "sdp"


def test_answer_mirrors_each_media_section() -> None:
    answer = answer_for(check_offer(OFFER.encode() + b"m=application 9 UDP/DTLS/SCTP webrtc\r\n"))
    lines = answer.split("\r\n")
    assert lines[0] == "v=0"
    assert [line for line in lines if line.startswith("m=")] == [
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "m=application 9 UDP/DTLS/SCTP webrtc",
    ]
    assert "a=group:BUNDLE 0 1" in lines


def test_multipart_parts_by_name() -> None:
    request = httpx.Request(
        "POST",
        "http://x/",
        files={"sdp": (None, OFFER.encode(), "application/sdp"), "session": (None, b"{}")},
    )
    parts = parse_multipart(request.headers["content-type"], request.read())
    assert parts == {"sdp": OFFER.encode(), "session": b"{}"}
    with pytest.raises(InvalidValue):
        parse_multipart("text/plain", b"x")
