from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from service.errors import ConfigError
from service.policy import default_policy
from service.redact import Secret
from service.settings import (
    MASK,
    Settings,
    TenantSettings,
    describe_settings,
    env_prefix,
    load_settings,
    masked_redis_url,
)

# Distinctive values, so that a leak is found by a plain substring search.
UPSTREAM_KEY = "sk-upstream-LEAKCANARY-0123456789"
JWT_SECRET = "jwt-secret-LEAKCANARY-0123456789abcdef"
ADMIN_KEY = "admin-key-LEAKCANARY-0123"
REDIS_PASSWORD = "redispw-LEAKCANARY"
CANARY = "LEAKCANARY"

BASE = {"BROKER_UPSTREAM_API_KEY": UPSTREAM_KEY, "BROKER_JWT_SECRET": JWT_SECRET}


def env(**overrides: str) -> dict[str, str]:
    """A complete single-tenant environment, plus `overrides` (BROKER_ is added)."""
    return {**BASE, **{f"BROKER_{k}": v for k, v in overrides.items()}}


def problems_of(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(environ)
    return info.value.problems


def one_tenant(environ: dict[str, str]) -> TenantSettings:
    settings = load_settings(environ)
    assert len(settings.tenants) == 1
    return settings.tenants[0]


def pem(key: object) -> str:
    public = key.public_key()  # type: ignore[attr-defined]
    data: bytes = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data.decode()


def multi(**overrides: str) -> dict[str, str]:
    """Two tenants, each with its own issuer and audience."""
    return {
        **BASE,
        "BROKER_TENANTS": "acme,globex-eu",
        "BROKER_ACME_JWT_ISSUER": "https://acme.example",
        "BROKER_ACME_JWT_AUDIENCE": "broker",
        "BROKER_GLOBEX_EU_JWT_ISSUER": "https://globex.example",
        "BROKER_GLOBEX_EU_JWT_AUDIENCE": "broker",
        **{f"BROKER_{k}": v for k, v in overrides.items()},
    }


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
    ({"UPSTREAM_API_KEY": ""}, "BROKER_UPSTREAM_API_KEY: required unless UPSTREAM=fake"),
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
     "tenant default: POLICY: roles.reader.voices: must be a non-empty list"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), INVALID_CASES)
def test_validation_rule(overrides: dict[str, str], expected: str) -> None:
    problems = problems_of(env(**overrides))

    assert any(expected in p for p in problems), problems


def test_tenant_problems_name_the_tenant() -> None:
    problems = problems_of(env(UPSTREAM="nope"))

    assert problems == [
        "tenant default: BROKER_UPSTREAM: must be one of openai, azure, fake, not 'nope'"
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


# --- unknown variables ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "hint"),
    [
        ("BROKER_JWT_SECRT", "did you mean BROKER_JWT_SECRET?"),
        ("BROKER_UPSTREAM_APIKEY", "did you mean BROKER_UPSTREAM_API_KEY?"),
        ("BROKER_ADMIN_API_KEY_FLE", "did you mean BROKER_ADMIN_API_KEY_FILE?"),
        ("BROKER_DEFAULT_REDIS_URL", "REDIS_URL is global: set BROKER_REDIS_URL"),
        ("BROKER_ACME_JWT_ISSUER", "'acme' is not in BROKER_TENANTS (default)"),
        ("BROKER_SERVICE_HOST", "enableServiceLinks: false"),
        ("BROKER_PORT_8080_TCP", "enableServiceLinks: false"),
    ],
)
def test_unknown_variable_is_an_error_with_a_hint(var: str, hint: str) -> None:
    problems = problems_of({**BASE, var: "whatever-LEAKCANARY"})

    assert len(problems) == 1
    assert problems[0].startswith(f"{var}: unknown variable")
    assert hint in problems[0]
    assert CANARY not in problems[0]


def test_unknown_variable_without_a_close_name_has_no_hint() -> None:
    assert problems_of({**BASE, "BROKER_ZZZ": "1"}) == ["BROKER_ZZZ: unknown variable"]


def test_other_variables_are_ignored() -> None:
    assert load_settings({**BASE, "PATH": "/bin", "BROKERAGE": "x", "broker_port": "1"})


def test_names_prefixed_with_a_configured_tenant_are_known() -> None:
    settings = load_settings(multi(GLOBEX_EU_JWT_LEEWAY_SECONDS="5", GLOBEX_EU_POLICY_FILE=""))

    assert settings.tenant("globex-eu").jwt_leeway_seconds == 5


def test_unknown_prefixed_variable_in_a_multi_tenant_setup() -> None:
    problems = problems_of(multi(ACMEE_JWT_SECRET=JWT_SECRET))

    assert problems == [
        "BROKER_ACMEE_JWT_SECRET: unknown variable; 'acmee' is not in BROKER_TENANTS "
        "(acme, globex-eu); did you mean BROKER_ACME_JWT_SECRET?"
    ]


