"""Google's error shape, as the fake Gemini answers: `{"error": {"code", "message",
"status", "details"?}}` (google.rpc.Status over HTTP), which the SDKs turn into their typed
errors (`google.genai.errors.ClientError`, `ApiError` in JavaScript)."""

from __future__ import annotations

from typing import Any

from service.fake.validate import Refusal

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
}


class GoogleError(Exception):
    """An answer in Google's error shape: HTTP `code`, its canonical status name, and an
    ErrorInfo `reason` in `details` when Google gives one (`API_KEY_INVALID`)."""

    def __init__(self, code: int, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": STATUS.get(self.code, "INTERNAL"),
        }
        if self.reason is not None:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.reason,
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        return {"error": error}


def invalid_payload(refusal: Refusal) -> GoogleError:
    """A shape refusal worded as Google's JSON parser words it."""
    return GoogleError(400, payload_message(refusal))


def payload_message(refusal: Refusal) -> str:
    path = refusal.param or ""
    if refusal.code == "unknown_parameter":
        parent, _, name = path.rpartition(".")
        where = f" at '{parent}'" if parent else ""
        return f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
    if refusal.code == "missing_required_parameter":
        return f"* {path}: required field is not set."
    return f"Invalid JSON payload received. {refusal.message}"
