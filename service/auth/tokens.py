"""Bearer JWT authentication (README "Configuration"): token in, `Identity` out.

The token is parsed here, strictly, before any cryptography: exactly three segments of
unpadded, canonical base64url; header and payload UTF-8 JSON objects without duplicate
keys. A lenient parser is where JWT libraries have historically been fooled (two readers
of one token disagreeing on a duplicated `alg`, padding tricks), so there is only one
reader, this one. The `alg` must be in the tenant's allow-list and the key comes from the
tenant's configuration only (never from `jku`, `x5u`, `jwk` or `x5c` headers); the
signature is then checked with PyJWT's algorithm objects and keys prepared once at startup.

Every failure raises `InvalidToken` with the same public message; its `reason` is one
of the fixed words below, for the request's access line (never a piece of the token):

    missing          no Authorization header
    malformed        not one `Bearer <JWT>` of acceptable size, or not a well-formed JWT
                     (segments, base64url, UTF-8 JSON objects, claim types)
    algorithm        an `alg` the tenant does not allow, or has no key for
    critical_header  a `crit` header (no JWS extension is implemented)
    unknown_key      no key of the tenant's JWKS for the token's `kid` and `alg`
    bad_signature    the signature does not verify
    missing_exp      no `exp` claim
    expired          past `exp` (plus the leeway)
    not_yet_valid    `nbf` or `iat` in the future (beyond the leeway)
    unknown_issuer   `iss` missing or not the tenant's (several tenants: no tenant's)
    audience         `aud` missing or not the tenant's
    user_claim       the user claim missing, not a string, or not a user id
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError

from service.auth.jwks import JwksCache
from service.auth.user_ids import is_user_id
from service.clock import Clock
from service.errors import ConfigError, InvalidToken

if TYPE_CHECKING:
    # Type only: auth needs the values, not the environment parsing behind them.
    from service.config.settings import TenantSettings

MAX_TOKEN_CHARS = 8 * 1024
MIN_HMAC_SECRET_BYTES = 32
_MAX_PROFILE_CHARS = 256  # name, email: longer values are dropped, not refused
_MIN_RSA_BITS = 2048
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Verified-token cache: bounded, and an entry never outlives its token's exp (plus
# leeway) nor this many seconds, so that a key dropped from a JWKS stops counting soon.
_CACHE_SIZE = 1024
_CACHE_MAX_SECONDS = 300.0

# Why a token was refused (the module docstring says when each applies).
MISSING = "missing"
MALFORMED = "malformed"
ALGORITHM = "algorithm"
CRITICAL_HEADER = "critical_header"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
MISSING_EXP = "missing_exp"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
UNKNOWN_ISSUER = "unknown_issuer"
AUDIENCE = "audience"
USER_CLAIM = "user_claim"
REASONS = (
    MISSING,
    MALFORMED,
    ALGORITHM,
    CRITICAL_HEADER,
    UNKNOWN_KEY,
    BAD_SIGNATURE,
    MISSING_EXP,
    EXPIRED,
    NOT_YET_VALID,
    UNKNOWN_ISSUER,
    AUDIENCE,
    USER_CLAIM,
)


@dataclass(frozen=True, slots=True)
class Identity:
    tenant: str
    user_id: str
    role: str | None
    name: str | None
    email: str | None
    expires_at: int


class _Tenant:
    """One tenant's verification material, prepared once. No repr: it holds the HMAC key."""

    __slots__ = ("algorithms", "jwks", "keys", "settings")

    def __init__(self, settings: TenantSettings, http: httpx.AsyncClient, clock: Clock) -> None:
        self.settings = settings
        self.algorithms: dict[str, Algorithm] = {}
        self.keys: dict[str, Any] = {}  # alg -> prepared key, for secret/PEM tenants
        self.jwks = (
            JwksCache(
                settings.jwt_jwks_url,
                http=http,
                clock=clock,
                max_age=settings.jwt_jwks_cache_seconds,
            )
            if settings.jwt_jwks_url
            else None
        )
        secret = _hmac_secret(settings)
        public_key = _public_key(settings)
        implemented = get_default_algorithms()
        for alg in settings.jwt_algorithms:
            algorithm = implemented.get(alg)
            if algorithm is None or alg.lower() == "none":
                continue
            self.algorithms[alg] = algorithm
            # An allowed alg without matching key material is simply never verifiable:
            # this is what defeats key confusion (HS256 "signed" with the RSA public key).
            material: Any = secret if alg.startswith("HS") else public_key
            if material is None:
                continue
            try:
                self.keys[alg] = algorithm.prepare_key(material)
            except (InvalidKeyError, TypeError, ValueError):
                continue

    async def key_for(self, alg: str, kid: str | None) -> Any:
        key = self.keys.get(alg)
        if key is not None:
            return key
        if self.jwks is not None and not alg.startswith("HS"):
            try:
                return await self.jwks.key_for(kid, alg)
            except InvalidToken:
                raise InvalidToken(UNKNOWN_KEY) from None
        raise InvalidToken(ALGORITHM)


