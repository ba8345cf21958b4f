"""Configuration from the environment (DESIGN.md section 4), read once into frozen values.

SKELETON: the dataclasses below are the agreed shape; `load_settings` is being written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from service.policy_model import Policy
from service.redact import Secret

UpstreamKind = Literal["openai", "azure", "fake"]
UpstreamApi = Literal["ga", "beta"]
FailureMode = Literal["closed", "open"]
LogFormat = Literal["json", "console"]


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


def load_settings(environ: Mapping[str, str], *, dev: bool = False) -> Settings:
    raise NotImplementedError
