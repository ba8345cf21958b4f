"""Configuration from the environment (README "Configuration"), read once into frozen values.

`load_settings(os.environ)` validates everything and raises `ConfigError` listing every
problem; `describe_settings` is what `token-broker config check` prints (secrets masked).
How a setting's variable is found (tenant prefix, `_FILE` forms, empty values) is
`service.config.environment`'s job; the checks of structured values (URLs, JWT keys, policy,
CORS origins) are in `service.config.checks`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Literal, cast, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit

from service.config.checks import (
    JWT_KEYS,
    check_redis_url,
    cors_origins,
    http_url,
    jwt_key,
    read_policy,
    read_prices,
)
from service.config.environment import (
    PREFIX,
    EnvReader,
    check_unknown,
    env_prefix,
    read_tenant_ids,
)
from service.errors import ConfigError
from service.limits import Limit
from service.policy.model import Policy
from service.policy.parse import render_policy
from service.redact import Secret
from service.usage.prices import PriceTable, builtin_prices

UpstreamKind = Literal["openai", "azure", "fake", "gemini"]
GeminiApiVersion = Literal["v1alpha", "v1beta"]
UpstreamApi = Literal["ga", "beta"]
FailureMode = Literal["closed", "open"]
LogFormat = Literal["json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]

MASK = "**********"
DEFAULT_UPSTREAM_URL = "https://api.openai.com/v1"
DEFAULT_GEMINI_URL = "https://generativelanguage.googleapis.com"


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
    # An addition (README "Configuration"): how long a fetched JWKS is reused.
    jwt_jwks_cache_seconds: int = 300
    # Addition: the overall deadline of one upstream call, retry included.
    upstream_timeout_ms: int = 10_000
    # The key of user_hash (DESIGN 13.1); None: generated and kept in the state store.
    user_hash_key: Secret | None = None
    # UPSTREAM=gemini (DESIGN 12): the API version of Google's routes the broker calls.
    gemini_api_version: GeminiApiVersion = "v1alpha"
    # USD prices of usage (DESIGN 11): PRICES / PRICES_FILE over the built-in table.
    prices: PriceTable = field(default_factory=builtin_prices)


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    tenants: tuple[TenantSettings, ...]
    redis_url: Secret | None  # a URL may carry a password
    log_level: str
    log_format: LogFormat
    # Redis client behaviour (issue 3); additions to the product contract (README "Configuration").
    redis_timeout_ms: int = 250
    # Call control (README "Call control"): a dead replica's calls are adopted within
    # one lease; how many calls one replica supervises at most.
    call_lease_seconds: float = 15.0
    max_calls: int = 10_000
    # How long a dropped sideband is tried again before the call is ended over REST; how
    # often idle sidebands are pinged (a dead path is noticed within three times this;
    # 0: never).
    sideband_rejoin_seconds: float = 15.0
    sideband_ping_seconds: float = 8.0
    # /metrics on a port of its own (README "Metrics"); None: on the API's port, as before.
    # `metrics_host` None: the API's host.
    metrics_port: int | None = None
    metrics_host: str | None = None
    # Host names dev mode answers besides the local ones (DNS rebinding; service.dev).
    dev_allowed_hosts: tuple[str, ...] = ()
    dev: bool = False

    def tenant(self, tenant_id: str) -> TenantSettings:
        for tenant in self.tenants:
            if tenant.id == tenant_id:
                return tenant
        raise KeyError(tenant_id)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate every `BROKER_*` variable. Raises `ConfigError` with all problems."""
    problems: list[str] = []
    env = EnvReader(environ, problems, (PREFIX,), "")
    tenant_ids = read_tenant_ids(env)
    check_unknown(environ, tenant_ids, problems)
    redis_url = env.get("REDIS_URL")
    if redis_url is not None:
        check_redis_url(env, redis_url)
    host = (env.get("HOST") or "0.0.0.0").strip()  # noqa: S104 - in a container, on purpose
    port = env.integer("PORT", 8080, 1, 65535)
    log_level = env.choice("LOG_LEVEL", get_args(LogLevel), "info")
    log_format = cast(LogFormat, env.choice("LOG_FORMAT", get_args(LogFormat), "json"))
    redis_timeout_ms = env.integer("REDIS_TIMEOUT_MS", 250, 1, 10_000)
    call_lease_seconds = env.integer("CALL_LEASE_SECONDS", 15, 1, 300)
    max_calls = env.integer("MAX_CALLS", 10_000, 1, 100_000)
    sideband_rejoin_seconds = env.integer("SIDEBAND_REJOIN_SECONDS", 15, 1, 300)
    sideband_ping_seconds = env.integer("SIDEBAND_PING_SECONDS", 8, 0, 300)
    metrics_port, metrics_host = _metrics_listener(env, port)
    dev_allowed_hosts = _dev_allowed_hosts(env)
    multi = len(tenant_ids) > 1
    tenants = tuple(_load_tenant(environ, problems, t, multi) for t in tenant_ids)
    if multi:
        _check_distinct_issuers(tenants, problems)
        _check_distinct_admin_keys(environ, tenants, problems)
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
        call_lease_seconds=float(call_lease_seconds),
        max_calls=max_calls,
        sideband_rejoin_seconds=float(sideband_rejoin_seconds),
        sideband_ping_seconds=float(sideband_ping_seconds),
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        dev_allowed_hosts=dev_allowed_hosts,
    )