def _hmac_secret(settings: TenantSettings) -> bytes | None:
    if settings.jwt_secret is None:
        return None
    secret = settings.jwt_secret.reveal().encode()
    if len(secret) < MIN_HMAC_SECRET_BYTES:
        raise ConfigError([f"tenant {settings.id}: JWT_SECRET must be at least 32 bytes"])
    return secret


def _public_key(settings: TenantSettings) -> Any:
    if not settings.jwt_public_key:
        return None
    pem = settings.jwt_public_key.encode()
    try:
        key: Any = (
            x509.load_pem_x509_certificate(pem).public_key()
            if b"CERTIFICATE" in pem
            else load_pem_public_key(pem)
        )
    except (ValueError, UnsupportedAlgorithm) as exc:
        problem = f"tenant {settings.id}: JWT_PUBLIC_KEY is not a PEM public key"
        raise ConfigError([problem]) from exc
    if isinstance(key, RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise ConfigError([f"tenant {settings.id}: JWT_PUBLIC_KEY RSA key under 2048 bits"])
    return key


class Authenticator:
    """Verifies bearer JWTs for one or more tenants.

    Keys are parsed here, once. With several tenants, the unverified `iss` (and `aud`)
    only pick the tenant; the token must then verify with that tenant's keys and pass
    that tenant's claim checks, so a token of tenant A never authenticates for B.
    """

    def __init__(
        self, tenants: Sequence[TenantSettings], *, http: httpx.AsyncClient, clock: Clock
    ) -> None:
        if not tenants:
            raise ConfigError(["no tenant configured"])
        self._clock = clock
        self._tenants = [_Tenant(t, http, clock) for t in tenants]
        self._by_issuer: dict[str, list[_Tenant]] = {}
        if len(self._tenants) > 1:
            self._by_issuer = _route_table(self._tenants)
        self._cache: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    @property
    def jwks_refreshes(self) -> dict[str, int]:
        return {t.settings.id: t.jwks.refreshes for t in self._tenants if t.jwks is not None}

    async def aclose(self) -> None:
        for tenant in self._tenants:
            if tenant.jwks is not None:
                await tenant.jwks.aclose()

    async def authenticate(self, authorization: Sequence[str]) -> Identity:
        token = _bearer_token(authorization)
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            if now < cached[1]:
                self._cache.move_to_end(token)
                return cached[0]
            del self._cache[token]

        header, payload, signing_input, signature = _parse(token)
        tenant = self._route(payload)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in tenant.algorithms:
            raise InvalidToken(ALGORITHM)
        if "crit" in header:
            # We implement no JWS extension, so any critical one must be refused (RFC 7515).
            raise InvalidToken(CRITICAL_HEADER)
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken(MALFORMED)
        # A secret/PEM tenant's key is a dict lookup: no coroutine for it (per mint).
        key = tenant.keys.get(alg)
        if key is None:
            key = await tenant.key_for(alg, kid)
        try:
            valid = tenant.algorithms[alg].verify(signing_input, key, signature)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidToken(BAD_SIGNATURE)
        identity = _identity(tenant.settings, payload, now)

        leeway = tenant.settings.jwt_leeway_seconds
        self._cache[token] = (identity, min(identity.expires_at + leeway, now + _CACHE_MAX_SECONDS))
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return identity

    def _route(self, payload: dict[str, Any]) -> _Tenant:
        if len(self._tenants) == 1:
            return self._tenants[0]
        issuer = payload.get("iss")
        if not isinstance(issuer, str) or issuer not in self._by_issuer:
            raise InvalidToken(UNKNOWN_ISSUER)
        audiences = _audiences(payload)
        found = [
            t
            for t in self._by_issuer[issuer]
            if t.settings.jwt_audience is None or t.settings.jwt_audience in audiences
        ]
        if len(found) != 1:
            # The issuer is known: its tenants' audiences did not pick exactly one.
            raise InvalidToken(AUDIENCE)
        return found[0]


def _route_table(tenants: Sequence[_Tenant]) -> dict[str, list[_Tenant]]:
    problems: list[str] = []
    table: dict[str, list[_Tenant]] = {}
    seen: set[tuple[str, str | None]] = set()
    for tenant in tenants:
        issuer, audience = tenant.settings.jwt_issuer, tenant.settings.jwt_audience
        if not issuer:
            problems.append(
                f"tenant {tenant.settings.id}: JWT_ISSUER is required with several tenants"
            )
            continue
        if (issuer, audience) in seen:
            problems.append(
                f"tenant {tenant.settings.id}: another tenant has the same issuer and audience"
            )
        seen.add((issuer, audience))
        table.setdefault(issuer, []).append(tenant)
    if problems:
        raise ConfigError(problems)
    return table


def _bearer_token(authorization: Sequence[str]) -> str:
    if not authorization:
        raise InvalidToken(MISSING)
    if len(authorization) != 1:
        raise InvalidToken(MALFORMED)
    value = authorization[0]
    if len(value) > MAX_TOKEN_CHARS + 7 or value[:7].lower() != "bearer ":
        raise InvalidToken(MALFORMED)
    return value[7:]


def _parse(token: str) -> tuple[Mapping[str, Any], dict[str, Any], bytes, bytes]:
    if not _TOKEN_SHAPE.fullmatch(token):
        raise InvalidToken(MALFORMED)
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = _header(header_b64)
    payload = _json_object(_b64decode(payload_b64))
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    return header, payload, signing_input, _b64decode(signature_b64)


@lru_cache(maxsize=64)
def _header(segment: str) -> Mapping[str, Any]:
    """The header segment, read by the same strict rules as the payload. Cached because
    an issuer's tokens all share one header (`{"alg":"HS256","typ":"JWT"}`), and reading
    it is a quarter of the parse; the mapping is shared, so it is read-only. Only
    headers that parse are cached (a raising call stores nothing) and the size is
    bounded: a flood of distinct headers only costs what parsing them costs anyway."""
    return _json_object(_b64decode(segment))


def _b64decode(segment: str) -> bytes:
    # Unpadded and canonical: a length of 1 mod 4 is impossible, and the unused low bits
    # of the last character must be zero, so each byte string has exactly one encoding.
    if len(segment) % 4 == 1:
        raise InvalidToken(MALFORMED)
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as exc:
        raise InvalidToken(MALFORMED) from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode("ascii"):
        raise InvalidToken(MALFORMED)
    return raw


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise InvalidToken(MALFORMED)
    return result


def _no_constant(name: str) -> Any:
    raise InvalidToken(MALFORMED)


# Built once: `json.loads` with any hook builds a decoder and its scanner on every call,
# which was half the cost of reading a segment. Same checks, same results.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        # Decode explicitly: json.loads(bytes) would also accept UTF-16 and UTF-32.
        value = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise InvalidToken(MALFORMED) from exc
    if not isinstance(value, dict):
        raise InvalidToken(MALFORMED)
    return value


def _audiences(payload: dict[str, Any]) -> tuple[str, ...]:
    aud = payload.get("aud")
    if aud is None:
        return ()
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise InvalidToken(MALFORMED)


def _time_claim(payload: dict[str, Any], name: str) -> int | None:
    if name not in payload:
        return None
    value = payload[name]
    # type() and not isinstance(): True is an int to Python, not a time to us.
    if type(value) is not int:
        raise InvalidToken(MALFORMED)
    return value


def _identity(settings: TenantSettings, payload: dict[str, Any], now: float) -> Identity:
    leeway = settings.jwt_leeway_seconds
    exp = _time_claim(payload, "exp")
    if exp is None:
        raise InvalidToken(MISSING_EXP)
    if now >= exp + leeway:
        raise InvalidToken(EXPIRED)
    nbf = _time_claim(payload, "nbf")
    if nbf is not None and nbf > now + leeway:
        raise InvalidToken(NOT_YET_VALID)
    iat = _time_claim(payload, "iat")
    if iat is not None and iat > now + leeway:
        raise InvalidToken(NOT_YET_VALID)
    if settings.jwt_issuer is not None and payload.get("iss") != settings.jwt_issuer:
        raise InvalidToken(UNKNOWN_ISSUER)
    if settings.jwt_audience is not None and settings.jwt_audience not in _audiences(payload):
        raise InvalidToken(AUDIENCE)
    user_id = payload.get(settings.jwt_user_claim)
    if not isinstance(user_id, str) or not is_user_id(user_id):
        # A user the directory could not name could never be revoked: refused here
        # (service.auth.user_ids: 1 to 256 characters, no whitespace, control or
        # invisible characters, not '.' or '..').
        raise InvalidToken(USER_CLAIM)
    role = payload.get(settings.jwt_role_claim)
    return Identity(
        tenant=settings.id,
        user_id=user_id,
        role=role if isinstance(role, str) else None,
        name=_profile(payload.get("name")),
        email=_profile(payload.get("email")),
        expires_at=exp,
    )


def _profile(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= _MAX_PROFILE_CHARS else None


def sign_dev_token(
    secret: str,
    *,
    sub: str,
    role: str | None,
    ttl_seconds: int = 3600,
    now: float,
    issuer: str | None = None,
    audience: str | None = None,
    name: str | None = None,
    email: str | None = None,
) -> str:
    """An HS256 token for `token-broker jwt` and dev mode."""
    if len(secret.encode()) < MIN_HMAC_SECRET_BYTES:
        raise ValueError("the HMAC secret must be at least 32 bytes")
    issued = int(now)
    claims: dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + ttl_seconds}
    optional = {"role": role, "iss": issuer, "aud": audience, "name": name, "email": email}
    claims.update({k: v for k, v in optional.items() if v is not None})
    return jwt.encode(claims, secret, algorithm="HS256")
