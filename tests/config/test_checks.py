from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from service.config.settings import TenantSettings, load_settings
from tests.config.environments import (
    POLICY_JSON,
    env,
    multi,
    one_tenant,
    pem,
    problems_of,
)

# --- policy --------------------------------------------------------------------------------

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
    # Named by the variable the operator set, not the setting's bare name.
    assert all(
        p.startswith("tenant acme: BROKER_ACME_POLICY_FILE: roles.reader.") for p in problems
    )
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
