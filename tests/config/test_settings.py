from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from service.config.settings import (
    MASK,
    Settings,
    TenantSettings,
    describe_settings,
    load_settings,
    masked_redis_url,
)
from service.errors import ConfigError
from service.policy.parse import default_policy
from service.redact import Secret
from tests.config.environments import (
    ADMIN_KEY,
    BASE,
    CANARY,
    HASH_KEY,
    JWT_SECRET,
    POLICY_JSON,
    REDIS_PASSWORD,
    UPSTREAM_KEY,
    env,
    multi,
    one_tenant,
    problems_of,
)

# --- defaults ------------------------------------------------------------------------------


def test_defaults_of_every_global_setting() -> None:
    settings = load_settings(BASE)

    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert [t.id for t in settings.tenants] == ["default"]
    assert settings.redis_url is None
    assert (settings.log_level, settings.log_format) == ("info", "json")
    assert settings.redis_timeout_ms == 250
    assert settings.dev is False


def test_defaults_of_every_tenant_setting() -> None:
    tenant = load_settings(BASE).tenant("default")

    assert tenant.upstream == "openai"
    assert tenant.upstream_url == "https://api.openai.com/v1"
    assert tenant.upstream_api == "ga"
    assert tenant.upstream_api_key == Secret(UPSTREAM_KEY)
    assert tenant.jwt_secret == Secret(JWT_SECRET)
    assert (tenant.jwt_public_key, tenant.jwt_jwks_url) == (None, None)
    assert (tenant.jwt_issuer, tenant.jwt_audience) == (None, None)
    assert tenant.jwt_algorithms == ("HS256",)
    assert tenant.jwt_leeway_seconds == 30
    assert (tenant.jwt_user_claim, tenant.jwt_role_claim) == ("sub", "role")
    assert tenant.policy == default_policy()
    assert tenant.admin_api_key is None
    assert tenant.cors_origins == ()
    assert tenant.rate_limit_failure_mode == "closed"
    assert tenant.jwt_jwks_cache_seconds == 300
    assert tenant.user_hash_key is None  # generated and kept in the state store


def test_settings_tenant_lookup() -> None:
    settings = load_settings(multi())

    assert settings.tenant("globex-eu").id == "globex-eu"
    with pytest.raises(KeyError):
        settings.tenant("nope")


# --- every setting, valid values -----------------------------------------------------------

GLOBAL_CASES: list[tuple[str, str, Callable[[Settings], object], object]] = [
    ("HOST", "127.0.0.1", lambda s: s.host, "127.0.0.1"),
    ("PORT", "9000", lambda s: s.port, 9000),
    ("PORT", "1", lambda s: s.port, 1),
    ("PORT", "65535", lambda s: s.port, 65535),
    ("LOG_LEVEL", "debug", lambda s: s.log_level, "debug"),
    ("LOG_LEVEL", "WARNING", lambda s: s.log_level, "warning"),
    ("LOG_LEVEL", "error", lambda s: s.log_level, "error"),
    ("LOG_FORMAT", "console", lambda s: s.log_format, "console"),
    ("REDIS_TIMEOUT_MS", "1", lambda s: s.redis_timeout_ms, 1),
    ("REDIS_TIMEOUT_MS", "10000", lambda s: s.redis_timeout_ms, 10000),
    ("REDIS_URL", "redis://h:6379/0", lambda s: s.redis_url, Secret("redis://h:6379/0")),
    ("TENANTS", "solo", lambda s: [t.id for t in s.tenants], ["solo"]),
    ("TENANTS", " a1 , ", lambda s: [t.id for t in s.tenants], ["a1"]),
    ("HOST", "", lambda s: s.host, "0.0.0.0"),  # empty counts as unset
]


@pytest.mark.parametrize(("name", "value", "read", "expected"), GLOBAL_CASES)
def test_global_setting(
    name: str, value: str, read: Callable[[Settings], object], expected: object
) -> None:
    assert read(load_settings(env(**{name: value}))) == expected


@pytest.mark.parametrize(
    "scheme",
    ["redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"],
)
def test_every_redis_scheme_is_accepted(scheme: str) -> None:
    url = f"{scheme}://:{REDIS_PASSWORD}@h1:26379,h2:26379/mymaster"

    assert load_settings(env(REDIS_URL=url)).redis_url == Secret(url)


