"""The broker's errors in Google's shape, for the Gemini routes; pure.

    {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
               "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "RATE_LIMIT_EXCEEDED", "domain": ..., "metadata": {}},
                           {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": "5s"}]}}

This is what Google's APIs answer (google.rpc.Status in JSON), so that the SDKs raise
their typed errors with the usual fields (`google.genai.errors.ClientError`: `.code`,
`.status`, `.message`). The broker's own code (`rate_limit_exceeded`, `policy_violation`,
...) is kept, upper-cased, as the `ErrorInfo` reason, and a refused field is named in a
`BadRequest` field violation. The HTTP status and headers (`Retry-After`,
`WWW-Authenticate`) are the error's own.
"""

from __future__ import annotations

from typing import Any

from service.errors import BrokerError, RateLimited

DOMAIN = "realtime-token-broker"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
# google.rpc.Code by HTTP status (Google's AIP-193 mapping); what has no code of its own
# there is UNKNOWN (an upstream that refused or broke).
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNKNOWN",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_status(status: int) -> str:
    return STATUSES.get(status, "UNKNOWN" if status >= 500 else "FAILED_PRECONDITION")


def google_error_body(error: BrokerError) -> dict[str, Any]:
    info: dict[str, Any] = {"@type": ERROR_INFO, "reason": error.code.upper(), "domain": DOMAIN}
    if error.param is not None:
        info["metadata"] = {"param": error.param}
    details: list[dict[str, Any]] = [info]
    if error.param is not None:
        violation = {"field": error.param, "description": error.message}
        details.append({"@type": BAD_REQUEST, "fieldViolations": [violation]})
    if isinstance(error, RateLimited):
        details.append({"@type": RETRY_INFO, "retryDelay": f"{error.headers['Retry-After']}s"})
    return {
        "error": {
            "code": error.status,
            "message": error.message,
            "status": google_status(error.status),
            "details": details,
        }
    }