def test_env_prefix() -> None:
    assert env_prefix("globex-eu") == "BROKER_GLOBEX_EU_"


# --- per-tenant override and fallback ------------------------------------------------------


def test_tenant_variable_overrides_the_global_one_and_others_fall_back() -> None:
    settings = load_settings(
        multi(
            UPSTREAM_API="beta",
            ACME_UPSTREAM_API="ga",
            JWT_LEEWAY_SECONDS="10",
            GLOBEX_EU_CORS_ORIGINS="https://globex.example",
        )
    )
    acme, globex = settings.tenant("acme"), settings.tenant("globex-eu")

    assert (acme.upstream_api, globex.upstream_api) == ("ga", "beta")
    assert (acme.jwt_leeway_seconds, globex.jwt_leeway_seconds) == (10, 10)
    assert (acme.cors_origins, globex.cors_origins) == ((), ("https://globex.example",))
    assert acme.jwt_issuer == "https://acme.example"


def test_a_lone_tenant_may_use_its_prefix() -> None:
    tenant = one_tenant(env(DEFAULT_UPSTREAM_API="beta", UPSTREAM_API="ga"))

    assert tenant.upstream_api == "beta"


def test_a_tenant_key_replaces_the_global_key_and_its_algorithms() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    environ = multi(JWT_ALGORITHMS="HS512", ACME_JWT_PUBLIC_KEY=pem(key))

    settings = load_settings(environ)

    acme, globex = settings.tenant("acme"), settings.tenant("globex-eu")
    assert (acme.jwt_secret, acme.jwt_public_key, acme.jwt_algorithms) == (
        None,
        pem(key),
        ("ES256",),
    )
    assert (globex.jwt_secret, globex.jwt_algorithms) == (Secret(JWT_SECRET), ("HS512",))


def test_a_tenant_problem_names_the_tenant_and_the_variable_used() -> None:
    problems = problems_of(multi(ACME_JWT_LEEWAY_SECONDS="999", UPSTREAM="bad"))

    assert (
        "tenant acme: BROKER_ACME_JWT_LEEWAY_SECONDS: must be an integer from 0 to 300" in problems
    )
    assert any(p.startswith("tenant globex-eu: BROKER_UPSTREAM: must be one of") for p in problems)


def test_missing_setting_names_both_spellings_with_several_tenants() -> None:
    environ = multi()
    del environ["BROKER_UPSTREAM_API_KEY"]

    problems = problems_of(environ)

    assert (
        "tenant acme: BROKER_ACME_UPSTREAM_API_KEY or BROKER_UPSTREAM_API_KEY: "
        "required unless UPSTREAM=fake" in problems
    )


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


def test_issuer_and_audience_are_optional_with_one_tenant() -> None:
    tenant = one_tenant(env())

    assert (tenant.jwt_issuer, tenant.jwt_audience) == (None, None)


# --- _FILE variants ------------------------------------------------------------------------

FILE_CASES: list[tuple[str, str, Callable[[Settings], object]]] = [
    ("UPSTREAM_API_KEY", UPSTREAM_KEY, lambda s: s.tenants[0].upstream_api_key),
    ("JWT_SECRET", JWT_SECRET, lambda s: s.tenants[0].jwt_secret),
    ("ADMIN_API_KEY", ADMIN_KEY, lambda s: s.tenants[0].admin_api_key),
    ("REDIS_URL", f"redis://:{REDIS_PASSWORD}@h:6379", lambda s: s.redis_url),
]


@pytest.mark.parametrize(("setting", "value", "read"), FILE_CASES)
def test_secret_from_file_strips_one_trailing_newline(
    tmp_path: Path, setting: str, value: str, read: Callable[[Settings], object]
) -> None:
    path = tmp_path / "secret"
    path.write_text(value + "\n")
    environ = {k: v for k, v in env().items() if k != f"BROKER_{setting}"}
    environ[f"BROKER_{setting}_FILE"] = str(path)

    assert read(load_settings(environ)) == Secret(value)