def test_unix_redis_url_is_accepted() -> None:
    url = "unix:///run/redis.sock?db=2"

    assert load_settings(env(REDIS_URL=url)).redis_url == Secret(url)


TENANT_CASES: list[tuple[dict[str, str], Callable[[TenantSettings], object], object]] = [
    ({"UPSTREAM": "azure", "UPSTREAM_URL": "https://r.openai.azure.com/openai/v1/"},
     lambda t: (t.upstream, t.upstream_url), ("azure", "https://r.openai.azure.com/openai/v1")),
    ({"UPSTREAM": "fake", "UPSTREAM_API_KEY": ""}, lambda t: (t.upstream, t.upstream_api_key),
     ("fake", None)),
    ({"UPSTREAM": "fake", "UPSTREAM_URL": "not a url"}, lambda t: t.upstream, "fake"),
    ({"UPSTREAM_URL": "http://127.0.0.1:9999/v1"}, lambda t: t.upstream_url,
     "http://127.0.0.1:9999/v1"),
    ({"UPSTREAM_API": "beta"}, lambda t: t.upstream_api, "beta"),
    ({"UPSTREAM_API": "GA"}, lambda t: t.upstream_api, "ga"),
    ({"JWT_ISSUER": "https://idp"}, lambda t: t.jwt_issuer, "https://idp"),
    ({"JWT_AUDIENCE": "broker"}, lambda t: t.jwt_audience, "broker"),
    ({"JWT_ALGORITHMS": "HS512, HS256,HS512"}, lambda t: t.jwt_algorithms, ("HS512", "HS256")),
    ({"JWT_LEEWAY_SECONDS": "0"}, lambda t: t.jwt_leeway_seconds, 0),
    ({"JWT_LEEWAY_SECONDS": "300"}, lambda t: t.jwt_leeway_seconds, 300),
    ({"JWT_USER_CLAIM": "email"}, lambda t: t.jwt_user_claim, "email"),
    ({"JWT_ROLE_CLAIM": "app_role"}, lambda t: t.jwt_role_claim, "app_role"),
    ({"JWT_JWKS_CACHE_SECONDS": "60"}, lambda t: t.jwt_jwks_cache_seconds, 60),
    ({"ADMIN_API_KEY": ADMIN_KEY}, lambda t: t.admin_api_key, Secret(ADMIN_KEY)),
    ({"CORS_ORIGINS": "https://App.example.com, http://localhost:5173"},
     lambda t: t.cors_origins, ("https://app.example.com", "http://localhost:5173")),
    ({"CORS_ORIGINS": "*"}, lambda t: t.cors_origins, ("*",)),
    ({"RATE_LIMIT_FAILURE_MODE": "open"}, lambda t: t.rate_limit_failure_mode, "open"),
    ({"USER_HASH_KEY": HASH_KEY}, lambda t: t.user_hash_key, Secret(HASH_KEY)),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "https://idp.example/.well-known/jwks.json"},
     lambda t: (t.jwt_jwks_url, t.jwt_algorithms),
     ("https://idp.example/.well-known/jwks.json", ("RS256", "ES256"))),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "http://127.0.0.1:8000/jwks"},
     lambda t: t.jwt_jwks_url, "http://127.0.0.1:8000/jwks"),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "http://127.5.6.7/jwks"}, lambda t: t.jwt_jwks_url,
     "http://127.5.6.7/jwks"),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "http://[::1]:8000/jwks"}, lambda t: t.jwt_jwks_url,
     "http://[::1]:8000/jwks"),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "http://localhost/jwks"}, lambda t: t.jwt_jwks_url,
     "http://localhost/jwks"),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "https://idp/jwks", "JWT_ALGORITHMS": "PS256,EdDSA"},
     lambda t: t.jwt_algorithms, ("PS256", "EdDSA")),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "read", "expected"), TENANT_CASES)
def test_tenant_setting(
    overrides: dict[str, str], read: Callable[[TenantSettings], object], expected: object
) -> None:
    assert read(one_tenant(env(**overrides))) == expected


