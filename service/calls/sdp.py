"""SDP offers and answers, and the multipart bodies that carry them (pure).

The broker does not negotiate media: it checks that an offer looks like SDP (so that
garbage is refused with a 400 before any upstream call) and passes it on. For a relayed
call it reads the media sections as a WebRTC stack would (`media_sections`), so that no
data channel passes as audio. The fake upstream builds a syntactically valid answer from
an offer.

Multipart is parsed with the standard library's email parser: it handles the MIME
grammar (boundaries, quoted parameters, part headers) correctly, and the bodies are
small (bounded by the web layer) so its speed does not matter.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from service.errors import InvalidValue

MAX_SDP_BYTES = 32 * 1024
# RFC 4566: every line is `<type>=<value>`, the type one lower-case letter, nothing before it.
_LINE = re.compile(r"[a-z]=")
# m=<media> <port>[/<count>] <proto> <fmt> ... (RFC 4566 5.14), single spaces.
_MEDIA = re.compile(r"m=(\S+) ([0-9]{1,5})(?:/[0-9]{1,5})? (\S+)((?: \S+)*)")
# A data channel (RFC 8841), whatever the media type says: SCTP in the protocol
# (UDP/DTLS/SCTP, TCP/DTLS/SCTP, the older DTLS/SCTP) or this format.
DATA_CHANNEL_FORMAT = "webrtc-datachannel"


@dataclass(frozen=True)
class MediaSection:
    """One `m=` section: its media type, port, transport protocol, formats, attributes."""

    kind: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    attributes: tuple[str, ...]

    @property
    def active(self) -> bool:
        # Port 0 rejects a section, unless it is `bundle-only` (RFC 8843): then it rides
        # on the bundle's transport and is in use.
        return self.port != 0 or "bundle-only" in self.attributes

    @property
    def data_channel(self) -> bool:
        return "SCTP" in self.protocol.upper() or DATA_CHANNEL_FORMAT in self.formats


def check_offer(raw: bytes) -> str:
    """The offer as text; InvalidValue unless it is UTF-8 SDP with at least one media line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValue("The SDP offer is not UTF-8 text.", param="sdp") from None
    if len(raw) > MAX_SDP_BYTES:
        raise InvalidValue(f"The SDP offer is larger than {MAX_SDP_BYTES} bytes.", param="sdp")
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "v=0" or not any(line.startswith("m=") for line in lines):
        raise InvalidValue(
            "The SDP offer must start with 'v=0' and describe at least one media section.",
            param="sdp",
        )
    return text


def media_sections(sdp: str) -> list[MediaSection]:
    """The media sections of `sdp`, read as a WebRTC stack reads them: sections begin at
    `m=` lines, and a line that is not `<letter>=<value>` (leading whitespace, an
    upper-case type, a bare CR) makes the whole description malformed: InvalidValue."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the line break that ends the last line
    sections: list[MediaSection] = []
    current: list[str] | None = None
    for line in lines:
        if _LINE.match(line) is None or "\r" in line:
            raise InvalidValue("The SDP has a malformed line.", param="sdp")
        if line.startswith("m="):
            if current is not None:
                sections.append(_section(current))
            current = [line]
        elif current is not None:
            current.append(line)
    if current is not None:
        sections.append(_section(current))
    return sections


def _section(lines: list[str]) -> MediaSection:
    media = _MEDIA.fullmatch(lines[0])
    if media is None:
        raise InvalidValue("The SDP has a malformed media line.", param="sdp")
    kind, port, protocol, formats = media.groups()
    attributes = tuple(line[2:].partition(":")[0] for line in lines[1:] if line[0] == "a")
    return MediaSection(kind, int(port), protocol, tuple(formats.split()), attributes)


def active_media(sdp: str) -> list[str]:
    """The kinds of the media sections that are in use (`m=audio ...`; a section with
    port 0 is rejected or disabled, and carries nothing, unless it is `bundle-only`)."""
    return [section.kind for section in media_sections(sdp) if section.active]


def audio_only(sdp: str) -> bool:
    """Whether every active media section is audio over RTP: no data channel (whatever
    its `m=` line calls it), no video. A malformed description is not audio-only: what
    the browser's or upstream's parser would make of it cannot be known here."""
    try:
        sections = [section for section in media_sections(sdp) if section.active]
    except InvalidValue:
        return False
    return bool(sections) and all(
        section.kind == "audio" and not section.data_channel and "RTP/" in section.protocol
        for section in sections
    )


def answer_for(offer: str) -> str:
    """A syntactically valid SDP answer mirroring each media section of `offer` (for the
    fake upstream: the browser's peer connection is never completed in dev mode)."""
    session_id = secrets.randbelow(10**12)
    out = [
        "v=0",
        f"o=- {session_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(str(i) for i in range(_media_count(offer))),
        "a=msid-semantic: WMS",
    ]
    ufrag, pwd = secrets.token_hex(4), secrets.token_hex(12)
    fingerprint = ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
    index = 0
    for line in offer.replace("\r\n", "\n").split("\n"):
        if not line.startswith("m="):
            continue
        kind, _, rest = line[2:].partition(" ")
        formats = rest.split(" ")[2:] if rest.count(" ") >= 2 else []
        proto = rest.split(" ")[1] if rest.count(" ") >= 1 else "UDP/TLS/RTP/SAVPF"
        out += [
            f"m={kind} 9 {proto} {' '.join(formats)}".rstrip(),
            "c=IN IP4 0.0.0.0",
            f"a=mid:{index}",
            f"a=ice-ufrag:{ufrag}",
            f"a=ice-pwd:{pwd}",
            f"a=fingerprint:sha-256 {fingerprint}",
            "a=setup:active",
            "a=sendrecv",
        ]
        index += 1
    return "\r\n".join(out) + "\r\n"


def _media_count(offer: str) -> int:
    return sum(1 for line in offer.replace("\r\n", "\n").split("\n") if line.startswith("m="))


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The named parts of a multipart/form-data body; InvalidValue when it is not one."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    items = message.get_payload()
    if not message.is_multipart() or not isinstance(items, list):
        raise InvalidValue("The multipart body could not be read.", param=None)
    parts: dict[str, bytes] = {}
    for part in items:
        if not isinstance(part, Message):
            continue
        name = _part_name(part)
        payload = part.get_payload(decode=True)
        if name is not None and isinstance(payload, bytes) and name not in parts:
            parts[name] = payload
    return parts


def _part_name(part: Message) -> str | None:
    name = part.get_param("name", header="content-disposition")
    return name if isinstance(name, str) else None
