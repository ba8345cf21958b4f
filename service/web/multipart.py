"""multipart/form-data request bodies, parsed as they stream in, within caps.

python-multipart's streaming parser (the one Starlette's forms use) does the MIME grammar
(RFC 7578: CRLF line ends, a closing boundary); this module adds the caps that keep any
body cheap, whatever it holds:

- at most `MAX_PARTS` parts (the body of an empty part is a dozen bytes, so a 64 KiB body
  could otherwise hold thousands);
- each part's content within its own limit, checked as the bytes arrive;
- at most `MAX_PART_HEADERS` headers a part (a form part has two: its name, its type);
- at most `MAX_FRAMING_BYTES` of everything that is not a part's content: boundaries,
  part headers, the epilogue's start. The parser walks those byte by byte in Python
  (python-multipart 0.0.18 even walks leading blank lines so), so they are the costly
  bytes; it is fed `SLICE` bytes at a time so that this cap is checked every `SLICE` bytes.

Only the parts asked for are kept (the first of each name); the others are read and
dropped. Everything past the closing boundary is ignored. Callers authenticate first:
nothing here should run for a caller the broker does not know.
"""

from __future__ import annotations

from collections.abc import Mapping

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from service.errors import InvalidValue, RequestTooLarge
from service.web.bodies import MAX_BODY_BYTES

MAX_PARTS = 16
MAX_PART_HEADERS = 8
# A part nobody asked for is dropped, but still within this.
MAX_PART_BYTES = 32 * 1024
# Two parts with their usual headers take about 300 bytes; sixteen, under 4 KiB.
MAX_FRAMING_BYTES = 8 * 1024
SLICE = 1024
# RFC 7578 section 4.7: a form part carries its content as is.
_IDENTITY_ENCODINGS = frozenset({b"", b"7bit", b"8bit", b"binary"})

UNREADABLE = "The multipart body could not be read."


class FormReader:
    """One multipart/form-data body: `feed` it the body's chunks as they come, then
    `close` it for the parts named in `keep` (name → the most bytes that part may hold).

    Refuses with `InvalidValue` (400) a body that is not multipart/form-data, has more
    than `max_parts` parts, a part with more than `MAX_PART_HEADERS` headers, more than
    `max_framing_bytes` outside the parts' content, a content transfer encoding, or no
    closing boundary; with `RequestTooLarge` (413) a part over its limit
    (`max_part_bytes` for a part not in `keep`), naming it in `param` if it was asked for.
    """

    def __init__(
        self,
        content_type: str,
        keep: Mapping[str, int],
        *,
        max_parts: int = MAX_PARTS,
        max_part_bytes: int = MAX_PART_BYTES,
        max_framing_bytes: int = MAX_FRAMING_BYTES,
    ) -> None:
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary", b"")
        if kind.strip().lower() != b"multipart/form-data" or not boundary:
            raise InvalidValue(UNREADABLE, param=None)
        self._keep = dict(keep)
        self._max_parts = max_parts
        self._max_part_bytes = max_part_bytes
        self._max_framing_bytes = max_framing_bytes
        self._found: dict[str, bytearray] = {}
        self._parts = 0
        self._fed = 0
        self._content = 0
        self._ended = False
        # The part being read.
        self._field = bytearray()
        self._value = bytearray()
        self._name: str | None = None
        self._headers = 0
        self._size = 0
        self._limit = max_part_bytes
        self._sink: bytearray | None = None
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_end": self._on_end,
                },
            )
        except FormParserError:  # a boundary over the parser's limit (0.0.28 and later)
            raise InvalidValue(UNREADABLE, param=None) from None

    def feed(self, chunk: bytes) -> None:
        for start in range(0, len(chunk), SLICE):
            if self._ended:
                return
            piece = chunk[start : start + SLICE]
            try:
                self._parser.write(piece)
            except FormParserError:
                raise InvalidValue(UNREADABLE, param=None) from None
            self._fed += len(piece)
            if self._fed - self._content > self._max_framing_bytes:
                raise InvalidValue(
                    f"The multipart body's boundaries and part headers take more than "
                    f"{self._max_framing_bytes} bytes.",
                    param=None,
                )

    def close(self) -> dict[str, bytes]:
        """The parts asked for that the body holds, by name."""
        if not self._ended:
            raise InvalidValue("The multipart body ends before its closing boundary.", param=None)
        self._parser.finalize()
        return {name: bytes(content) for name, content in self._found.items()}

    # The parser's callbacks. The data ones get (buffer, start, end); a header comes in
    # pieces when it spans two writes.

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self._max_parts:
            raise InvalidValue(
                f"The multipart body has more than {self._max_parts} parts.", param=None
            )
        self._name, self._headers = None, 0
        self._size, self._limit, self._sink = 0, self._max_part_bytes, None

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers += 1
        if self._headers > MAX_PART_HEADERS:
            raise InvalidValue(
                f"A part of the multipart body has more than {MAX_PART_HEADERS} headers.",
                param=None,
            )
        field = bytes(self._field).strip().lower()
        value = bytes(self._value).decode("latin-1").strip()
        self._field.clear()
        self._value.clear()
        if field == b"content-disposition":
            name = parse_options_header(value)[1].get(b"name")
            self._name = None if name is None else name.decode("latin-1")
        elif (
            field == b"content-transfer-encoding"
            and value.lower().encode("latin-1") not in _IDENTITY_ENCODINGS
        ):
            raise InvalidValue(
                "A form part must carry its content as is: Content-Transfer-Encoding "
                "is not supported in multipart/form-data.",
                param=self._known_name(),
            )

    def _known_name(self) -> str | None:
        """The part's name if it is one of those asked for: a name the caller made up is
        never echoed into an error."""
        return self._name if self._name in self._keep else None

    def _on_headers_finished(self) -> None:
        name = self._name
        if name is not None and name in self._keep and name not in self._found:
            self._limit = self._keep[name]
            self._sink = self._found[name] = bytearray()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        self._content += end - start
        if self._size > self._limit:
            name = self._known_name()
            what = "A part" if name is None else f"The '{name}' part"
            raise RequestTooLarge(f"{what} is larger than {self._limit} bytes.", param=name)
        if self._sink is not None:
            self._sink += data[start:end]

    def _on_end(self) -> None:
        self._ended = True


async def read_form(
    request: Request, keep: Mapping[str, int], *, limit: int = MAX_BODY_BYTES
) -> dict[str, bytes]:
    """The parts named in `keep` of the request's multipart/form-data body, parsed as
    the body streams in and refused at the first cap it breaks (see `FormReader`); 413
    for a body over `limit` bytes, without reading past it."""
    reader = FormReader(request.headers.get("content-type", ""), keep)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        reader.feed(chunk)
    return reader.close()