# --- every validation rule -----------------------------------------------------------------

INVALID_CASES: list[tuple[dict[str, str], str]] = [
    ({"PORT": "0"}, "BROKER_PORT: must be an integer from 1 to 65535"),
    ({"PORT": "65536"}, "BROKER_PORT: must be an integer from 1 to 65535"),
    ({"PORT": "80a"}, "BROKER_PORT: must be an integer"),
    ({"PORT": "8_080"}, "BROKER_PORT: must be an integer"),
    ({"PORT": "tcp://10.0.0.1:8080"}, "enableServiceLinks"),
    ({"REDIS_TIMEOUT_MS": "0"}, "BROKER_REDIS_TIMEOUT_MS: must be an integer from 1 to 10000"),
    ({"REDIS_TIMEOUT_MS": "10001"}, "BROKER_REDIS_TIMEOUT_MS"),
    ({"LOG_LEVEL": "verbose"}, "BROKER_LOG_LEVEL: must be one of debug, info, warning, error"),
    ({"LOG_FORMAT": "xml"}, "BROKER_LOG_FORMAT: must be one of json, console"),
    ({"TENANTS": "Acme"}, "BROKER_TENANTS: 'Acme' is not a tenant id"),
    ({"TENANTS": "-acme"}, "'-acme' is not a tenant id"),
    ({"TENANTS": "a" * 33}, "is not a tenant id"),
    ({"TENANTS": "acme_eu"}, "'acme_eu' is not a tenant id"),
    ({"TENANTS": "acme,acme"}, "BROKER_TENANTS: tenant 'acme' is listed twice"),
    ({"TENANTS": " , "}, "BROKER_TENANTS: lists no tenant"),
    ({"REDIS_URL": "http://h:6379"}, "BROKER_REDIS_URL: must start with redis://"),
    ({"REDIS_URL": "redis://"}, "BROKER_REDIS_URL: names no host"),
    ({"REDIS_URL": "unix://"}, "BROKER_REDIS_URL: names no host (or, for unix://"),
    ({"UPSTREAM": "anthropic"}, "BROKER_UPSTREAM: must be one of openai, azure, fake"),
    ({"UPSTREAM": "azure"}, "BROKER_UPSTREAM_URL: required when UPSTREAM=azure"),
    ({"UPSTREAM_URL": "ftp://x/v1"}, "BROKER_UPSTREAM_URL: must be an http(s) URL"),
    ({"UPSTREAM_URL": "api.openai.com"}, "BROKER_UPSTREAM_URL: must be an http(s) URL"),
    ({"UPSTREAM_URL": "https://h:99999/v1"}, "BROKER_UPSTREAM_URL: must be an http(s) URL"),
    ({"UPSTREAM_API": "v2"}, "BROKER_UPSTREAM_API: must be one of ga, beta"),
    (
        {"UPSTREAM_API_KEY": ""},
        "BROKER_UPSTREAM_API_KEY: required unless BROKER_UPSTREAM=fake (dev mode only)",
    ),
    ({"JWT_SECRET": "x" * 31}, "BROKER_JWT_SECRET: must be at least 32 bytes long"),
    ({"JWT_SECRET": ""}, "BROKER_JWT_SECRET, BROKER_JWT_PUBLIC_KEY or BROKER_JWT_JWKS_URL: set"),
    ({"JWT_JWKS_URL": "https://idp/jwks"}, "set only one of BROKER_JWT_SECRET or BROKER_JWT_JWKS"),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "http://idp.example/jwks"},
     "BROKER_JWT_JWKS_URL: must be an https URL (http only on a loopback host)"),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "http://128.0.0.1/jwks"}, "BROKER_JWT_JWKS_URL: must be"),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "file:///etc/jwks"}, "BROKER_JWT_JWKS_URL: must be"),
    ({"JWT_PUBLIC_KEY": "x", "JWT_SECRET": ""}, "BROKER_JWT_PUBLIC_KEY: is not a PEM public key"),
    ({"JWT_ALGORITHMS": "none"}, "BROKER_JWT_ALGORITHMS: 'none' is refused"),
    ({"JWT_ALGORITHMS": "HS256,NoNe"}, "'none' is refused"),
    ({"JWT_ALGORITHMS": "NONE"}, "'none' is refused"),
    ({"JWT_ALGORITHMS": "hs256"}, "unknown algorithm 'hs256' (did you mean HS256?)"),
    ({"JWT_ALGORITHMS": "ES256K"}, "unknown algorithm 'ES256K'; use HS256"),
    ({"JWT_ALGORITHMS": " , "}, "BROKER_JWT_ALGORITHMS: lists no algorithm"),
    ({"JWT_ALGORITHMS": "RS256"}, "BROKER_JWT_ALGORITHMS: RS256 does not fit the configured key"),
    ({"JWT_SECRET": "", "JWT_JWKS_URL": "https://idp/jwks", "JWT_ALGORITHMS": "HS256"},
     "HS256 does not fit the configured key"),
    ({"JWT_LEEWAY_SECONDS": "301"}, "BROKER_JWT_LEEWAY_SECONDS: must be an integer from 0 to 300"),
    ({"JWT_LEEWAY_SECONDS": "-1"}, "BROKER_JWT_LEEWAY_SECONDS: must be an integer from 0 to 300"),
    ({"JWT_JWKS_CACHE_SECONDS": "x"}, "BROKER_JWT_JWKS_CACHE_SECONDS: must be an integer"),
    ({"ADMIN_API_KEY": "x" * 15}, "BROKER_ADMIN_API_KEY: must be at least 16 characters long"),
    ({"USER_HASH_KEY": "x" * 31}, "BROKER_USER_HASH_KEY: must be at least 32 characters long"),
    ({"CORS_ORIGINS": "https://a.example/"}, "an origin has no path, not even '/'"),
    ({"CORS_ORIGINS": "https://a.example/app"}, "an origin has no path"),
    ({"CORS_ORIGINS": "https://a.example?x=1"}, "an origin has no path"),
    ({"CORS_ORIGINS": "a.example"}, "'a.example' is not an origin scheme://host[:port]"),
    ({"CORS_ORIGINS": "https://*.a.example"}, "is not an origin"),
    ({"CORS_ORIGINS": "https://u@a.example"}, "is not an origin"),
    ({"CORS_ORIGINS": "https://a.example:http"}, "is not an origin"),
    ({"CORS_ORIGINS": "*,https://a.example"}, "'*' allows every origin and must stand alone"),
    ({"RATE_LIMIT_FAILURE_MODE": "ajar"}, "BROKER_RATE_LIMIT_FAILURE_MODE: must be one of"),
    ({"POLICY": "{"}, "BROKER_POLICY: invalid JSON at line 1 column 2"),
    ({"POLICY": '{"default_role": NaN}'}, "BROKER_POLICY: invalid JSON: NaN"),
    ({"POLICY": '{"roles": {"reader": {"voices": "alloy"}}}'},
     "tenant default: BROKER_POLICY: roles.reader.voices: must be a non-empty list"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), INVALID_CASES)
