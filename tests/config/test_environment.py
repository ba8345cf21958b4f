from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from service.config.environment import env_prefix
from service.config.settings import Settings, load_settings
from service.redact import Secret
from tests.config.environments import (
    ADMIN_KEY,
    BASE,
    CANARY,
    HASH_KEY,
    JWT_SECRET,
    REDIS_PASSWORD,
    UPSTREAM_KEY,
    env,
    multi,
    one_tenant,
    pem,
    problems_of,
)

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
        "required unless BROKER_UPSTREAM=fake (dev mode only)" in problems
    )


# --- _FILE variants ------------------------------------------------------------------------

FILE_CASES: list[tuple[str, str, Callable[[Settings], object]]] = [
    ("UPSTREAM_API_KEY", UPSTREAM_KEY, lambda s: s.tenants[0].upstream_api_key),
    ("JWT_SECRET", JWT_SECRET, lambda s: s.tenants[0].jwt_secret),
    ("ADMIN_API_KEY", ADMIN_KEY, lambda s: s.tenants[0].admin_api_key),
    ("USER_HASH_KEY", HASH_KEY, lambda s: s.tenants[0].user_hash_key),
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
