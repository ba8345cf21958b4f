"""SDP offer checks, the fake's answers, multipart parsing."""

from __future__ import annotations

import httpx
import pytest

from service.calls.sdp import answer_for, audio_only, check_offer, media_sections, parse_multipart
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


# --- audio only, as a WebRTC stack reads it (the relay's check) -------------------------

DATA_CHANNEL = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"


def test_an_audio_offer_is_audio_only() -> None:
    assert audio_only(OFFER)
    assert audio_only(OFFER.replace("\r\n", "\n"))
    # A rejected section (port 0) carries nothing.
    assert audio_only(OFFER + "m=video 0 UDP/TLS/RTP/SAVPF 96\r\n")


@pytest.mark.parametrize(
    "sdp",
    [
        OFFER + DATA_CHANNEL,
        # The media type says audio, the protocol or the format says data channel.
        OFFER + "m=audio 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
        OFFER + "m=audio 9 UDP/TLS/RTP/SAVPF webrtc-datachannel\r\n",
        OFFER + "m=audio 9 DTLS/SCTP 5000\r\n",
        OFFER + "m=audio 9 TCP/DTLS/SCTP webrtc-datachannel\r\n",
        # A line with leading whitespace is malformed, not skipped.
        OFFER + " " + DATA_CHANNEL,
        OFFER + "\t" + DATA_CHANNEL,
        OFFER + DATA_CHANNEL.upper(),
        OFFER + "\r\n" + DATA_CHANNEL,  # an empty line inside
        OFFER + "m=audio  9 UDP/TLS/RTP/SAVPF 111\r\n",  # two spaces: fields misread
        # Port 0 but bundle-only (RFC 8843): in use on the bundle's transport.
        OFFER + "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\na=bundle-only\r\n",
        OFFER + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        OFFER + "m=Audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
        "v=0\r\ns=-\r\n",  # no media at all
    ],
)
def test_anything_else_is_not_audio_only(sdp: str) -> None:
    assert not audio_only(sdp)


def test_media_sections_are_read_with_their_attributes() -> None:
    (audio, data) = media_sections(
        OFFER + "a=mid:0\r\na=sendrecv\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    )
    assert (audio.kind, audio.port, audio.protocol, audio.formats) == (
        "audio",
        9,
        "UDP/TLS/RTP/SAVPF",
        ("111",),
    )
    assert audio.attributes == ("mid", "sendrecv")
    assert not audio.data_channel
    assert data.data_channel
    with pytest.raises(InvalidValue):
        media_sections(OFFER + " m=application 9 UDP/DTLS/SCTP webrtc-datachannel")