def test_validation_rule(overrides: dict[str, str], expected: str) -> None:
    problems = problems_of(env(**overrides))

    assert any(expected in p for p in problems), problems


def test_tenant_problems_name_the_tenant() -> None:
    problems = problems_of(env(UPSTREAM="nope"))

    assert problems == [
        "tenant default: BROKER_UPSTREAM: must be one of openai, azure, fake, gemini, not 'nope'"
    ]


def test_every_problem_is_reported_at_once() -> None:
    environ = {
        "BROKER_PORT": "0",
        "BROKER_LOG_FORMAT": "xml",
        "BROKER_UPSTREAM_API": "v3",
        "BROKER_JWT_LEEWAY_SECONDS": "1000",
        "BROKER_JWT_SECRT": "typo",
    }

    problems = problems_of(environ)

    expected = [
        "BROKER_PORT:",
        "BROKER_LOG_FORMAT:",
        "BROKER_UPSTREAM_API:",
        "BROKER_JWT_LEEWAY_SECONDS:",
        "BROKER_JWT_SECRT: unknown variable",
        "BROKER_UPSTREAM_API_KEY: required",
        "BROKER_JWT_SECRET, BROKER_JWT_PUBLIC_KEY or BROKER_JWT_JWKS_URL:",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
    assert len(problems) == len(expected)


def test_config_error_lists_every_problem_in_its_text() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env(PORT="0", LOG_LEVEL="loud"))

    assert "BROKER_PORT" in str(info.value)
    assert "BROKER_LOG_LEVEL" in str(info.value)


