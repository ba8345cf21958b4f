"""The client for OpenAI and Azure OpenAI: one pooled transport per upstream, every call
under one overall deadline, upstream failures translated into the broker's errors
(README "Errors"). Every call, JSON or multipart, takes one send path with one error
mapping (`_call` → `_attempt` → `_raise_for_status`). No httpx exception and no upstream
text that could carry a secret crosses this module's boundary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Callable, Container, Mapping
from typing import Any, Literal, NoReturn
from urllib.parse import quote

import httpx
from httpx_aiohttp import AiohttpTransport

from service import __version__
from service.errors import (
    BrokerError,
    InvalidRequest,
    NotFound,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from service.redact import Secret

logger = logging.getLogger(__name__)

USER_AGENT = f"realtime-token-broker/{__version__}"
SAFETY_IDENTIFIER_HEADER = "OpenAI-Safety-Identifier"
# Measured in bench/upstream_client.py, see docs/upstream-transport.md: the aiohttp
# transport costs a fraction of httpx's default pool per call. The pool is sized for many
# concurrent mints to one host; keep-alive connections are what makes a mint cheap.
MAX_CONNECTIONS = 256
KEEPALIVE_EXPIRY = 30.0
RETRY_BACKOFF = 0.05
RETRIED_STATUSES = frozenset({502, 503, 504})
MISCONFIGURED = "The broker is misconfigured: the upstream refused its credentials."
MAX_MESSAGE_CHARS = 1000
# URLs of fixed paths (the mints', `/realtime/calls`, `/vector_stores`) are built once;
# a path with an id in it (a hangup) is built per call. The bound holds whatever a caller
# passes: a cache keyed by every path ever seen grew by ~0.5 KB a hung-up call.
MAX_CACHED_URLS = 32
# Anything shaped like an OpenAI key or client secret is masked from upstream messages.
_SECRET_LIKE = re.compile(r"\b(?:sk|ek|rk)[-_][A-Za-z0-9_\-*]{4,}")
_SAFE_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# A field path such as `session.audio.input.format` or `tools[0].name`.
_SAFE_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]]{0,199}")
_CONNECTION_FAILURES = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


def default_transport() -> httpx.AsyncBaseTransport:
    """The transport chosen by measurement (docs/upstream-transport.md)."""
    return AiohttpTransport(
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )
    )


class _Retryable(Exception):
    """One attempt failed in a way a second attempt may fix; carries the final error."""

    def __init__(self, error: BrokerError) -> None:
        super().__init__(error.message)
        self.error = error


class OpenAIUpstream:
    """An `Upstream` speaking to OpenAI (`Authorization: Bearer`) or Azure OpenAI (`api-key`;
    the `model` sent is then the deployment name, which is the caller's business).

    Every call, its retry included, finishes within `deadline` seconds or raises
    `UpstreamTimeout` (504). At most one retry, and only when at least a quarter of the
    deadline remains: on a failed or reset connection (then `UpstreamUnavailable`, 503) and
    on upstream 502/503/504 (then 503 for a 503, else `UpstreamError`, 502).

    Upstream answers are mapped so that no upstream text reaches the caller unless it is
    known to be safe:

    - 400 → `InvalidRequest` with upstream's `message` and `param` (secret-shaped words masked);
    - 401/403 → `UpstreamError` 502: the server key is wrong, which is the operator's
      problem, and OpenAI's 401 text echoes part of the key;
    - 404 → `NotFound` with upstream's message;
    - 429 `insufficient_quota` → `UpstreamError` 502 (retrying will not help);
      any other 429 → `UpstreamUnavailable` 503 with upstream's `Retry-After` passed on;
    - other 4xx and 5xx, redirects, and 2xx bodies that are not a JSON object → `UpstreamError`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: Secret | None,
        flavor: Literal["openai", "azure"] = "openai",
        transport: httpx.AsyncBaseTransport | None = None,
        deadline: float = 10.0,
        connect_timeout: float = 2.0,
        observer: Callable[[float, BaseException | None], None] | None = None,
    ) -> None:
        # `observer(seconds, error)` is called after every call (the metrics hook).
        self._observer = observer
        self._base_url = base_url
        self._api_key = api_key
        self._flavor = flavor
        self._deadline = deadline
        self._transport = transport if transport is not None else default_transport()
        # Requests go straight to the transport with URLs and headers built once: an
        # `httpx.AsyncClient`'s per-call URL merging, cookie jar, auth and redirect
        # machinery cost more than the transport itself (bench/README.md), and none of it
        # is wanted here (no cookies, no redirects, no proxies from the environment).
        timeout = httpx.Timeout(deadline, connect=min(connect_timeout, deadline))
        self._extensions = {"timeout": timeout.as_dict()}
        self._urls: dict[str, httpx.URL] = {}  # fixed paths only, at most MAX_CACHED_URLS
        self._base_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}

    def __repr__(self) -> str:
        return f"OpenAIUpstream(base_url={self._base_url!r}, flavor={self._flavor!r})"

    async def create_secret(
        self, path: str, body: bytes, *, safety_identifier: str
    ) -> dict[str, Any]:
        headers = self._headers(safety_identifier)
        headers["Content-Type"] = "application/json"
        response = await self._call(
            "POST", path, content=body, headers=headers, ok=(200,), retry=True
        )
        return _json_object(response)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        safety_identifier: str | None = None,
    ) -> dict[str, Any]:
        headers = self._headers(safety_identifier)
        content = b""
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        response = await self._call(
            method, path, params=params, content=content, headers=headers, ok=(200,), retry=True
        )
        return _json_object(response)

    async def create_call(
        self, sdp: str, session: dict[str, Any], *, safety_identifier: str
    ) -> tuple[str, str]:
        """POST /realtime/calls (multipart: the SDP offer and the session); returns the SDP
        answer and the call id from `Location`. Never retried: a retry that follows a lost
        answer would place a second call."""
        files = {
            "sdp": (None, sdp.encode(), "application/sdp"),
            "session": (None, json.dumps(session).encode(), "application/json"),
        }
        form = httpx.Request("POST", "/", files=files)
        headers = {
            **self._headers(safety_identifier),
            "Accept": "application/sdp",
            "Content-Type": form.headers["Content-Type"],
        }
        response = await self._call(
            "POST", "/realtime/calls", content=form.read(), headers=headers, ok=(201,)
        )
        call_id = response.headers.get("location", "").rstrip("/").rpartition("/")[2]
        if not call_id:
            raise UpstreamError("The upstream sent a call answer the broker could not read.")
        return response.text, call_id

    async def create_live_session(self, body: bytes, *, safety_identifier: str) -> dict[str, Any]:
        """POST /live/sessions. Never retried, as a placed call: a retry after a lost
        answer would start a second session."""
        headers = self._headers(safety_identifier)
        headers["Content-Type"] = "application/json"
        response = await self._call(
            "POST", "/live/sessions", content=body, headers=headers, ok=(200, 201)
        )
        created = _json_object(response)
        session, transport = created.get("session"), created.get("transport")
        if (
            not isinstance(session, dict)
            or not isinstance(session.get("id"), str)
            or not session["id"]
            or not isinstance(transport, dict)
            or not isinstance(transport.get("sdp"), str)
        ):
            raise UpstreamError("The upstream sent a session answer the broker could not read.")
        return created

    async def hangup_call(self, call_id: str) -> None:
        """POST /realtime/calls/{call_id}/hangup."""
        path = f"/realtime/calls/{quote(call_id, safe='')}/hangup"
        await self._call(
            "POST", path, headers=self._headers(None), ok=range(200, 300), fixed_path=False
        )

    async def hangup_live_session(self, session_id: str) -> None:
        """POST /live/sessions/{session_id}/hangup."""
        path = f"/live/sessions/{quote(session_id, safe='')}/hangup"
        await self._call(
            "POST", path, headers=self._headers(None), ok=range(200, 300), fixed_path=False
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _headers(self, safety_identifier: str | None) -> dict[str, str]:
        headers = dict(self._base_headers)
        if self._api_key is not None:
            if self._flavor == "azure":
                headers["api-key"] = self._api_key.reveal()
            else:
                headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        if safety_identifier:
            headers[SAFETY_IDENTIFIER_HEADER] = safety_identifier
        return headers

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes = b"",
        headers: dict[str, str],
        ok: Container[int],
        retry: bool = False,
        fixed_path: bool = True,
    ) -> httpx.Response:
        """One call, its retry included, within the deadline; observed when it ends.
        `fixed_path`: the path holds no id, so its URL may be kept for the next call."""
        started = time.perf_counter()
        url = self._url(path, params, keep=fixed_path)
        try:
            response = await self._within_deadline(method, url, content, headers, ok, retry)
        except BrokerError as exc:
            if self._observer is not None:
                self._observer(time.perf_counter() - started, exc)
            raise
        if self._observer is not None:
            self._observer(time.perf_counter() - started, None)
        return response

    async def _within_deadline(
        self,
        method: str,
        url: httpx.URL,
        content: bytes,
        headers: dict[str, str],
        ok: Container[int],
        retry: bool,
    ) -> httpx.Response:
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self._deadline
        request = httpx.Request(
            method,
            url,
            headers=headers,
            content=content,
            extensions=self._extensions,
        )
        try:
            async with asyncio.timeout_at(deadline_at):
                try:
                    return await self._attempt(request, ok, attempt=1)
                except _Retryable as first:
                    # A retry that cannot finish in time would only turn a clear 502/503
                    # into a 504.
                    if not retry or deadline_at - loop.time() < self._deadline / 4:
                        raise first.error from None
                await asyncio.sleep(RETRY_BACKOFF)
                try:
                    return await self._attempt(request, ok, attempt=2)
                except _Retryable as second:
                    raise second.error from None
        except TimeoutError:
            logger.warning(
                "upstream %s %s: no answer within %.1fs", method, url.path, self._deadline
            )
            raise UpstreamTimeout("The upstream did not answer in time.") from None

    async def _attempt(
        self, request: httpx.Request, ok: Container[int], *, attempt: int
    ) -> httpx.Response:
        method, path = request.method, request.url.path
        try:
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except (*_CONNECTION_FAILURES, httpx.TimeoutException, OSError) as exc:
            # Read, write and pool timeouts: the deadline is spent; the caller answers 504.
            # (A connect timeout is a connection failure; TimeoutError is an OSError.)
            if not isinstance(exc, _CONNECTION_FAILURES) and isinstance(
                exc, (httpx.TimeoutException, TimeoutError)
            ):
                raise TimeoutError from None
            # Refused, reset or dropped connections (or a raw socket error from a transport
            # other than httpx's own): worth one more try on a fresh connection.
            logger.warning(
                "upstream %s %s attempt %d: %s", method, path, attempt, type(exc).__name__
            )
            raise _Retryable(UpstreamUnavailable("The upstream could not be reached.")) from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            logger.warning(
                "upstream %s %s attempt %d: %s", method, path, attempt, type(exc).__name__
            )
            raise UpstreamError("The upstream call failed.") from None
        if response.status_code not in ok:
            logger.warning(
                "upstream %s %s attempt %d: HTTP %d (request id %s)",
                method,
                path,
                attempt,
                response.status_code,
                response.headers.get("x-request-id", "-"),
            )
            self._raise_for_status(response)
        return response

    def _url(self, path: str, params: dict[str, str] | None, *, keep: bool) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(self._base_url.rstrip("/") + path)
            if keep and len(self._urls) < MAX_CACHED_URLS:
                self._urls[path] = url
        return url.copy_merge_params(params) if params else url

    def _raise_for_status(self, response: httpx.Response) -> NoReturn:
        status = response.status_code
        if status in RETRIED_STATUSES:
            if status == 503:
                raise _Retryable(UpstreamUnavailable("The upstream is unavailable."))
            raise _Retryable(UpstreamError(f"The upstream failed (HTTP {status})."))
        if status in (401, 403):
            raise UpstreamError(MISCONFIGURED)
        error = _error_object(response)
        if status == 400:
            code = error.get("code")
            raise InvalidRequest(
                self._scrub(error.get("message")) or "The upstream refused the request.",
                param=self._param(error.get("param")),
                code=code if isinstance(code, str) and _SAFE_CODE.fullmatch(code) else None,
            )
        if status == 404:
            raise NotFound(
                self._scrub(error.get("message")) or "The upstream found no such object."
            )
        if status == 429:
            if error.get("code") == "insufficient_quota":
                raise UpstreamError("The broker's upstream account has run out of quota.")
            retry_after = _retry_after(response.headers.get("retry-after"))
            raise UpstreamUnavailable(
                "The upstream is rate limiting the broker; try again shortly.",
                headers={"Retry-After": retry_after} if retry_after else None,
            )
        if 200 <= status < 300:
            raise UpstreamError(f"The upstream answered with an unexpected status (HTTP {status}).")
        raise UpstreamError(f"The upstream refused or failed (HTTP {status}).")

    def _param(self, param: object) -> str | None:
        if isinstance(param, str) and _SAFE_PARAM.fullmatch(param) and self._scrub(param) == param:
            return param
        return None

    def _scrub(self, text: object) -> str:
        """Upstream's own words, only after masking anything secret-shaped and the key."""
        if not isinstance(text, str):
            return ""
        if self._api_key:
            text = text.replace(self._api_key.reveal(), "**********")
        return _SECRET_LIKE.sub("**********", text)[:MAX_MESSAGE_CHARS]


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UpstreamError("The upstream sent a response the broker could not read.")
    return body


def _error_object(response: httpx.Response) -> dict[str, Any]:
    """OpenAI's `{"error": {...}}`, or empty when the body is something else."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _retry_after(value: str | None) -> str | None:
    """Whole seconds, rounded up; HTTP-dates and nonsense are dropped rather than guessed."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return str(max(1, math.ceil(seconds)))
