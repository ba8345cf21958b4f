"""The checks of single settings whose values have a structure of their own.

Each reads its setting through an `EnvReader`, records every problem there (naming the
variable, never a secret's value) and returns a usable value: the Redis URL, http(s)
URLs, the JWT key and its algorithms, the session policy, the CORS origins.
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from service.config.environment import EnvReader, or_list
from service.policy.model import Policy
from service.policy.parse import PolicyError, default_policy, parse_policy
from service.redact import Secret
from service.usage.prices import PricesError, PriceTable, builtin_prices, parse_prices

JWT_KEYS = ("JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL")
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
ALGORITHMS = (*HMAC_ALGORITHMS, *RSA_ALGORITHMS, *EC_ALGORITHMS.values(), "EdDSA")
JWKS_DEFAULT_ALGORITHMS = ("RS256", "ES256")
REDIS_SCHEMES = (
    "redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster",
    "rediss+cluster",
)  # fmt: skip


def check_redis_url(env: EnvReader, text: str) -> None:
    # Never echo the URL, nor even its scheme: a malformed one may start with a password.
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        env.problem("REDIS_URL", "is not a URL")
        return
    if parts.scheme not in REDIS_SCHEMES:
        env.problem("REDIS_URL", f"must start with {or_list([s + '://' for s in REDIS_SCHEMES])}")
    elif not (parts.path if parts.scheme == "unix" else parts.netloc.rpartition("@")[2]):
        env.problem("REDIS_URL", "names no host (or, for unix://, no socket path)")


def http_url(text: str) -> str | None:
    """The URL, stripped of blanks, or None when it is not an http(s) URL."""
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return text.strip()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def jwt_key(
    env: EnvReader, key_env: EnvReader
) -> tuple[Secret | None, str | None, str | None, tuple[str, ...]]:
    """(secret, PEM, JWKS URL, algorithms) from `key_env`, the scope the key is set in."""
    chosen = [k for k in JWT_KEYS if key_env.present(k)]
    if not chosen:
        env.missing(JWT_KEYS, "set one of these to verify user tokens")
    elif len(chosen) > 1:
        key_env.add(f"set only one of {or_list([key_env.var(k) for k in chosen])}")
    secret = key_env.secret("JWT_SECRET")
    if secret is not None and len(secret.reveal().encode()) < 32:
        key_env.problem("JWT_SECRET", "must be at least 32 bytes long")
    pem, key_algorithms = _public_key(key_env)
    jwks_url = key_env.get("JWT_JWKS_URL")
    if jwks_url is not None:
        jwks_url = http_url(jwks_url)
        host = (urlsplit(jwks_url).hostname or "") if jwks_url is not None else ""
        if jwks_url is None or not (jwks_url.startswith("https:") or _is_loopback(host)):
            key_env.problem("JWT_JWKS_URL", "must be an https URL (http only on a loopback host)")
    # Which algorithms the key allows, and the default when JWT_ALGORITHMS is unset.
    allowed: tuple[str, ...]
    default: tuple[str, ...]
    if secret is not None:
        allowed, default = HMAC_ALGORITHMS, ("HS256",)
    elif pem is not None:
        allowed, default = key_algorithms, key_algorithms[:1]
    else:
        allowed, default = ALGORITHMS[len(HMAC_ALGORITHMS) :], JWKS_DEFAULT_ALGORITHMS
    text = key_env.get("JWT_ALGORITHMS")
    if text is None:
        return secret, pem, jwks_url, default
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    by_lower = {a.lower(): a for a in ALGORITHMS}
    for name in names:
        if name.lower() == "none":
            key_env.problem("JWT_ALGORITHMS", "'none' is refused: tokens must be signed")
        elif name not in ALGORITHMS:
            spelt = by_lower.get(name.lower())
            hint = f" (did you mean {spelt}?)" if spelt else f"; use {', '.join(ALGORITHMS)}"
            key_env.problem("JWT_ALGORITHMS", f"unknown algorithm {name[:20]!r}{hint}")
        elif len(chosen) == 1 and allowed and name not in allowed:
            key_env.problem("JWT_ALGORITHMS", f"{name} does not fit the configured key")
    if not names:
        key_env.problem("JWT_ALGORITHMS", "lists no algorithm")
    return secret, pem, jwks_url, names


def _public_key(env: EnvReader) -> tuple[str | None, tuple[str, ...]]:
    """The PEM and the algorithms its key type allows (the first is the default)."""
    pem = env.get("JWT_PUBLIC_KEY")
    if pem is None:
        return None, ()
    if "\\n" in pem and "\n" not in pem:
        pem = pem.replace("\\n", "\n")  # a PEM pasted into one env line
    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        env.problem("JWT_PUBLIC_KEY", "is not a PEM public key (BEGIN PUBLIC KEY)")
        return pem, ()
    if isinstance(key, rsa.RSAPublicKey):
        return pem, RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in EC_ALGORITHMS:
        return pem, (EC_ALGORITHMS[key.curve.name],)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return pem, ("EdDSA",)
    env.problem("JWT_PUBLIC_KEY", "key type not supported (use RSA, EC P-256/384/521 or EdDSA)")
    return pem, ()


_UNREADABLE = object()


def _read_document(env: EnvReader, setting: str, text: str) -> object:
    """The JSON (or, from a .toml file, TOML) of `setting`; `_UNREADABLE` after noting why."""
    path = env.path(setting)
    suffix = Path(path).suffix.lower() if path is not None else ".json"
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text, parse_constant=_refuse_constant)
        env.problem(setting, "must name a .json or .toml file")
    except json.JSONDecodeError as exc:
        env.problem(setting, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
    except ValueError as exc:  # tomllib.TOMLDecodeError, NaN/Infinity
        env.problem(setting, f"invalid {suffix[1:].upper()}: {exc}")
    return _UNREADABLE


def read_prices(env: EnvReader) -> PriceTable:
    """The tenant's PRICES (or PRICES_FILE) over the built-in table (service.usage)."""
    builtin = builtin_prices()
    text = env.get("PRICES")
    if text is None:
        return builtin
    data = _read_document(env, "PRICES", text)
    if data is _UNREADABLE:
        return builtin
    try:
        return parse_prices(data).over(builtin)
    except PricesError as exc:
        for problem in exc.problems:
            env.problem("PRICES", problem)
        return builtin


