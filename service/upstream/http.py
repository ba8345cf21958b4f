"""What every upstream client shares (OpenAI's and Azure's in service.upstream.openai,
Gemini's in service.upstream.gemini): the pooled transport, one send path (`Sender`:
one overall deadline, at most one retry, transport failures mapped onto the broker's
errors, the metrics observer), and the helpers that read an upstream's error answer
without letting a secret through.

Each provider keeps what differs: its URLs and auth header, which statuses a second
attempt may fix (`retried_statuses`), how its other refusals map onto the broker's errors
(`raise_for_status`) and what a secret looks like in its messages.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Container
from typing import Any, NoReturn

import httpx
from httpx_aiohttp import AiohttpTransport

from service import __version__
from service.errors import BrokerError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from service.redact import Secret

logger = logging.getLogger(__name__)

USER_AGENT = f"realtime-token-broker/{__version__}"
# Measured in bench/upstream_client.py, see docs/upstream-transport.md: the aiohttp
# transport costs a fraction of httpx's default pool per call. The pool is sized for many
# concurrent mints to one host; keep-alive connections are what makes a mint cheap.
MAX_CONNECTIONS = 256
KEEPALIVE_EXPIRY = 30.0
RETRY_BACKOFF = 0.05
MISCONFIGURED = "The broker is misconfigured: the upstream refused its credentials."
MAX_MESSAGE_CHARS = 1000
MASK = "**********"
CONNECTION_FAILURES = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)

# `observer(seconds, error)`: called after every call, its retry included (the metrics hook).
Observer = Callable[[float, BaseException | None], None]
# A provider's mapping of a refused answer (any status not retried) onto the broker's errors.
StatusMapper = Callable[[httpx.Response], NoReturn]


def default_transport() -> httpx.AsyncBaseTransport:
    """The transport chosen by measurement (docs/upstream-transport.md)."""
    return AiohttpTransport(
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )
    )


class Retryable(Exception):
    """One attempt failed in a way a second attempt may fix; carries the final error."""

    def __init__(self, error: BrokerError) -> None:
        super().__init__(error.message)
        self.error = error


class Sender:
    """One upstream's send path. `send` finishes within `deadline` seconds or raises
    `UpstreamTimeout` (504), its retry included. A call that may be retried is retried at
    most once, and only when at least a quarter of the deadline remains: on a failed or
    reset connection (then `UpstreamUnavailable`, 503) and on a status in
    `retried_statuses` (then 503 for a 503, else `UpstreamError`, 502). Any other status
    not in the call's `ok` goes to `raise_for_status`. `observer` sees every call."""

    __slots__ = ("_deadline", "_observer", "_raise_for_status", "_retried", "_transport")

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        deadline: float,
        retried_statuses: Container[int],
        raise_for_status: StatusMapper,
        observer: Observer | None = None,
    ) -> None:
        self._transport = transport
        self._deadline = deadline
        self._retried = retried_statuses
        self._raise_for_status = raise_for_status
        self._observer = observer

    async def send(
        self, request: httpx.Request, ok: Container[int], *, retry: bool
    ) -> httpx.Response:
        """The answer to `request`, read whole, its status in `ok`; or a BrokerError."""
        started = time.perf_counter()
        try:
            response = await self._within_deadline(request, ok, retry)
        except BrokerError as exc:
            if self._observer is not None:
                self._observer(time.perf_counter() - started, exc)
            raise
        if self._observer is not None:
            self._observer(time.perf_counter() - started, None)
        return response

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _within_deadline(
        self, request: httpx.Request, ok: Container[int], retry: bool
    ) -> httpx.Response:
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + self._deadline
        try:
            async with asyncio.timeout_at(deadline_at):
                try:
                    return await self._attempt(request, ok, attempt=1)
                except Retryable as first:
                    # A retry that cannot finish in time would only turn a clear 502/503
                    # into a 504.
                    if not retry or deadline_at - loop.time() < self._deadline / 4:
                        raise first.error from None
                await asyncio.sleep(RETRY_BACKOFF)
                try:
                    return await self._attempt(request, ok, attempt=2)
                except Retryable as second:
                    raise second.error from None
        except TimeoutError:
            logger.warning(
                "upstream %s %s: no answer within %.1fs",
                request.method,
                request.url.path,
                self._deadline,
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
        except (*CONNECTION_FAILURES, httpx.TimeoutException, OSError) as exc:
            # Read, write and pool timeouts: the deadline is spent; the caller answers 504.
            # (A connect timeout is a connection failure; TimeoutError is an OSError.)
            if not isinstance(exc, CONNECTION_FAILURES) and isinstance(
                exc, (httpx.TimeoutException, TimeoutError)
            ):
                raise TimeoutError from None
            # Refused, reset or dropped connections (or a raw socket error from a transport
            # other than httpx's own): worth one more try on a fresh connection.
            logger.warning(
                "upstream %s %s attempt %d: %s", method, path, attempt, type(exc).__name__
            )
            raise Retryable(UpstreamUnavailable("The upstream could not be reached.")) from None
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            logger.warning(
                "upstream %s %s attempt %d: %s", method, path, attempt, type(exc).__name__
            )
            raise UpstreamError("The upstream call failed.") from None
        status = response.status_code
        if status not in ok:
            logger.warning(
                "upstream %s %s attempt %d: HTTP %d (request id %s)",
                method,
                path,
                attempt,
                status,
                response.headers.get("x-request-id", "-"),
            )
            if status in self._retried:
                if status == 503:
                    raise Retryable(UpstreamUnavailable("The upstream is unavailable."))
                raise Retryable(UpstreamError(f"The upstream failed (HTTP {status})."))
            self._raise_for_status(response)
        return response


def json_of(response: httpx.Response) -> object:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def error_object(response: httpx.Response) -> dict[str, Any]:
    """The `{"error": {...}}` both OpenAI and Google answer with, or empty when the body
    is something else."""
    body = json_of(response)
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def scrub(text: object, api_key: Secret | None, secret_like: re.Pattern[str]) -> str:
    """An upstream's own words, only after masking the key and anything `secret_like`
    (a provider's key or token shapes); at most MAX_MESSAGE_CHARS."""
    if not isinstance(text, str):
        return ""
    if api_key:
        text = text.replace(api_key.reveal(), MASK)
    return secret_like.sub(MASK, text)[:MAX_MESSAGE_CHARS]