def test_only_one_trailing_newline_is_stripped(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(ADMIN_KEY.encode() + b"\r\n\n")

    tenant = one_tenant(env(ADMIN_API_KEY_FILE=str(path)))

    assert tenant.admin_api_key == Secret(ADMIN_KEY + "\r\n")


@pytest.mark.parametrize(("setting", "value", "read"), FILE_CASES)
def test_setting_both_a_value_and_its_file_is_an_error(
    tmp_path: Path, setting: str, value: str, read: Callable[[Settings], object]
) -> None:
    path = tmp_path / "secret"
    path.write_text(value)

    problems = problems_of(env(**{setting: value, f"{setting}_FILE": str(path)}))

    assert any(
        f"BROKER_{setting} and BROKER_{setting}_FILE are both set; set only one" in p
        for p in problems
    )
    assert not any(CANARY in p for p in problems)


def test_public_key_from_file(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text(pem(ed25519.Ed25519PrivateKey.generate()))

    tenant = one_tenant(env(JWT_SECRET="", JWT_PUBLIC_KEY_FILE=str(path)))

    assert tenant.jwt_public_key is not None
    assert tenant.jwt_public_key.startswith("-----BEGIN PUBLIC KEY-----")
    assert tenant.jwt_algorithms == ("EdDSA",)


def test_unreadable_file_is_a_problem_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"

    problems = problems_of(env(JWT_SECRET="", JWT_SECRET_FILE=str(missing)))

    assert problems == [
        f"tenant default: BROKER_JWT_SECRET_FILE: cannot read {str(missing)!r}: "
        "No such file or directory"
    ]


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    problems = problems_of(env(REDIS_URL_FILE=str(tmp_path)))

    assert problems == [f"BROKER_REDIS_URL_FILE: cannot read {str(tmp_path)!r}: Is a directory"]


@pytest.mark.parametrize(("content", "why"), [(b"\xff" + CANARY.encode(), "is not UTF-8 text"),
                                              (b"\n", "is empty")])  # fmt: skip
def test_bad_file_content_is_a_problem_never_printed(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)

    problems = problems_of(env(ADMIN_API_KEY_FILE=str(path)))

    assert problems == [f"tenant default: BROKER_ADMIN_API_KEY_FILE: {str(path)!r} {why}"]


def test_tenant_file_overrides_global_value(tmp_path: Path) -> None:
    path = tmp_path / "acme-key"
    path.write_text("sk-acme")

    settings = load_settings(multi(ACME_UPSTREAM_API_KEY_FILE=str(path)))

    assert settings.tenant("acme").upstream_api_key == Secret("sk-acme")
    assert settings.tenant("globex-eu").upstream_api_key == Secret(UPSTREAM_KEY)


def test_non_secret_settings_have_no_file_form(tmp_path: Path) -> None:
    problems = problems_of(env(JWT_ISSUER_FILE=str(tmp_path)))

    assert problems[0].startswith("BROKER_JWT_ISSUER_FILE: unknown variable")


# --- policy --------------------------------------------------------------------------------

POLICY_JSON = {
    "default_role": "reader",
    "tenant_limits": ["600/minute"],
    "roles": {"reader": {"voices": ["alloy", "verse"], "limits": ["5/minute", "200/day"]}},
}
POLICY_TOML = """\
default_role = "reader"
tenant_limits = ["600/minute"]

[roles.reader]
voices = ["alloy", "verse"]
limits = ["5/minute", "200/day"]
"""


def check_policy(tenant: TenantSettings) -> None:
    assert tenant.policy.default_role == "reader"
    assert [lim.text for lim in tenant.policy.tenant_limits] == ["600/minute"]
    rules = tenant.policy.rules_for("reader")
    assert rules.voices == ("alloy", "verse")
    assert [lim.text for lim in rules.limits] == ["5/minute", "200/day"]


def test_inline_json_policy() -> None:
    check_policy(one_tenant(env(POLICY=json.dumps(POLICY_JSON))))


def test_json_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY_JSON))

    check_policy(one_tenant(env(POLICY_FILE=str(path))))


def test_toml_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "Policy.TOML"
    path.write_text(POLICY_TOML)

    check_policy(one_tenant(env(POLICY_FILE=str(path))))


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("p.toml", "roles = [", "BROKER_POLICY_FILE: invalid TOML: "),
        ("p.json", "{\n  nope", "BROKER_POLICY_FILE: invalid JSON at line 2 column 3: "),
        ("p.json", '{"default_role": Infinity}', "BROKER_POLICY_FILE: invalid JSON: Infinity"),
        ("p.yaml", "roles: {}", "BROKER_POLICY_FILE: must name a .json or .toml file"),
    ],
)
def test_bad_policy_file(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)

    problems = problems_of(env(POLICY_FILE=str(path)))

    assert len(problems) == 1
    assert problems[0].startswith("tenant default: " + expected), problems


