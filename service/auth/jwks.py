"""A JWKS (JSON Web Key Set) cache for one identity provider, fetched with the async client.

The cache is what stands between every token check and the identity provider, so it is
built to keep working when the provider does not:

- keys are fetched lazily, at most one fetch in flight (concurrent callers await it);
- the last good key set is kept when a refresh fails (down, slow, garbage), for as long
  as the provider stays broken;
- after any fetch attempt, the next one waits `cooldown` seconds, whatever the cause
  (stale set, unknown `kid`, failure): a flood of tokens with made-up `kid`s costs the
  provider one request per cooldown;
- every JWK is parsed once per fetch; keys that cannot verify a JWS (symmetric, private,
  unsupported kty/crv, RSA under 2048 bits, `use` other than `sig`) are skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import get_default_algorithms
from jwt.api_jwk import PyJWK
from jwt.exceptions import InvalidKeyError

from service.clock import Clock
from service.errors import InvalidToken

_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1", "ES256K": "secp256k1"}
# PyJWT's own alias exists only for type checkers before 2.11: ours, the same union.
PublicKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey

logger = logging.getLogger("service.auth.jwks")

# A real key set is a few KiB; anything much larger is not one.
MAX_JWKS_BYTES = 256 * 1024
_PUBLIC_KEY_TYPES = (RSAPublicKey, EllipticCurvePublicKey, Ed25519PublicKey, Ed448PublicKey)
_MIN_RSA_BITS = 2048


class JwksFetchError(Exception):
    """A fetch failed; the message names the cause (no key material in it)."""


@dataclass(frozen=True, slots=True)
class _Jwk:
    kid: str | None
    alg: str | None  # the JWK's own `alg`, when it pins one
    key: PublicKey


def parse_jwks(document: bytes) -> list[_Jwk]:
    """The usable verification keys of a JWKS document; raises JwksFetchError if none."""
    try:
        data = json.loads(document.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise JwksFetchError("JWKS is not UTF-8 JSON") from exc
    raw_keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(raw_keys, list):
        raise JwksFetchError("JWKS has no `keys` list")
    keys = [key for key in map(_parse_jwk, raw_keys) if key is not None]
    if not keys:
        raise JwksFetchError("JWKS has no usable verification key")
    return keys


def _parse_jwk(raw: Any) -> _Jwk | None:
    if not isinstance(raw, dict):
        return None
    kid, alg, use = raw.get("kid"), raw.get("alg"), raw.get("use")
    if (kid is not None and not isinstance(kid, str)) or (
        alg is not None and not isinstance(alg, str)
    ):
        return None
    if use is not None and use != "sig":
        return None
    try:
        key = PyJWK(raw).key
    except Exception as exc:  # PyJWK raises a zoo (InvalidKeyError, KeyError, ValueError...)
        logger.debug("skipping unusable JWK kid=%r: %s", kid, type(exc).__name__)
        return None
    # A public JWKS must hold public keys only: an `oct` (HMAC) key here would let anyone
    # who reads the set forge tokens, and a private key is a leak we will not use.
    if not isinstance(key, _PUBLIC_KEY_TYPES):
        return None
    if isinstance(key, RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        return None
    return _Jwk(kid=kid, alg=alg, key=key)


class JwksCache:
    """The key set behind one JWKS URL.

    `key_for(kid, alg)` returns the public key to verify a token with, or raises
    InvalidToken. `refreshes` counts fetch attempts (for metrics).
    """

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient,
        clock: Clock,
        max_age: float = 300,
        cooldown: float = 30,
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self._http = http
        self._clock = clock
        self._max_age = max_age
        self._cooldown = cooldown
        self._timeout = timeout
        self._keys: list[_Jwk] | None = None
        self._fetched_at = 0.0
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._algorithms = get_default_algorithms()
        self.refreshes = 0
        self.failures = 0

    async def key_for(self, kid: str | None, alg: str) -> PublicKey:
        now = self._clock()
        if self._keys is None or now - self._fetched_at >= self._max_age:
            await self._maybe_refresh(now)
        key = self._lookup(kid, alg)
        if key is None:
            # Perhaps the provider rotated its keys: look again, once per cooldown.
            await self._maybe_refresh(now)
            key = self._lookup(kid, alg)
        if key is None:
            raise InvalidToken("no JWKS key for this kid and alg")
        return key

    async def aclose(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()

    def _lookup(self, kid: str | None, alg: str) -> PublicKey | None:
        if not self._keys:
            return None
        if kid is None:
            # Without a kid, accept only an unambiguous key.
            found = [jwk.key for jwk in self._keys if self._fits(jwk, alg)]
            return found[0] if len(found) == 1 else None
        for jwk in self._keys:
            if jwk.kid == kid and self._fits(jwk, alg):
                return jwk.key
        return None

    def _fits(self, jwk: _Jwk, alg: str) -> bool:
        if jwk.alg is not None and jwk.alg != alg:
            return False
        algorithm = self._algorithms.get(alg)
        if algorithm is None:
            return False
        try:
            # A type check (RSA for RS/PS, EC for ES, OKP for EdDSA).
            algorithm.prepare_key(jwk.key)
        except (InvalidKeyError, TypeError, ValueError):
            return False
        # The curve too, whatever the PyJWT version checks (2.10.0 takes any curve for ES*).
        curve = _CURVES.get(alg)
        return curve is None or (
            isinstance(jwk.key, EllipticCurvePublicKey) and jwk.key.curve.name == curve
        )

    async def _maybe_refresh(self, now: float) -> None:
        task = self._inflight
        if task is None:
            if self._last_attempt is not None and now - self._last_attempt < self._cooldown:
                return
            self._last_attempt = now
            self.refreshes += 1
            task = asyncio.get_running_loop().create_task(self._fetch())
            self._inflight = task
            task.add_done_callback(self._fetch_done)
        # shield: one caller giving up (client disconnect) must not cancel the fetch
        # the others are waiting for.
        await asyncio.shield(task)

    def _fetch_done(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                document = await self._download()
                # Parsing loads every public key (RSA takes milliseconds): off the event
                # loop, so a key rotation never stalls the mints in flight.
                keys = await asyncio.to_thread(parse_jwks, document)
        except (JwksFetchError, httpx.HTTPError, TimeoutError) as exc:
            self.failures += 1
            kept = "keeping the last good keys" if self._keys else "no keys yet"
            logger.warning(
                "JWKS fetch from %s failed (%s); %s", self.url, str(exc) or type(exc).__name__, kept
            )
            return
        self._keys = keys
        self._fetched_at = self._clock()

    async def _download(self) -> bytes:
        async with self._http.stream(
            "GET", self.url, headers={"Accept": "application/json"}, timeout=self._timeout
        ) as response:
            if response.status_code != 200:
                raise JwksFetchError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksFetchError("JWKS too large")
            return bytes(body)
