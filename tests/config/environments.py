"""Environments for the settings tests: leak canaries and complete tenant setups."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from service.config.settings import TenantSettings, load_settings
from service.errors import ConfigError

# Distinctive values, so that a leak is found by a plain substring search.
UPSTREAM_KEY = "test-upstream-LEAKCANARY-0123456789"
JWT_SECRET = "jwt-secret-LEAKCANARY-0123456789abcdef"
ADMIN_KEY = "admin-key-LEAKCANARY-0123"
REDIS_PASSWORD = "redispw-LEAKCANARY"
HASH_KEY = "user-hash-key-LEAKCANARY-0123456789"
CANARY = "LEAKCANARY"

BASE = {"BROKER_UPSTREAM_API_KEY": UPSTREAM_KEY, "BROKER_JWT_SECRET": JWT_SECRET}
# A valid policy, read by the policy checks and described with the settings.
POLICY_JSON = {
    "default_role": "reader",
    "tenant_limits": ["600/minute"],
    "roles": {"reader": {"voices": ["alloy", "verse"], "limits": ["5/minute", "200/day"]}},
}


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