# --- multi-tenant issuer and audience ------------------------------------------------------


@pytest.mark.parametrize("missing", ["BROKER_ACME_JWT_ISSUER", "BROKER_GLOBEX_EU_JWT_AUDIENCE"])
def test_issuer_and_audience_are_required_with_several_tenants(missing: str) -> None:
    environ = multi()
    del environ[missing]
    setting = missing.rsplit("_JWT_", 1)[1]

    problems = problems_of(environ)

    assert len(problems) == 1
    assert f"BROKER_JWT_{setting}: required when there are several tenants" in problems[0]


def test_one_global_issuer_with_distinct_audiences_is_accepted() -> None:
    environ = {
        **BASE,
        "BROKER_TENANTS": "a,b",
        "BROKER_JWT_ISSUER": "https://idp",
        "BROKER_A_JWT_AUDIENCE": "app-a",
        "BROKER_B_JWT_AUDIENCE": "app-b",
    }

    settings = load_settings(environ)

    assert [(t.jwt_issuer, t.jwt_audience) for t in settings.tenants] == [
        ("https://idp", "app-a"),
        ("https://idp", "app-b"),
    ]


def test_two_tenants_with_the_same_issuer_and_audience_are_refused() -> None:
    environ = {
        **BASE,
        "BROKER_TENANTS": "a,b,c",
        "BROKER_JWT_ISSUER": "https://idp",
        "BROKER_JWT_AUDIENCE": "broker",
        "BROKER_C_JWT_AUDIENCE": "other",
    }

    problems = problems_of(environ)

    assert problems == [
        "tenants a and b have the same JWT_ISSUER and JWT_AUDIENCE: a token could not tell "
        "them apart"
    ]


# --- one admin key per tenant (issue 23) ------------------------------------------------------


def test_one_admin_key_for_several_tenants_is_refused_naming_the_per_tenant_form() -> None:
    # An admin key names its tenant: one shared key would match none of them, so every
    # admin call would be a bare 401 (service.directory.admin_tenant).
    problems = problems_of(multi(ADMIN_API_KEY=ADMIN_KEY))

    assert problems == [
        "BROKER_ADMIN_API_KEY: tenants acme, globex-eu have the same admin key, which would "
        "match none of them (an admin key names one tenant); give each tenant its own: "
        "BROKER_ACME_ADMIN_API_KEY, BROKER_GLOBEX_EU_ADMIN_API_KEY"
    ]
    assert not any(CANARY in problem for problem in problems)


def test_the_same_admin_key_set_per_tenant_is_refused_too(tmp_path: Path) -> None:
    key_file = tmp_path / "admin-key"
    key_file.write_text(ADMIN_KEY + "\n")

    problems = problems_of(
        multi(ACME_ADMIN_API_KEY=ADMIN_KEY, GLOBEX_EU_ADMIN_API_KEY_FILE=str(key_file))
    )

    assert len(problems) == 1
    assert problems[0].startswith(
        "BROKER_ACME_ADMIN_API_KEY, BROKER_GLOBEX_EU_ADMIN_API_KEY_FILE: tenants acme, "
        "globex-eu have the same admin key"
    )
    assert not any(CANARY in problem for problem in problems)


def test_a_global_admin_key_beside_the_others_own_is_the_one_named() -> None:
    problems = problems_of(
        {
            **multi(ADMIN_API_KEY=ADMIN_KEY, GLOBEX_EU_ADMIN_API_KEY="globex-own-admin-key-0123"),
            "BROKER_TENANTS": "acme,globex-eu,initech",
            "BROKER_INITECH_JWT_ISSUER": "https://initech.example",
            "BROKER_INITECH_JWT_AUDIENCE": "broker",
        }
    )

    assert len(problems) == 1
    assert problems[0].startswith("BROKER_ADMIN_API_KEY: tenants acme, initech have the same")
    assert problems[0].endswith("BROKER_ACME_ADMIN_API_KEY, BROKER_INITECH_ADMIN_API_KEY")


