"""Dev mode's wiring: the broker app on the in-process fake upstream.

The one module outside `service.fake` that imports the fake. `token-broker dev` and the
tests build their apps here; `token-broker serve` builds them with `create_app` alone,
which refuses a tenant whose upstream is `fake` (its secrets are not valid at OpenAI).

Dev mode listens on 127.0.0.1, which a web page can still reach: a page whose own name
its DNS server re-points at 127.0.0.1 (DNS rebinding) is same-origin with whatever
answers there, and would get owner tokens from `/dev/token`. So `token-broker dev`
answers only requests whose `Host` is a local name (`LocalHostsOnly`), as Vite's and
webpack's dev servers do, and the fake behind `/dev/fake` checks its callers as OpenAI
does: the fake tenant's key (one generated here, when the tenant has none, and given to
the broker's upstream client) or a client secret it minted, where OpenAI takes one.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from service.calls.supervised import CallOptions
from service.clock import Clock, system_clock
from service.config.settings import Settings
from service.fake.inprocess import InProcessFakes
from service.redact import Secret
from service.web.app import BrokerApp, call_options_of, create_app, sideband_connector

# The names a page on this machine uses; more with BROKER_DEV_ALLOWED_HOSTS.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# A Host header: a name or a bracketed IPv6 literal, then an optional port.
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]]+)(?::[0-9]{1,5})?")

# Plain ASGI types: this module does not import the web framework (tests/test_layers.py).
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_App = Callable[[MutableMapping[str, Any], _Receive, _Send], Awaitable[None]]


def create_dev_app(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    call_options: CallOptions | None = None,
    local_only: bool = False,
    fake_gemini: bool = False,
    **kwargs: Any,
) -> BrokerApp:
    """`create_app` with every `UPSTREAM=fake` tenant served by a fake of its own, in
    process; `app.state.fake_calls` holds their WebRTC call registries by tenant and
    `app.state.fake_live` their GPT-Live sessions (`fake_apps`: the fakes), for tests that
    play the browser. With `fake_gemini` (`token-broker dev --upstream gemini`), every
    `UPSTREAM=gemini` tenant mints from a fake Gemini in process too, whose Live peer
    answers at Google's WebSocket paths on the app itself (`app.state.fake_gemini`: the
    fake Geminis by tenant). Other keywords go to `create_app` unchanged; a `transport`
    given there serves every tenant instead of the fakes. `local_only` (what `token-broker
    dev` serves) answers only local host names and `settings.dev_allowed_hosts`."""
    shared = kwargs.get("transport") is not None
    if not shared:
        settings = _with_fake_keys(settings)
    fakes = InProcessFakes(() if shared else settings.tenants, clock=clock, gemini=fake_gemini)
    # The fakes' sideband connector goes in with the options, so create_app's own defaults
    # from the settings never apply here: they are made the same way (BROKER_MAX_CALLS and
    # BROKER_CALL_LEASE_SECONDS hold in dev mode too).
    options = call_options or call_options_of(settings)
    if options.connector is None:
        options = dataclasses.replace(
            options, connector=fakes.connector(other=sideband_connector(settings))
        )
    app = create_app(
        settings, clock=clock, call_options=options, transports=fakes.transports, **kwargs
    )
    app.state.fake_calls = fakes.calls
    app.state.fake_live = fakes.live
    app.state.fake_apps = fakes.apps
    app.state.fake_gemini = fakes.gemini_fakes
    if settings.dev:
        app.router.routes.extend(fakes.routes())
    # Gemini's clients open the Live session at their base URL, which is the broker's.
    app.router.routes.extend(fakes.gemini_routes())
    if local_only:
        app.add_middleware(LocalHostsOnly, allowed=(*LOCAL_HOSTS, *settings.dev_allowed_hosts))
    return app


def _with_fake_keys(settings: Settings) -> Settings:
    """A random upstream key for each fake tenant that has none: the broker sends it and
    its fake requires it, so that the fake (at /dev/fake) tells the broker from a page."""
    tenants = tuple(
        dataclasses.replace(tenant, upstream_api_key=Secret(secrets.token_urlsafe(32)))
        if tenant.upstream == "fake" and tenant.upstream_api_key is None
        else tenant
        for tenant in settings.tenants
    )
    return dataclasses.replace(settings, tenants=tenants)


class LocalHostsOnly:
    """Answers only requests whose `Host` is one of `allowed` (names, any port; `.name`
    also allows its subdomains, `*` anything), HTTP and WebSocket alike; others get a
    403 saying which setting allows them, before anything else runs."""

    def __init__(self, app: _App, *, allowed: Iterable[str]) -> None:
        self.app = app
        names = {name.strip().lower() for name in allowed}
        self._any = "*" in names
        self._names = frozenset(n for n in names if not n.startswith("."))
        self._suffixes = tuple(n for n in names if n.startswith("."))

    def allows(self, host: str | None) -> bool:
        if self._any:
            return True
        found = _HOST.fullmatch((host or "").strip().lower())
        if found is None:
            return False
        name = found.group(1)
        return name in self._names or any(
            name.endswith(suffix) or name == suffix[1:] for suffix in self._suffixes
        )

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: _Receive, send: _Send
    ) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        if self.allows(host):
            await self.app(scope, receive, send)
            return
        shown = (host or "")[:100].encode("ascii", "replace").decode()
        body = (
            f"Blocked: this request's Host ({shown or 'none'}) is not a local name. "
            "token-broker dev answers only localhost, 127.0.0.1 and [::1] (any port), so "
            "that a web page cannot reach it by pointing its own name at this machine "
            "(DNS rebinding). To allow another name, add it to BROKER_DEV_ALLOWED_HOSTS.\n"
        ).encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})
