from __future__ import annotations

from service.errors import (
    ConfigError,
    InvalidToken,
    RateLimited,
    RateLimiterUnavailable,
    UnknownParameter,
)


def test_error_body_is_openai_shaped() -> None:
    error = UnknownParameter("Unknown parameter: 'x'.", param="x")
    assert error.status == 400
    assert error.body() == {
        "error": {
            "message": "Unknown parameter: 'x'.",
            "type": "invalid_request_error",
            "param": "x",
            "code": "unknown_parameter",
        }
    }


def test_invalid_token_is_the_same_whatever_the_reason() -> None:
    a, b = InvalidToken("expired"), InvalidToken("bad signature")
    assert a.body() == b.body()
    assert a.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert RateLimited(retry_after=0.2).headers["Retry-After"] == "1"
    assert RateLimited(retry_after=11.5).headers["Retry-After"] == "12"
    assert RateLimited(retry_after=12.0).headers["Retry-After"] == "12"


def test_unavailable_and_config_errors() -> None:
    assert RateLimiterUnavailable().status == 503
    assert RateLimiterUnavailable().code == "rate_limiter_unavailable"
    error = ConfigError(["a", "b"])
    assert error.problems == ["a", "b"]
    assert "- a" in str(error)