def test_distinct_admin_keys_and_one_tenant_with_the_global_key_are_accepted() -> None:
    several = load_settings(
        multi(ACME_ADMIN_API_KEY=ADMIN_KEY, GLOBEX_EU_ADMIN_API_KEY="globex-own-admin-key-0123")
    )
    one = load_settings(env(ADMIN_API_KEY=ADMIN_KEY))

    assert [t.admin_api_key for t in several.tenants] == [
        Secret(ADMIN_KEY),
        Secret("globex-own-admin-key-0123"),
    ]
    assert one.tenants[0].admin_api_key == Secret(ADMIN_KEY)


def test_issuer_and_audience_are_optional_with_one_tenant() -> None:
    tenant = one_tenant(env())

    assert (tenant.jwt_issuer, tenant.jwt_audience) == (None, None)


# --- masking -------------------------------------------------------------------------------


def full_env(tmp_path: Path) -> dict[str, str]:
    secret_file = tmp_path / "jwt"
    secret_file.write_text("file-jwt-secret-LEAKCANARY-0123456789")
    return {
        **multi(),
        "BROKER_REDIS_URL": f"rediss://user:{REDIS_PASSWORD}@redis.internal:6380/0"
        f"?password={REDIS_PASSWORD}&db=0",
        # One key per tenant: a shared one is refused (it would match neither).
        "BROKER_ACME_ADMIN_API_KEY": ADMIN_KEY,
        "BROKER_GLOBEX_EU_ADMIN_API_KEY": "globex-admin-key-LEAKCANARY",
        "BROKER_ACME_JWT_SECRET_FILE": str(secret_file),
        "BROKER_ACME_UPSTREAM_API_KEY": "test-acme-LEAKCANARY",
        "BROKER_ACME_USER_HASH_KEY": HASH_KEY,
        "BROKER_POLICY": json.dumps(POLICY_JSON),
    }


def test_describe_settings_masks_every_secret(tmp_path: Path) -> None:
    described = describe_settings(load_settings(full_env(tmp_path)))
    text = json.dumps(described)

    assert CANARY not in text
    tenants = described["tenants"]
    assert isinstance(tenants, dict)
    assert list(tenants) == ["acme", "globex-eu"]
    acme = tenants["acme"]
    for field in ("upstream_api_key", "jwt_secret", "admin_api_key", "user_hash_key"):
        assert acme[field] == MASK
    assert tenants["globex-eu"]["user_hash_key"] is None  # per tenant
    assert described["redis_url"] == (f"rediss://{MASK}@redis.internal:6380/0?password={MASK}&db=0")


def test_describe_settings_shows_effective_values() -> None:
    described = describe_settings(load_settings(env(CORS_ORIGINS="https://a.example")))

    assert described["host"] == "0.0.0.0"
    assert described["port"] == 8080
    assert described["redis_url"] is None
    assert described["dev"] is False
    tenant = described["tenants"]["default"]  # type: ignore[index]
    assert tenant["admin_api_key"] is None
    assert tenant["jwt_algorithms"] == ["HS256"]
    assert tenant["cors_origins"] == ["https://a.example"]
    policy = tenant["policy"]
    assert policy["roles"]["reader"]["limits"] == ["10/minute", "500/day"]
    assert policy["tenant_limits"] == []
    json.dumps(described)  # JSON-able as it is


def test_describe_settings_policy_limits_are_text(tmp_path: Path) -> None:
    described = describe_settings(load_settings(full_env(tmp_path)))

    policy = described["tenants"]["acme"]["policy"]  # type: ignore[index]
    assert policy["tenant_limits"] == ["600/minute"]
    assert policy["roles"]["reader"]["limits"] == ["5/minute", "200/day"]
    assert policy["roles"]["reader"]["voices"] == ["alloy", "verse"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:6379/0", "redis://h:6379/0"),
        (f"redis://:{REDIS_PASSWORD}@h", f"redis://{MASK}@h"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
        (f"redis+sentinel://u:{REDIS_PASSWORD}@a:1,b:2/m", f"redis+sentinel://{MASK}@a:1,b:2/m"),
        (f"redis://h?sentinel_password={REDIS_PASSWORD}#x", f"redis://h?sentinel_password={MASK}"),
    ],
)
def test_masked_redis_url(url: str, expected: str) -> None:
    assert masked_redis_url(Secret(url)) == expected


