"""SDP offers and answers, and the multipart bodies that carry them (pure).

The broker does not negotiate media: it checks that an offer looks like SDP (so that
garbage is refused with a 400 before any upstream call) and passes it on. The fake
upstream builds a syntactically valid answer from an offer.

Multipart is parsed with the standard library's email parser: it handles the MIME
grammar (boundaries, quoted parameters, part headers) correctly, and the bodies are
small (bounded by the web layer) so its speed does not matter.
"""

from __future__ import annotations

import secrets
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from service.errors import InvalidValue

MAX_SDP_BYTES = 32 * 1024


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


def active_media(sdp: str) -> list[str]:
    """The kinds of the media sections that are in use (`m=audio ...`; a section with
    port 0 is rejected or disabled, and carries nothing)."""
    kinds = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            kind, _, rest = line[2:].partition(" ")
            if rest.split(" ", 1)[0] != "0":
                kinds.append(kind)
    return kinds


def audio_only(sdp: str) -> bool:
    """Whether every active media section is audio: no data channel, no video."""
    kinds = active_media(sdp)
    return bool(kinds) and all(kind == "audio" for kind in kinds)


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
