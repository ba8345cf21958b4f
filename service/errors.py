"""The broker's exceptions. Every error a caller can see is one of these.

    BrokerError                     (status, type, code; rendered in one place: web.errors)
    ├── InvalidRequest              400 invalid_request_error  invalid_json | unknown_parameter
    │   │                                                     | invalid_value | policy_violation
    │   ├── NotFound                404 invalid_request_error  not_found
    │   └── Conflict                409 invalid_request_error  conflict (e.g. relay_in_use)
    ├── RequestTooLarge             413 invalid_request_error  request_too_large
    ├── InvalidToken                401 authentication_error   invalid_token
    ├── PermissionDenied            403 permission_error
    │   ├── UserRevoked                                        user_revoked
    │   └── RoleForbidden                                      role_forbidden
    ├── RateLimited                 429 rate_limit_error       rate_limit_exceeded (+ Retry-After)
    │   ├── BudgetExceeded                                     budget_exceeded
    │   └── SpendLimitReached                                  spend_limit_reached
    ├── UpstreamError               502 upstream_error         upstream_error
    ├── ServiceUnavailable          503 service_unavailable
    │   ├── RateLimiterUnavailable                             rate_limiter_unavailable
    │   └── UpstreamUnavailable                                upstream_unavailable
    └── UpstreamTimeout             504 upstream_error         upstream_timeout

    ConfigError                     startup only: every configuration problem at once
    StoreUnavailable                a store backend could not answer (translated by callers)

Messages are written for the caller and never contain a secret: callers pass
the message explicitly, and no exception here formats a token, key or client
secret into its text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class BrokerError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(BrokerError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class UnknownParameter(InvalidRequest):
    code = "unknown_parameter"


class InvalidValue(InvalidRequest):
    code = "invalid_value"


class PolicyViolation(InvalidRequest):
    code = "policy_violation"


class NotFound(InvalidRequest):
    status = 404
    code = "not_found"


class Conflict(InvalidRequest):
    status = 409
    code = "conflict"


class RequestTooLarge(BrokerError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class InvalidToken(BrokerError):
    """Every authentication failure. The message is deliberately the same whatever the
    cause, so that a caller cannot probe which check failed."""

    status = 401
    type = "authentication_error"
    code = "invalid_token"
    MESSAGE = "The bearer token is missing, malformed, expired or not accepted."

    def __init__(self, reason: str = "") -> None:
        super().__init__(
            self.MESSAGE,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
        # Why, as one fixed word (service.auth.tokens REASONS) for the request's access
        # line; never rendered, and never a piece of the token.
        self.reason = reason


class PermissionDenied(BrokerError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class UserRevoked(PermissionDenied):
    code = "user_revoked"

    def __init__(self) -> None:
        super().__init__("This user's access has been revoked.")


class RoleForbidden(PermissionDenied):
    code = "role_forbidden"


class RateLimited(BrokerError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str = "Rate limit exceeded.",
        *,
        retry_after: float,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # Retry-After is whole seconds, rounded up so that a retry at that time succeeds.
        seconds = max(1, int(-(-retry_after // 1)))
        merged = {"Retry-After": str(seconds), **(headers or {})}
        super().__init__(message, code=code, headers=merged)
        self.retry_after = retry_after


class UpstreamError(BrokerError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class ServiceUnavailable(BrokerError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


class RateLimiterUnavailable(ServiceUnavailable):
    code = "rate_limiter_unavailable"

    def __init__(self) -> None:
        super().__init__("The rate limiter is unavailable; try again shortly.")


class UpstreamUnavailable(ServiceUnavailable):
    code = "upstream_unavailable"


class UpstreamTimeout(BrokerError):
    status = 504
    type = "upstream_error"
    code = "upstream_timeout"


class StoreUnavailable(Exception):
    """A store backend (Redis) did not answer in time or refused. Raised by stores,
    translated by callers into the configured failure mode; never rendered directly."""


class ConfigError(Exception):
    """The configuration is incomplete or wrong. Carries every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"- {p}" for p in self.problems))


class BudgetExceeded(RateLimited):
    """The user has spent a money budget (`daily_usd_budget`, `monthly_usd_budget`):
    `Retry-After` is the start of the next UTC day or month."""

    code = "budget_exceeded"


class SpendLimitReached(RateLimited):
    """The tenant's hard monthly spend limit is enforcing: `Retry-After` is the start of
    the next UTC month (or sooner, when an admin raises or deletes the limit)."""

    code = "spend_limit_reached"