def test_config_error_never_contains_a_secret(tmp_path: Path) -> None:
    short_jwt = "short-LEAKCANARY"
    environ = {
        **BASE,
        "BROKER_JWT_SECRET": short_jwt,
        "BROKER_ADMIN_API_KEY": "adm-LEAKCANARY",
        "BROKER_REDIS_URL": f"{REDIS_PASSWORD}:x@h",
        "BROKER_UPSTREAM_URL": f"https://u:{REDIS_PASSWORD}@h:bad/v1",
        "BROKER_CORS_ORIGINS": "https://a.example/",
        "BROKER_JWT_SECRT": f"typo-{CANARY}",
    }

    with pytest.raises(ConfigError) as info:
        load_settings(environ)

    assert len(info.value.problems) == 6
    # Lower-cased: a URL parser lower-cases what it takes for a scheme.
    assert CANARY.lower() not in str(info.value).lower()
    assert CANARY.lower() not in repr(info.value).lower()


def test_call_control_settings_have_defaults_and_bounds() -> None:
    defaults = load_settings(env())
    assert (defaults.call_lease_seconds, defaults.max_calls) == (15.0, 10_000)
    tuned = load_settings(env(CALL_LEASE_SECONDS="4", MAX_CALLS="500"))
    assert (tuned.call_lease_seconds, tuned.max_calls) == (4.0, 500)
    problems = problems_of(env(CALL_LEASE_SECONDS="0", MAX_CALLS="lots"))
    assert any(p.startswith("BROKER_CALL_LEASE_SECONDS") for p in problems)
    assert any(p.startswith("BROKER_MAX_CALLS") for p in problems)


def test_sideband_settings_have_defaults_that_notice_a_dead_path_within_30_s() -> None:
    defaults = load_settings(env())
    assert (defaults.sideband_rejoin_seconds, defaults.sideband_ping_seconds) == (15.0, 8.0)
    # A silent path is noticed within three ping intervals (service.calls.sideband).
    assert 3 * defaults.sideband_ping_seconds + 3 <= 30
    tuned = load_settings(env(SIDEBAND_REJOIN_SECONDS="2", SIDEBAND_PING_SECONDS="0"))
    assert (tuned.sideband_rejoin_seconds, tuned.sideband_ping_seconds) == (2.0, 0.0)
    problems = problems_of(env(SIDEBAND_REJOIN_SECONDS="0", SIDEBAND_PING_SECONDS="-1"))
    assert any(p.startswith("BROKER_SIDEBAND_REJOIN_SECONDS") for p in problems)
    assert any(p.startswith("BROKER_SIDEBAND_PING_SECONDS") for p in problems)


def test_the_user_hash_key_is_per_tenant_and_never_shown() -> None:
    settings = load_settings(multi(ACME_USER_HASH_KEY=HASH_KEY))

    assert settings.tenant("acme").user_hash_key == Secret(HASH_KEY)
    assert settings.tenant("globex-eu").user_hash_key is None
    assert CANARY not in repr(settings)
    assert CANARY not in json.dumps(describe_settings(settings))


