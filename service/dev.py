"""Dev mode's wiring: the broker app on the in-process fake upstream.

The one module outside `service.fake` that imports the fake. `token-broker dev` and the
tests build their apps here; `token-broker serve` builds them with `create_app` alone,
which refuses a tenant whose upstream is `fake` (its secrets are not valid at OpenAI).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from service.calls.supervised import CallOptions
from service.clock import Clock, system_clock
from service.config.settings import Settings
from service.fake.inprocess import InProcessFakes
from service.web.app import BrokerApp, create_app, sideband_connector


def create_dev_app(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    call_options: CallOptions | None = None,
    **kwargs: Any,
) -> BrokerApp:
    """`create_app` with every `UPSTREAM=fake` tenant served by a fake of its own, in
    process; `app.state.fake_calls` holds their WebRTC call registries by tenant and
    `app.state.fake_live` their GPT-Live sessions (`fake_apps`: the fakes), for tests that
    play the browser. Other keywords go to `create_app` unchanged; a `transport` given
    there serves every tenant instead of the fakes."""
    shared = kwargs.get("transport") is not None
    fakes = InProcessFakes(() if shared else settings.tenants, clock=clock)
    options = call_options or CallOptions()
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
    if settings.dev:
        app.router.routes.extend(fakes.routes())
    return app