def read_policy(env: EnvReader) -> Policy:
    text = env.get("POLICY")
    if text is None:
        return default_policy()
    data = _read_document(env, "POLICY", text)
    if data is _UNREADABLE:
        return default_policy()
    try:
        return parse_policy(data)
    except PolicyError as exc:
        # Named by the variable the operator set (BROKER_ACME_POLICY_FILE, ...), not "POLICY".
        for problem in exc.problems:
            env.problem("POLICY", problem)
        return default_policy()


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number a policy may hold")


def cors_origins(env: EnvReader) -> tuple[str, ...]:
    text = env.get("CORS_ORIGINS")
    if text is None:
        return ()
    origins: list[str] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if item == "*":
            origins.append(item)
            continue
        if item.endswith(":*"):
            # Any port of one host (local dev servers pick their own): scheme://host:*
            host_part = item[:-2]
            parts = urlsplit(host_part)
            if (
                parts.scheme in ("http", "https")
                and parts.hostname
                and not (parts.path or parts.port or "@" in parts.netloc or "*" in parts.netloc)
            ):
                origins.append(f"{parts.scheme}://{parts.netloc.lower()}:*")
            else:
                env.problem("CORS_ORIGINS", f"{item[:80]!r} is not scheme://host:*")
            continue
        try:
            parts = urlsplit(item)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            parts = urlsplit("")
        host = parts.hostname or ""
        if not parts.scheme or not host or "*" in host or "@" in parts.netloc:
            env.problem("CORS_ORIGINS", f"{item[:80]!r} is not an origin scheme://host[:port]")
        elif parts.path or parts.query or parts.fragment or item.endswith(("?", "#")):
            env.problem("CORS_ORIGINS", f"{item[:80]!r}: an origin has no path, not even '/'")
        else:
            origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    if "*" in origins and len(origins) > 1:
        env.problem("CORS_ORIGINS", "'*' allows every origin and must stand alone")
    return tuple(dict.fromkeys(origins))
