"""Configuration from the environment (DESIGN.md section 4), read once into frozen values.

`load_settings(os.environ)` validates everything and raises `ConfigError` listing every
problem; `describe_settings` is what `token-broker config check` prints (secrets masked).

Lookup rules:
- a per-tenant setting X is read from `BROKER_<ID>_X`, else `BROKER_X`;
- X and its file form X_FILE (secrets, JWT_PUBLIC_KEY; POLICY_FILE for POLICY) are one
  setting: the tenant's spelling of either wins over the global one, setting both at the
  same level is an error;
- the JWT key (JWT_SECRET / JWT_PUBLIC_KEY / JWT_JWKS_URL) is one choice: a tenant that
  sets any of the three ignores the global ones, and then reads JWT_ALGORITHMS only at
  tenant level too, so a tenant can use a PEM while the others share a global secret;
- an empty value counts as unset (compose files write `BROKER_X=` for "no value");
- problem messages name variables and files, never a secret's value.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Literal, cast, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from service.errors import ConfigError
from service.limits import Limit
from service.policy import PolicyError, default_policy, parse_policy
from service.policy_model import Policy
from service.redact import Secret

UpstreamKind = Literal["openai", "azure", "fake"]
UpstreamApi = Literal["ga", "beta"]
FailureMode = Literal["closed", "open"]
LogFormat = Literal["json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]

PREFIX = "BROKER_"
DEFAULT_TENANT = "default"
MASK = "**********"
DEFAULT_UPSTREAM_URL = "https://api.openai.com/v1"
GLOBAL_SETTINGS = (
    "HOST", "PORT", "TENANTS", "REDIS_URL", "REDIS_TIMEOUT_MS", "LOG_LEVEL", "LOG_FORMAT",
)  # fmt: skip
TENANT_SETTINGS = (
    "UPSTREAM", "UPSTREAM_URL", "UPSTREAM_API", "UPSTREAM_API_KEY", "UPSTREAM_TIMEOUT_MS",
    "JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL", "JWT_JWKS_CACHE_SECONDS",
    "JWT_ISSUER", "JWT_AUDIENCE", "JWT_ALGORITHMS", "JWT_LEEWAY_SECONDS",
    "JWT_USER_CLAIM", "JWT_ROLE_CLAIM", "POLICY", "ADMIN_API_KEY", "CORS_ORIGINS",
    "RATE_LIMIT_FAILURE_MODE",
)  # fmt: skip
# Settings that also accept X_FILE, a path to a file holding the value.
FILE_SETTINGS = frozenset(
    {"REDIS_URL", "UPSTREAM_API_KEY", "JWT_SECRET", "JWT_PUBLIC_KEY", "ADMIN_API_KEY", "POLICY"}
)
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
_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_INTEGER = re.compile(r"-?[0-9]+")
# Kubernetes injects BROKER_SERVICE_HOST, BROKER_PORT=tcp://... for a Service named "broker".
_SERVICE_LINK = re.compile(r"BROKER_(SERVICE_HOST|SERVICE_PORT.*|PORT_[0-9]+_.*)")


@dataclass(frozen=True)
class TenantSettings:
    id: str
    upstream: UpstreamKind
    upstream_url: str
    upstream_api: UpstreamApi
    upstream_api_key: Secret | None
    jwt_secret: Secret | None
    jwt_public_key: str | None
    jwt_jwks_url: str | None
    jwt_issuer: str | None
    jwt_audience: str | None
    jwt_algorithms: tuple[str, ...]
    jwt_leeway_seconds: int
    jwt_user_claim: str
    jwt_role_claim: str
    policy: Policy
    admin_api_key: Secret | None
    cors_origins: tuple[str, ...]
    rate_limit_failure_mode: FailureMode
    # Addition to DESIGN.md (documented in the README): how long a fetched JWKS is reused.
    jwt_jwks_cache_seconds: int = 300
    # Addition: the overall deadline of one upstream call, retry included.
    upstream_timeout_ms: int = 10_000


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    tenants: tuple[TenantSettings, ...]
    redis_url: Secret | None  # a URL may carry a password
    log_level: str
    log_format: LogFormat
    # Redis client behaviour (issue 3); additions to DESIGN.md, documented in the README.
    redis_timeout_ms: int = 250
    dev: bool = False

    def tenant(self, tenant_id: str) -> TenantSettings:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise KeyError(tenant_id)


def env_prefix(tenant_id: str) -> str:
    """`acme-eu` → `BROKER_ACME_EU_`, the prefix of that tenant's variables."""
    return f"{PREFIX}{tenant_id.upper().replace('-', '_')}_"


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every `BROKER_*` variable. Raises `ConfigError` with all problems."""
    problems: list[str] = []
    env = _Reader(environ, problems, (PREFIX,), "")
    tenant_ids = _tenant_ids(env)
    _check_unknown(environ, tenant_ids, problems)
    redis_url = env.get("REDIS_URL")
    if redis_url is not None:
        _check_redis_url(env, redis_url)
    host = (env.get("HOST") or "0.0.0.0").strip()  # noqa: S104 - in a container, on purpose
    port = env.integer("PORT", 8080, 1, 65535)
    log_level = env.choice("LOG_LEVEL", get_args(LogLevel), "info")
    log_format = cast(LogFormat, env.choice("LOG_FORMAT", get_args(LogFormat), "json"))
    redis_timeout_ms = env.integer("REDIS_TIMEOUT_MS", 250, 1, 10_000)
    multi = len(tenant_ids) > 1
    tenants = tuple(_load_tenant(environ, problems, t, multi) for t in tenant_ids)
    if multi:
        _check_distinct_issuers(tenants, problems)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return Settings(
        host=host,
        port=port,
        tenants=tenants,
        redis_url=None if redis_url is None else Secret(redis_url.strip()),
        log_level=log_level,
        log_format=log_format,
        redis_timeout_ms=redis_timeout_ms,
    )


class _Reader:
    """Finds each setting's variable along `scopes` (prefixes, most specific first), reads
    `_FILE` files, and records problems prefixed with `label`."""

    def __init__(
        self,
        environ: Mapping[str, str],
        problems: list[str],
        scopes: tuple[str, ...],
        label: str,
        shown: tuple[str, ...] | None = None,
    ) -> None:
        self._environ = environ
        self.problems = problems
        self.scopes = scopes
        self.label = label
        # The spellings a "missing" message suggests (a lone tenant needs no prefix).
        self.shown = shown or scopes
        self._cache: dict[str, tuple[str, str | None, str | None] | None] = {}

    def narrow(self) -> _Reader:
        return _Reader(self._environ, self.problems, self.scopes[:1], self.label)

    def _is_set(self, var: str) -> bool:
        return bool(self._environ.get(var, "").strip())

    def _resolve(self, setting: str) -> tuple[str, str | None, str | None] | None:
        """(variable used, its text or None when unreadable, file path) or None if unset."""
        if setting in self._cache:
            return self._cache[setting]
        found: tuple[str, str | None, str | None] | None = None
        for scope in self.scopes:
            var, file_var = scope + setting, f"{scope}{setting}_FILE"
            direct = self._is_set(var)
            by_file = setting in FILE_SETTINGS and self._is_set(file_var)
            if direct and by_file:
                self.add(f"{var} and {file_var} are both set; set only one")
            if direct:
                found = (var, self._environ[var], None)
            elif by_file:
                path = self._environ[file_var].strip()
                found = (file_var, self._read(file_var, path), path)
            if found is not None:
                break
        self._cache[setting] = found
        return found

    def _read(self, var: str, path: str) -> str | None:
        # Messages name the file and the OS reason, never what the file holds.
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except OSError as exc:
            self.add(f"{var}: cannot read {path!r}: {exc.strerror or type(exc).__name__}")
            return None
        except UnicodeDecodeError:
            self.add(f"{var}: {path!r} is not UTF-8 text")
            return None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text.strip():
            self.add(f"{var}: {path!r} is empty")
            return None
        return text

    def add(self, message: str) -> None:
        self.problems.append(self.label + message)

    def present(self, setting: str) -> bool:
        return self._resolve(setting) is not None

    def get(self, setting: str) -> str | None:
        found = self._resolve(setting)
        return None if found is None else found[1]

    def var(self, setting: str) -> str:
        found = self._resolve(setting)
        return self.scopes[-1] + setting if found is None else found[0]

    def path(self, setting: str) -> str | None:
        found = self._resolve(setting)
        return None if found is None else found[2]

    def problem(self, setting: str, message: str) -> None:
        self.add(f"{self.var(setting)}: {message}")

    def missing(self, settings: tuple[str, ...], why: str) -> None:
        names = [scope + s for s in settings for scope in self.shown]
        self.add(f"{_or_list(names)}: {why}")

    def choice(self, setting: str, options: tuple[str, ...], default: str) -> str:
        text = self.get(setting)
        if text is None:
            return default
        if text.strip().lower() not in options:
            self.problem(setting, f"must be one of {', '.join(options)}, not {text[:40]!r}")
            return default
        return text.strip().lower()

    def integer(self, setting: str, default: int, low: int, high: int) -> int:
        text = self.get(setting)
        if text is None:
            return default
        if not _INTEGER.fullmatch(text.strip()) or not low <= int(text) <= high:
            hint = " (a Kubernetes service link? set enableServiceLinks: false)"
            tail = hint if text.startswith("tcp://") else ""
            self.problem(setting, f"must be an integer from {low} to {high}{tail}")
            return default
        return int(text)

    def secret(self, setting: str, min_chars: int = 1) -> Secret | None:
        text = self.get(setting)
        if text is None:
            return None
        if len(text) < min_chars:
            self.problem(setting, f"must be at least {min_chars} characters long")
        return Secret(text)


def _or_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _tenant_ids(env: _Reader) -> tuple[str, ...]:
    text = env.get("TENANTS")
    if text is None:
        return (DEFAULT_TENANT,)
    ids: list[str] = []
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        env.problem("TENANTS", "lists no tenant")
    for item in items:
        if not _TENANT_ID.fullmatch(item):
            env.problem(
                "TENANTS",
                f"{item[:40]!r} is not a tenant id (1 to 32 of a-z, 0-9 and '-', "
                "not starting with '-')",
            )
        elif item in ids:
            env.problem("TENANTS", f"tenant {item!r} is listed twice")
        else:
            ids.append(item)
    return tuple(ids)


def _names(settings: tuple[str, ...]) -> set[str]:
    return set(settings) | {f"{s}_FILE" for s in settings if s in FILE_SETTINGS}


def _check_unknown(
    environ: Mapping[str, str], tenant_ids: tuple[str, ...], problems: list[str]
) -> None:
    """A misspelt variable must fail loudly: BROKER_JWT_SECRT would otherwise be ignored."""
    global_names, tenant_names = _names(GLOBAL_SETTINGS), _names(TENANT_SETTINGS)
    known = {PREFIX + name for name in global_names | tenant_names}
    known |= {env_prefix(t) + name for t in tenant_ids for name in tenant_names}
    for var in sorted(v for v in environ if v.startswith(PREFIX) and v not in known):
        hints = []
        # Longest first so that ..._UPSTREAM_API_KEY is not read as tenant "..._UPSTREAM".
        for name in sorted(global_names | tenant_names, key=len, reverse=True):
            head = var[: -len(name) - 1]
            if not var.endswith("_" + name) or len(head) <= len(PREFIX):
                continue
            tenant = head[len(PREFIX) :].lower().replace("_", "-")
            if name in global_names and tenant in tenant_ids:
                hints.append(f"{name} is global: set {PREFIX}{name}")
            elif name in tenant_names and tenant not in tenant_ids:
                hints.append(f"{tenant!r} is not in BROKER_TENANTS ({', '.join(tenant_ids)})")
            break
        if _SERVICE_LINK.fullmatch(var):
            hints.append("Kubernetes service link? set enableServiceLinks: false")
        close = difflib.get_close_matches(var, sorted(known), n=1, cutoff=0.8)
        if close:
            hints.append(f"did you mean {close[0]}?")
        problems.append(f"{var}: unknown variable" + "".join(f"; {h}" for h in hints))


def _check_redis_url(env: _Reader, text: str) -> None:
    # Never echo the URL, nor even its scheme: a malformed one may start with a password.
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        env.problem("REDIS_URL", "is not a URL")
        return
    if parts.scheme not in REDIS_SCHEMES:
        env.problem("REDIS_URL", f"must start with {_or_list([s + '://' for s in REDIS_SCHEMES])}")
    elif not (parts.path if parts.scheme == "unix" else parts.netloc.rpartition("@")[2]):
        env.problem("REDIS_URL", "names no host (or, for unix://, no socket path)")


def masked_redis_url(url: Secret | None) -> str | None:
    """The Redis URL with its credentials (userinfo, password-like query values) masked."""
    if url is None:
        return None
    try:
        parts = urlsplit(url.reveal())
    except ValueError:
        return MASK
    _userinfo, at, hosts = parts.netloc.rpartition("@")
    query = [
        (k, MASK if any(w in k.lower() for w in ("pass", "secret", "token", "auth")) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    netloc = f"{MASK}@{hosts}" if at else hosts
    # Built by hand: urlunsplit would turn unix:///path into unix:/path.
    tail = f"?{urlencode(query, safe='*')}" if query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{tail}"


def _http_url(text: str) -> str | None:
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


def _load_tenant(
    environ: Mapping[str, str], problems: list[str], tenant_id: str, multi: bool
) -> TenantSettings:
    scopes = (env_prefix(tenant_id), PREFIX)
    env = _Reader(
        environ, problems, scopes, f"tenant {tenant_id}: ", scopes if multi else (PREFIX,)
    )
    upstream = cast(UpstreamKind, env.choice("UPSTREAM", get_args(UpstreamKind), "openai"))
    upstream_url = env.get("UPSTREAM_URL")
    if upstream == "azure" and upstream_url is None:
        env.missing(("UPSTREAM_URL",), "required when UPSTREAM=azure (the resource endpoint)")
    if upstream != "fake" and upstream_url is not None:
        upstream_url = _http_url(upstream_url)
        if upstream_url is not None:
            upstream_url = upstream_url.rstrip("/")  # paths are appended: "/realtime/..."
        else:
            env.problem("UPSTREAM_URL", "must be an http(s) URL such as " + DEFAULT_UPSTREAM_URL)
    if upstream != "fake" and not env.present("UPSTREAM_API_KEY"):
        env.missing(("UPSTREAM_API_KEY",), "required unless UPSTREAM=fake")
    issuer, audience = env.get("JWT_ISSUER"), env.get("JWT_AUDIENCE")
    if multi:
        for setting, value in (("JWT_ISSUER", issuer), ("JWT_AUDIENCE", audience)):
            if value is None:
                env.missing((setting,), "required when there are several tenants")
    key_env = env.narrow() if any(env.narrow().present(k) for k in JWT_KEYS) else env
    jwt_secret, public_key, jwks_url, algorithms = _jwt_key(env, key_env)
    admin_api_key = env.secret("ADMIN_API_KEY", min_chars=16)
    return TenantSettings(
        id=tenant_id,
        upstream=upstream,
        upstream_url=upstream_url or DEFAULT_UPSTREAM_URL,
        upstream_api=cast(UpstreamApi, env.choice("UPSTREAM_API", get_args(UpstreamApi), "ga")),
        upstream_api_key=env.secret("UPSTREAM_API_KEY"),
        jwt_secret=jwt_secret,
        jwt_public_key=public_key,
        jwt_jwks_url=jwks_url,
        jwt_issuer=issuer,
        jwt_audience=audience,
        jwt_algorithms=algorithms,
        jwt_leeway_seconds=env.integer("JWT_LEEWAY_SECONDS", 30, 0, 300),
        jwt_user_claim=(env.get("JWT_USER_CLAIM") or "sub").strip(),
        jwt_role_claim=(env.get("JWT_ROLE_CLAIM") or "role").strip(),
        policy=_policy(env),
        admin_api_key=admin_api_key,
        cors_origins=_cors_origins(env),
        rate_limit_failure_mode=cast(
            FailureMode,
            env.choice("RATE_LIMIT_FAILURE_MODE", get_args(FailureMode), "closed"),
        ),
        jwt_jwks_cache_seconds=env.integer("JWT_JWKS_CACHE_SECONDS", 300, 0, 86_400),
        upstream_timeout_ms=env.integer("UPSTREAM_TIMEOUT_MS", 10_000, 100, 60_000),
    )


def _jwt_key(
    env: _Reader, key_env: _Reader
) -> tuple[Secret | None, str | None, str | None, tuple[str, ...]]:
    """(secret, PEM, JWKS URL, algorithms) from `key_env`, the scope the key is set in."""
    chosen = [k for k in JWT_KEYS if key_env.present(k)]
    if not chosen:
        env.missing(JWT_KEYS, "set one of these to verify user tokens")
    elif len(chosen) > 1:
        key_env.add(f"set only one of {_or_list([key_env.var(k) for k in chosen])}")
    secret = key_env.secret("JWT_SECRET")
    if secret is not None and len(secret.reveal().encode()) < 32:
        key_env.problem("JWT_SECRET", "must be at least 32 bytes long")
    pem, key_algorithms = _public_key(key_env)
    jwks_url = key_env.get("JWT_JWKS_URL")
    if jwks_url is not None:
        jwks_url = _http_url(jwks_url)
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


def _public_key(env: _Reader) -> tuple[str | None, tuple[str, ...]]:
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


def _policy(env: _Reader) -> Policy:
    text = env.get("POLICY")
    if text is None:
        return default_policy()
    path = env.path("POLICY")
    suffix = Path(path).suffix.lower() if path is not None else ".json"
    try:
        if suffix == ".toml":
            data: object = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text, parse_constant=_refuse_constant)
        else:
            env.problem("POLICY", "must name a .json or .toml file")
            return default_policy()
    except json.JSONDecodeError as exc:
        env.problem("POLICY", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        return default_policy()
    except ValueError as exc:  # tomllib.TOMLDecodeError, NaN/Infinity
        env.problem("POLICY", f"invalid {suffix[1:].upper()}: {exc}")
        return default_policy()
    try:
        return parse_policy(data)
    except PolicyError as exc:
        for problem in exc.problems:
            env.add(f"POLICY: {problem}")
        return default_policy()


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number a policy may hold")


def _cors_origins(env: _Reader) -> tuple[str, ...]:
    text = env.get("CORS_ORIGINS")
    if text is None:
        return ()
    origins: list[str] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        if item == "*":
            origins.append(item)
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


def _check_distinct_issuers(tenants: tuple[TenantSettings, ...], problems: list[str]) -> None:
    # The tenant of a token is found by (iss, aud): two tenants sharing both are ambiguous.
    seen: dict[tuple[str, str], str] = {}
    for tenant in tenants:
        if tenant.jwt_issuer is None or tenant.jwt_audience is None:
            continue
        pair = (tenant.jwt_issuer, tenant.jwt_audience)
        if pair in seen:
            problems.append(
                f"tenants {seen[pair]} and {tenant.id} have the same JWT_ISSUER and "
                "JWT_AUDIENCE: a token could not tell them apart"
            )
        seen.setdefault(pair, tenant.id)


def describe_settings(settings: Settings) -> dict[str, object]:
    """The effective configuration as JSON-able data, secrets masked (`config check`)."""
    described = cast(dict[str, object], _jsonable(settings))
    described["redis_url"] = masked_redis_url(settings.redis_url)
    described["tenants"] = {t.id: _jsonable(t) for t in settings.tenants}
    return described


def _jsonable(value: object) -> object:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, Limit):
        return value.text
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value
