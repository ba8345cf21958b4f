"""The broker's errors in Google's shape."""

from __future__ import annotations

from service.errors import (
    InvalidToken,
    NotFound,
    PolicyViolation,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from service.gemini.errors import BAD_REQUEST, ERROR_INFO, RETRY_INFO, google_error_body


def test_a_refused_field_is_named_as_google_names_it() -> None:
    error = PolicyViolation("Not allowed.", param="bidiGenerateContentSetup.model")

    assert google_error_body(error) == {
        "error": {
            "code": 400,
            "message": "Not allowed.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": ERROR_INFO,
                    "reason": "POLICY_VIOLATION",
                    "domain": "realtime-token-broker",
                    "metadata": {"param": "bidiGenerateContentSetup.model"},
                },
                {
                    "@type": BAD_REQUEST,
                    "fieldViolations": [
                        {"field": "bidiGenerateContentSetup.model", "description": "Not allowed."}
                    ],
                },
            ],
        }
    }


def test_a_rate_limit_says_when_to_retry() -> None:
    body = google_error_body(RateLimited(retry_after=4.2))["error"]

    assert (body["code"], body["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert {"@type": RETRY_INFO, "retryDelay": "5s"} in body["details"]


def test_each_status_has_googles_code() -> None:
    statuses = {
        error.status: google_error_body(error)["error"]["status"]
        for error in (
            InvalidToken("expired"),
            NotFound("No."),
            UpstreamError("Broke."),
            UpstreamTimeout("Slow."),
        )
    }
    assert statuses == {
        401: "UNAUTHENTICATED",
        404: "NOT_FOUND",
        502: "UNKNOWN",
        504: "DEADLINE_EXCEEDED",
    }