def test_policy_problems_are_prefixed_with_the_tenant(tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text('[roles.reader]\nvoices = "alloy"\nlimits = ["5/fortnight"]\n')

    problems = problems_of(multi(ACME_POLICY_FILE=str(path)))

    assert len(problems) == 2
    assert all(p.startswith("tenant acme: POLICY: roles.reader.") for p in problems)
    assert any("roles.reader.voices:" in p for p in problems)
    assert any("roles.reader.limits[0]:" in p for p in problems)


def test_policy_and_policy_file_together_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(POLICY_JSON))

    problems = problems_of(env(POLICY=json.dumps(POLICY_JSON), POLICY_FILE=str(path)))

    assert problems == [
        "tenant default: BROKER_POLICY and BROKER_POLICY_FILE are both set; set only one"
    ]


def test_tenant_policy_file_overrides_global_inline_policy(tmp_path: Path) -> None:
    path = tmp_path / "acme.toml"
    path.write_text(POLICY_TOML)
    global_policy = {"roles": {"reader": {"voices": ["echo"]}}}

    settings = load_settings(multi(POLICY=json.dumps(global_policy), ACME_POLICY_FILE=str(path)))

    check_policy(settings.tenant("acme"))
    assert settings.tenant("globex-eu").policy.rules_for("reader").voices == ("echo",)


# --- PEM keys and algorithms ---------------------------------------------------------------

PEM_CASES: list[tuple[Callable[[], object], tuple[str, ...]]] = [
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), ("RS256",)),
    (lambda: ec.generate_private_key(ec.SECP256R1()), ("ES256",)),
    (lambda: ec.generate_private_key(ec.SECP384R1()), ("ES384",)),
    (lambda: ec.generate_private_key(ec.SECP521R1()), ("ES512",)),
    (ed25519.Ed25519PrivateKey.generate, ("EdDSA",)),
    (ed448.Ed448PrivateKey.generate, ("EdDSA",)),
]


@pytest.mark.parametrize(("make_key", "expected"), PEM_CASES)
def test_algorithm_is_inferred_from_the_pem_key(
    make_key: Callable[[], object], expected: tuple[str, ...]
) -> None:
    tenant = one_tenant(env(JWT_SECRET="", JWT_PUBLIC_KEY=pem(make_key())))

    assert tenant.jwt_algorithms == expected


def test_pem_with_escaped_newlines_on_one_line() -> None:
    text = pem(ec.generate_private_key(ec.SECP256R1()))

    tenant = one_tenant(env(JWT_SECRET="", JWT_PUBLIC_KEY=text.replace("\n", "\\n")))

    assert tenant.jwt_public_key == text


def test_rsa_key_accepts_every_rsa_algorithm() -> None:
    key = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    tenant = one_tenant(env(JWT_SECRET="", JWT_PUBLIC_KEY=key, JWT_ALGORITHMS="PS512,RS384"))

    assert tenant.jwt_algorithms == ("PS512", "RS384")


@pytest.mark.parametrize("algorithms", ["ES384", "RS256", "HS256", "EdDSA"])
def test_algorithm_that_does_not_fit_the_pem_key_is_refused(algorithms: str) -> None:
    key = pem(ec.generate_private_key(ec.SECP256R1()))

    problems = problems_of(env(JWT_SECRET="", JWT_PUBLIC_KEY=key, JWT_ALGORITHMS=algorithms))

    assert problems == [
        f"tenant default: BROKER_JWT_ALGORITHMS: {algorithms} does not fit the configured key"
    ]


def test_unsupported_curve_is_refused() -> None:
    key = pem(ec.generate_private_key(ec.SECP256K1()))

    problems = problems_of(env(JWT_SECRET="", JWT_PUBLIC_KEY=key))

    assert problems == [
        "tenant default: BROKER_JWT_PUBLIC_KEY: key type not supported "
        "(use RSA, EC P-256/384/521 or EdDSA)"
    ]


def test_private_key_pem_is_refused_without_printing_it() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()

    problems = problems_of(env(JWT_SECRET="", JWT_PUBLIC_KEY=private))

    assert problems == [
        "tenant default: BROKER_JWT_PUBLIC_KEY: is not a PEM public key (BEGIN PUBLIC KEY)"
    ]


# --- masking -------------------------------------------------------------------------------


def full_env(tmp_path: Path) -> dict[str, str]:
    secret_file = tmp_path / "jwt"
    secret_file.write_text("file-jwt-secret-LEAKCANARY-0123456789")
    return {
        **multi(),
        "BROKER_REDIS_URL": f"rediss://user:{REDIS_PASSWORD}@redis.internal:6380/0"
        f"?password={REDIS_PASSWORD}&db=0",
        "BROKER_ADMIN_API_KEY": ADMIN_KEY,
        "BROKER_ACME_JWT_SECRET_FILE": str(secret_file),
        "BROKER_ACME_UPSTREAM_API_KEY": "sk-acme-LEAKCANARY",
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
    for field in ("upstream_api_key", "jwt_secret", "admin_api_key"):
        assert acme[field] == MASK
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