def _metrics_listener(env: EnvReader, port: int) -> tuple[int | None, str | None]:
    """METRICS_PORT (a port of its own, never the API's) and METRICS_HOST (only with it)."""
    host = env.get("METRICS_HOST")
    if not env.present("METRICS_PORT"):
        if host is not None:
            env.problem("METRICS_HOST", "has no effect without BROKER_METRICS_PORT")
        return None, None
    metrics_port = env.integer("METRICS_PORT", 0, 1, 65535)
    if metrics_port == port:
        env.problem("METRICS_PORT", f"must differ from BROKER_PORT ({port})")
    return metrics_port, None if host is None else host.strip()


# A host name (or a leading-dot suffix: the name and its subdomains), an IPv6 literal in
# brackets, or `*` (any host: the check off).
_HOST_NAME = re.compile(r"\.?[a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\]|\*")


def _dev_allowed_hosts(env: EnvReader) -> tuple[str, ...]:
    text = env.get("DEV_ALLOWED_HOSTS")
    if text is None:
        return ()
    hosts = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    for host in hosts:
        if not _HOST_NAME.fullmatch(host):
            env.problem(
                "DEV_ALLOWED_HOSTS",
                f"{host[:60]!r} is not a host name (names only, any port is allowed; "
                "'.example.test' for a name and its subdomains, '*' for any)",
            )
    return hosts


def _load_tenant(
    environ: Mapping[str, str], problems: list[str], tenant_id: str, multi: bool
) -> TenantSettings:
    scopes = (env_prefix(tenant_id), PREFIX)
    env = EnvReader(
        environ, problems, scopes, f"tenant {tenant_id}: ", scopes if multi else (PREFIX,)
    )
    upstream = cast(UpstreamKind, env.choice("UPSTREAM", get_args(UpstreamKind), "openai"))
    upstream_url = env.get("UPSTREAM_URL")
    if upstream == "azure" and upstream_url is None:
        env.missing(("UPSTREAM_URL",), "required when UPSTREAM=azure (the resource endpoint)")
    if upstream != "fake" and upstream_url is not None:
        upstream_url = http_url(upstream_url)
        if upstream_url is not None:
            upstream_url = upstream_url.rstrip("/")  # paths are appended: "/realtime/..."
        else:
            example = DEFAULT_GEMINI_URL if upstream == "gemini" else DEFAULT_UPSTREAM_URL
            env.problem("UPSTREAM_URL", "must be an http(s) URL such as " + example)
    if upstream != "fake" and not env.present("UPSTREAM_API_KEY"):
        env.missing(("UPSTREAM_API_KEY",), "required unless BROKER_UPSTREAM=fake (dev mode only)")
    issuer, audience = env.get("JWT_ISSUER"), env.get("JWT_AUDIENCE")
    if multi:
        for setting, value in (("JWT_ISSUER", issuer), ("JWT_AUDIENCE", audience)):
            if value is None:
                env.missing((setting,), "required when there are several tenants")
    key_env = env.narrow() if any(env.narrow().present(k) for k in JWT_KEYS) else env
    jwt_secret, public_key, jwks_url, algorithms = jwt_key(env, key_env)
    admin_api_key = env.secret("ADMIN_API_KEY", min_chars=16)
    return TenantSettings(
        id=tenant_id,
        upstream=upstream,
        upstream_url=upstream_url
        or (DEFAULT_GEMINI_URL if upstream == "gemini" else DEFAULT_UPSTREAM_URL),
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
        policy=read_policy(env),
        admin_api_key=admin_api_key,
        cors_origins=cors_origins(env),
        rate_limit_failure_mode=cast(
            FailureMode,
            env.choice("RATE_LIMIT_FAILURE_MODE", get_args(FailureMode), "closed"),
        ),
        jwt_jwks_cache_seconds=env.integer("JWT_JWKS_CACHE_SECONDS", 300, 0, 86_400),
        upstream_timeout_ms=env.integer("UPSTREAM_TIMEOUT_MS", 10_000, 100, 60_000),
        user_hash_key=env.secret("USER_HASH_KEY", min_chars=32),
        gemini_api_version=cast(
            GeminiApiVersion,
            env.choice("GEMINI_API_VERSION", get_args(GeminiApiVersion), "v1alpha"),
        ),
        prices=read_prices(env),
    )


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


