"""The upstream interface the handlers use. Implementations raise only BrokerError
subclasses (UpstreamError, UpstreamUnavailable, UpstreamTimeout, InvalidRequest for a
safe upstream 400, NotFound for an upstream 404): no httpx exception crosses this line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Upstream(Protocol):
    async def create_secret(
        self, path: str, body: bytes, *, safety_identifier: str
    ) -> dict[str, Any]:
        """POST `body` (JSON, encoded by the caller: a mint plan keeps it encoded) to
        `path` (relative to the tenant's UPSTREAM_URL, e.g. "/realtime/client_secrets")
        and return the parsed JSON object."""
        ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        safety_identifier: str | None = None,
    ) -> dict[str, Any]:
        """Any other JSON call (vector stores), same error mapping."""
        ...

    async def create_call(
        self, sdp: str, session: dict[str, Any], *, safety_identifier: str
    ) -> tuple[str, str]:
        """POST /realtime/calls (WebRTC, GA session); (SDP answer, call id). Not retried."""
        ...

    async def create_live_session(self, body: bytes, *, safety_identifier: str) -> dict[str, Any]:
        """POST /live/sessions (GPT-Live over WebRTC: `{session, transport}` as JSON);
        the created session `{session: {id}, transport: {type, sdp}}`. Not retried."""
        ...

    async def hangup_call(self, call_id: str) -> None:
        """POST /realtime/calls/{call_id}/hangup; NotFound when the call is gone."""
        ...

    async def hangup_live_session(self, session_id: str) -> None:
        """POST /live/sessions/{session_id}/hangup (ends a GPT-Live session over REST, with
        or without its sideband); NotFound when the session is gone."""
        ...

    async def aclose(self) -> None: ...
