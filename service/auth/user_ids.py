"""What a user id is: one rule for both doors (DESIGN 13.1, "whoever can get in can be
revoked").

The authenticator refuses a token whose user claim breaks it (a 401 like any other bad
token, the reason in the log), and the directory applies it to the ids in its paths and
queries (a 400), so every user that can mint or place a call can also be named in
`DELETE /v1/organization/users/{id}`.

The rule: 1 to 256 characters, none of them a control character (tab and newline
included), a format character (zero-width, direction marks), a surrogate, private-use or
unassigned code point (Unicode categories C*), nor a separator (Z*: every space, the plain
one included, and line breaks): those make two ids look alike in a log or an admin UI, or
cannot be stored as UTF-8 (a lone surrogate from a JSON `\\ud800`). Nor `.` or `..`,
which URL parsers (WHATWG, httpx) remove from a path as dot segments, so that no client
could name them. Anything else is allowed, `/`, `%`, `?` and `#` included: a client
percent-encodes the id as one path segment (`a%2Fb`).
"""

from __future__ import annotations

import unicodedata

MAX_USER_ID_CHARS = 256
_DOT_SEGMENTS = frozenset({".", ".."})


def is_user_id(value: str) -> bool:
    """Whether `value` is a user id both doors accept (see the module docstring)."""
    if not 0 < len(value) <= MAX_USER_ID_CHARS or value in _DOT_SEGMENTS:
        return False
    if value.isascii():
        # The common case, without a per-character lookup: in ASCII, C* and Z* are
        # exactly the controls (not printable) and the space.
        return value.isprintable() and " " not in value
    return all(unicodedata.category(char)[0] not in "CZ" for char in value)