def _check_distinct_admin_keys(
    environ: Mapping[str, str], tenants: tuple[TenantSettings, ...], problems: list[str]
) -> None:
    # An admin key names its tenant: a key two tenants share matches neither of them
    # (service.directory.admin_tenant), so every admin call would be a bare 401.
    sharing: dict[Secret, list[str]] = {}
    for tenant in tenants:
        if tenant.admin_api_key is not None:
            sharing.setdefault(tenant.admin_api_key, []).append(tenant.id)
    for ids in sharing.values():
        if len(ids) < 2:
            continue
        # The variables the key was read from: BROKER_ADMIN_API_KEY for all, or each its own.
        used = dict.fromkeys(
            EnvReader(environ, [], (env_prefix(i), PREFIX), "").var("ADMIN_API_KEY") for i in ids
        )
        own = [f"{env_prefix(i)}ADMIN_API_KEY" for i in ids]
        problems.append(
            f"{', '.join(used)}: tenants {', '.join(ids)} have the same admin key, which "
            "would match none of them (an admin key names one tenant); give each tenant "
            f"its own: {', '.join(own)}"
        )


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


def describe_settings(settings: Settings) -> dict[str, object]:
    """The effective configuration as JSON-able data, secrets masked (`config check`)."""
    described = cast(dict[str, object], _jsonable(settings))
    described["redis_url"] = masked_redis_url(settings.redis_url)
    tenants: dict[str, object] = {}
    for tenant in settings.tenants:
        entry = cast(dict[str, object], _jsonable(tenant))
        # In BROKER_POLICY's own shape, so that it can be pasted back.
        entry["policy"] = render_policy(tenant.policy)
        entry["prices"] = tenant.prices.render()
        entry["unpriced_models"] = unpriced_policy_models(tenant)
        tenants[tenant.id] = entry
    described["tenants"] = tenants
    described["warnings"] = usage_warnings(settings)
    return described


def unpriced_policy_models(tenant: TenantSettings) -> list[str]:
    """Models the tenant's policy allows that its price table does not price: their
    usage is counted, and costs nothing in the ledger (broker_usage_unpriced_tokens_total).
    None for a Gemini tenant: its sessions run between the browser and Google, never
    metered, so nothing of them is priced."""
    if tenant.upstream == "gemini":
        return []
    models = {m for rules in tenant.policy.roles.values() for m in rules.models or ()}
    return sorted(m for m in models if tenant.prices.price(m) is None)


def usage_warnings(settings: Settings) -> list[str]:
    """What `config check` warns about usage and spend (DESIGN 11): a role with a money
    budget that may mint (a minted secret's session is not metered), and policy models
    with no price."""
    warnings: list[str] = []
    for tenant in settings.tenants:
        for role, rules in sorted(tenant.policy.roles.items()):
            budget = rules.daily_usd_budget is not None or rules.monthly_usd_budget is not None
            if budget and tenant.upstream == "gemini":
                warnings.append(
                    f"tenant {tenant.id}: role {role} has a money budget, but a Gemini "
                    "tenant's sessions are not metered (they run between the browser and "
                    "Google): the budget never fills"
                )
            elif budget and rules.mint:
                warnings.append(
                    f"tenant {tenant.id}: role {role} has a money budget and may mint client "
                    'secrets, whose sessions are not metered; set "mint": false to keep its '
                    "usage within the budget"
                )
        unpriced = unpriced_policy_models(tenant)
        if unpriced:
            warnings.append(
                f"tenant {tenant.id}: no price for {', '.join(unpriced)}; its usage is counted "
                "but costs nothing (set BROKER_PRICES)"
            )
    return warnings


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
