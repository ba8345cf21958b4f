"""The client of Google's Gemini API for a tenant with `UPSTREAM=gemini`: ephemeral Live
tokens (`POST /{GEMINI_API_VERSION}/auth_tokens`, the key in `x-goog-api-key`).

Its one call takes the send path OpenAIUpstream's calls take (service.upstream.http's
`Sender`): one pooled transport, one overall deadline, at most one retry (a token minted
twice is one unused token, not a second session), and Google's answers mapped onto the
broker's errors so that no httpx exception and no upstream text that could carry a secret
crosses this module:

- 400 → `InvalidRequest` with Google's message (anything key- or token-shaped masked),
  except a refused API key (Google says so with a 400, `API_KEY_INVALID`);
- a refused key, 401, 403 → `UpstreamError` 502: the server key is the operator's problem;
- 404 → `UpstreamError` 502: no `auth_tokens` at that API version (GEMINI_API_VERSION);
- 429 → `UpstreamUnavailable` 503, Google's retry delay passed on as `Retry-After`;
- 500/502/503/504 → retried once, then 503 for a 503, else 502; other statuses, and an
  answer without a token name → `UpstreamError` 502; connection failures → 503 (after
  one retry); no answer within the deadline → `UpstreamTimeout` 504.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

import httpx

from service.errors import InvalidRequest, UpstreamError, UpstreamUnavailable
from service.redact import Secret
from service.upstream.http import (
    MISCONFIGURED,
    USER_AGENT,
    Observer,
    Sender,
    default_transport,
    error_object,
    json_of,
    scrub,
)

KEY_HEADER = "x-goog-api-key"
# 500 too, on purpose (OpenAI's client retries only 502/503/504): Google documents a 500
# as an internal error to retry, and a token minted twice is one unused token, not a
# second session.
RETRIED_STATUSES = frozenset({500, 502, 503, 504})
NO_ENDPOINT = (
    "The upstream has no auth_tokens endpoint at this API version: check the tenant's "
    "GEMINI_API_VERSION and UPSTREAM_URL."
)
# Google API keys (AIza...) and ephemeral tokens (auth_tokens/...) are masked from messages.
_SECRET_LIKE = re.compile(r"AIza[0-9A-Za-z_\-]{20,}|auth_tokens/[A-Za-z0-9_\-.]+")
# Seconds: `Retry-After: 30`, or a Duration in JSON (`"30s"`, `"1.5s"`).
_DELAY = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)s?")
_OK = (200,)


class GeminiUpstream:
    """Ephemeral Live tokens from one Gemini API endpoint (`base_url`, e.g.
    https://generativelanguage.googleapis.com) at `api_version` (v1alpha, v1beta), with
    the tenant's key. `observer(seconds, error)` is called after every call (metrics)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: Secret | None,
        api_version: str = "v1alpha",
        transport: httpx.AsyncBaseTransport | None = None,
        deadline: float = 10.0,
        connect_timeout: float = 2.0,
        observer: Observer | None = None,
    ) -> None:
        self._api_key = api_key
        self._sender = Sender(
            transport if transport is not None else default_transport(),
            deadline=deadline,
            retried_statuses=RETRIED_STATUSES,
            raise_for_status=self._raise_for_status,
            observer=observer,
        )
        self._url = httpx.URL(f"{base_url.rstrip('/')}/{api_version}/auth_tokens")
        timeout = httpx.Timeout(deadline, connect=min(connect_timeout, deadline))
        self._extensions = {"timeout": timeout.as_dict()}

    def __repr__(self) -> str:
        return f"GeminiUpstream(url={str(self._url)!r})"

    async def create_auth_token(self, body: bytes) -> dict[str, Any]:
        """POST `body` (an AuthToken, as JSON) and return Google's answer, whose `name`
        (`auth_tokens/...`) is the token. Retried once, as OpenAI's mints are."""
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        if self._api_key is not None:
            headers[KEY_HEADER] = self._api_key.reveal()
        request = httpx.Request(
            "POST", self._url, headers=headers, content=body, extensions=self._extensions
        )
        answer = json_of(await self._sender.send(request, _OK, retry=True))
        if (
            not isinstance(answer, dict)
            or not isinstance(answer.get("name"), str)
            or not answer["name"]
        ):
            raise UpstreamError("The upstream sent a token the broker could not read.")
        return answer

    async def aclose(self) -> None:
        await self._sender.aclose()

    def _raise_for_status(self, response: httpx.Response) -> NoReturn:
        """A refused answer (500/502/503/504 are the Sender's: retried) as the broker's error."""
        status = response.status_code
        error = error_object(response)
        if status in (401, 403) or _key_refused(error):
            raise UpstreamError(MISCONFIGURED)
        if status == 400:
            raise InvalidRequest(
                self._scrub(error.get("message")) or "The upstream refused the request."
            )
        if status == 404:
            raise UpstreamError(NO_ENDPOINT)
        if status == 429:
            delay = _retry_delay(response, error)
            raise UpstreamUnavailable(
                "The upstream is rate limiting the broker; try again shortly.",
                headers={"Retry-After": delay} if delay else None,
            )
        raise UpstreamError(f"The upstream refused or failed (HTTP {status}).")

    def _scrub(self, text: object) -> str:
        """Google's own words, only after masking anything secret-shaped and the key."""
        return scrub(text, self._api_key, _SECRET_LIKE)


def _details(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _key_refused(error: dict[str, Any]) -> bool:
    return any(d.get("reason") == "API_KEY_INVALID" for d in _details(error))


def _retry_delay(response: httpx.Response, error: dict[str, Any]) -> str | None:
    """Whole seconds, rounded up, from `Retry-After` or Google's RetryInfo (`"30s"`)."""
    candidates = [response.headers.get("retry-after")]
    candidates += [d.get("retryDelay") for d in _details(error)]
    for value in candidates:
        if isinstance(value, str) and (match := _DELAY.fullmatch(value.strip())):
            return str(max(1, math.ceil(float(match.group(1)))))
    return None