def test_metrics_listener_settings() -> None:
    default = load_settings(env())
    assert (default.metrics_port, default.metrics_host) == (None, None)  # /metrics on the API
    own = load_settings(env(METRICS_PORT="9090"))
    assert (own.metrics_port, own.metrics_host) == (9090, None)  # on BROKER_HOST
    local = load_settings(env(METRICS_PORT="9090", METRICS_HOST="127.0.0.1"))
    assert (local.metrics_port, local.metrics_host) == (9090, "127.0.0.1")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"METRICS_PORT": "8080"}, "BROKER_METRICS_PORT: must differ from BROKER_PORT (8080)"),
        ({"METRICS_PORT": "0"}, "BROKER_METRICS_PORT: must be an integer from 1 to 65535"),
        ({"METRICS_PORT": "tcp://10.0.0.1:9090"}, "BROKER_METRICS_PORT: must be an integer"),
        ({"METRICS_HOST": "127.0.0.1"}, "BROKER_METRICS_HOST: has no effect without"),
        ({"DEV_ALLOWED_HOSTS": "devbox:8080"}, "'devbox:8080' is not a host name"),
        ({"DEV_ALLOWED_HOSTS": "http://devbox"}, "'http://devbox' is not a host name"),
        ({"DEV_ALLOWED_HOSTS": "a b"}, "'a b' is not a host name"),
    ],
)
def test_metrics_and_dev_host_problems(overrides: dict[str, str], expected: str) -> None:
    problems = problems_of(env(**overrides))
    assert any(expected in p for p in problems), problems


def test_dev_allowed_hosts_are_names_lower_cased() -> None:
    assert load_settings(env()).dev_allowed_hosts == ()
    settings = load_settings(env(DEV_ALLOWED_HOSTS=" DevBox.lan, .dev.test ,[::2],*"))
    assert settings.dev_allowed_hosts == ("devbox.lan", ".dev.test", "[::2]", "*")


def test_a_gemini_tenant_defaults_to_googles_endpoint_and_v1alpha() -> None:
    settings = load_settings(
        {
            "BROKER_UPSTREAM": "gemini",
            "BROKER_UPSTREAM_API_KEY": "g-key",
            "BROKER_JWT_SECRET": "s" * 32,
        }
    )
    tenant = settings.tenants[0]
    assert (tenant.upstream, tenant.upstream_url) == (
        "gemini",
        "https://generativelanguage.googleapis.com",
    )
    assert tenant.gemini_api_version == "v1alpha"
    beta = load_settings(
        {
            "BROKER_UPSTREAM": "gemini",
            "BROKER_UPSTREAM_API_KEY": "g-key",
            "BROKER_JWT_SECRET": "s" * 32,
            "BROKER_GEMINI_API_VERSION": "v1beta",
        }
    )
    assert beta.tenants[0].gemini_api_version == "v1beta"
    with pytest.raises(ConfigError, match="GEMINI_API_VERSION: must be one of v1alpha, v1beta"):
        load_settings(
            {
                "BROKER_UPSTREAM": "gemini",
                "BROKER_UPSTREAM_API_KEY": "g-key",
                "BROKER_JWT_SECRET": "s" * 32,
                "BROKER_GEMINI_API_VERSION": "v2",
            }
        )


def test_config_check_warns_about_unmetered_budgets_and_unpriced_models() -> None:
    from service.config.settings import describe_settings

    policy = {
        "default_role": "reader",
        "roles": {
            "reader": {"models": ["gpt-realtime", "my-finetune"], "daily_usd_budget": 1.0},
            "caller": {"models": ["gpt-realtime"], "daily_usd_budget": 1.0, "mint": False},
        },
    }
    base = {"BROKER_UPSTREAM_API_KEY": "k", "BROKER_JWT_SECRET": "s" * 32}
    openai = describe_settings(load_settings({**base, "BROKER_POLICY": json.dumps(policy)}))
    assert openai["warnings"] == [
        "tenant default: role reader has a money budget and may mint client secrets, whose "
        'sessions are not metered; set "mint": false to keep its usage within the budget',
        "tenant default: no price for my-finetune; its usage is counted but costs nothing "
        "(set BROKER_PRICES)",
    ]
    gemini_policy = {"roles": {"reader": {"models": ["gemini-live"], "daily_usd_budget": 1.0}}}
    gemini = describe_settings(
        load_settings(
            {**base, "BROKER_UPSTREAM": "gemini", "BROKER_POLICY": json.dumps(gemini_policy)}
        )
    )
    # Nothing of a Gemini tenant is metered: no model is "unpriced", and a budget never fills.
    tenants = gemini["tenants"]
    assert isinstance(tenants, dict)
    assert tenants["default"]["unpriced_models"] == []
    assert gemini["warnings"] == [
        "tenant default: role reader has a money budget, but a Gemini tenant's sessions are "
        "not metered (they run between the browser and Google): the budget never fills"
    ]
