"""The client for OpenAI and Azure OpenAI: one pooled transport per upstream, every call
under one overall deadline, upstream failures translated into the broker's errors
(README "Errors"). Every call, JSON or multipart, takes one send path with one error
mapping (`_call` → service.upstream.http's `Sender` → `_raise_for_status`). No httpx
exception and no upstream text that could carry a secret crosses this module's boundary.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Container, Mapping
from typing import Any, Literal, NoReturn
from urllib.parse import quote

import httpx

from service.errors import InvalidRequest, NotFound, UpstreamError, UpstreamUnavailable
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

SAFETY_IDENTIFIER_HEADER = "OpenAI-Safety-Identifier"
RETRIED_STATUSES = frozenset({502, 503, 504})
# URLs of fixed paths (the mints', `/realtime/calls`, `/vector_stores`) are built once;
# a path with an id in it (a hangup) is built per call. The bound holds whatever a caller
# passes: a cache keyed by every path ever seen grew by ~0.5 KB a hung-up call.
MAX_CACHED_URLS = 32
# Anything shaped like an OpenAI key or client secret is masked from upstream messages.
_SECRET_LIKE = re.compile(r"\b(?:sk|ek|rk)[-_][A-Za-z0-9_\-*]{4,}")
_SAFE_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# A field path such as `session.audio.input.format` or `tools[0].name`.
_SAFE_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]]{0,199}")


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
        observer: Observer | None = None,
    ) -> None:
        # `observer(seconds, error)` is called after every call (the metrics hook).
        self._base_url = base_url
        self._api_key = api_key
        self._flavor = flavor
        self._transport = transport if transport is not None else default_transport()
        self._sender = Sender(
            self._transport,
            deadline=deadline,
            retried_statuses=RETRIED_STATUSES,
            raise_for_status=self._raise_for_status,
            observer=observer,
        )
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
            content = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
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
            "session": (None, json.dumps(session, allow_nan=False).encode(), "application/json"),
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
        await self._sender.aclose()

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
        url = self._url(path, params, keep=fixed_path)
        request = httpx.Request(
            method, url, headers=headers, content=content, extensions=self._extensions
        )
        return await self._sender.send(request, ok, retry=retry)

    def _url(self, path: str, params: dict[str, str] | None, *, keep: bool) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(self._base_url.rstrip("/") + path)
            if keep and len(self._urls) < MAX_CACHED_URLS:
                self._urls[path] = url
        return url.copy_merge_params(params) if params else url

    def _raise_for_status(self, response: httpx.Response) -> NoReturn:
        """A refused answer (502/503/504 are the Sender's: retried) as the broker's error."""
        status = response.status_code
        if status in (401, 403):
            raise UpstreamError(MISCONFIGURED)
        error = error_object(response)
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
        return scrub(text, self._api_key, _SECRET_LIKE)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = json_of(response)
    if not isinstance(body, dict):
        raise UpstreamError("The upstream sent a response the broker could not read.")
    return body


def _retry_after(value: str | None) -> str | None:
    """Whole seconds, rounded up; HTTP-dates and nonsense are dropped rather than guessed."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return str(max(1, math.ceil(seconds)))
