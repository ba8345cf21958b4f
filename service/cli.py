"""`token-broker`: dev, serve, fake-upstream, jwt, config check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from service.config.settings import Settings, TenantSettings, describe_settings, load_settings
from service.errors import ConfigError

if TYPE_CHECKING:
    import uvicorn

DEV_PORT = 8080
DEV_CORS_ORIGINS = "http://localhost:*,http://127.0.0.1:*"
# Dev mode's policy when none is set. The built-in default allows every value, so nothing
# a policy does would show; this one shows it at once: a voice allow-list and server
# instructions, so an override of either comes back reverted (the demo page shows the
# role's rules). Every role names its models: a role without `models` may use any.
DEV_INSTRUCTIONS = "You are the token-broker dev demo assistant. Answer in one short sentence."
DEV_POLICY: dict[str, Any] = {
    "default_role": "reader",
    "on_violation": "clamp",
    "roles": {
        "reader": {
            "models": ["gpt-realtime", "gpt-realtime-mini", "gpt-live-1"],
            "voices": ["marin", "cedar", "alloy"],
            "instructions": {"mode": "server", "text": DEV_INSTRUCTIONS},
            "ttl_seconds": {"default": 60, "max": 600},
            "limits": ["10/minute", "500/day"],
        },
        "owner": {
            "models": ["gpt-realtime", "gpt-realtime-mini", "gpt-live-1"],
            "voices": ["marin", "cedar", "alloy", "verse"],
            "instructions": {"mode": "server", "text": DEV_INSTRUCTIONS},
            "ttl_seconds": {"default": 60, "max": 600},
            "limits": ["30/minute", "2000/day"],
        },
    },
}


# The same for a Gemini tenant (`token-broker dev --upstream gemini`): Gemini Live models
# and prebuilt voices (the first of each is what a request without one gets).
DEV_GEMINI_MODELS = [
    "gemini-2.5-flash-native-audio-preview-12-2025",
    "gemini-live-2.5-flash-preview",
]
DEV_GEMINI_POLICY: dict[str, Any] = {
    "default_role": "reader",
    "on_violation": "clamp",
    "roles": {
        "reader": {
            "models": DEV_GEMINI_MODELS,
            "voices": ["Puck", "Kore", "Charon"],
            "instructions": {"mode": "server", "text": DEV_INSTRUCTIONS},
            "ttl_seconds": {"default": 60, "max": 600},
            "limits": ["10/minute", "500/day"],
        },
        "owner": {
            "models": DEV_GEMINI_MODELS,
            "voices": ["Puck", "Kore", "Charon", "Aoede"],
            "instructions": {"mode": "server", "text": DEV_INSTRUCTIONS},
            "ttl_seconds": {"default": 60, "max": 600},
            "limits": ["30/minute", "2000/day"],
        },
    },
}
# What `dev --upstream` chooses: the fake that dev mode runs in process.
DEV_UPSTREAMS = ("openai", "gemini")
# Where a Gemini client opens a Live session with an ephemeral token (v1alpha: the SDKs'
# version for ephemeral tokens).
GEMINI_LIVE_PATH = (
    "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
)


def dev_secret_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "token-broker" / "dev-jwt-secret"


def dev_secret() -> str:
    """The dev-mode HS256 secret: generated once per machine, kept 0600, shared by
    `token-broker dev` and `token-broker jwt` so printed tokens keep working."""
    path = dev_secret_path()
    try:
        value = path.read_text().strip()
        if len(value.encode()) >= 32:
            return value
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def dev_environ(environ: Mapping[str, str], *, upstream: str = "openai") -> dict[str, str]:
    """Dev mode's defaults under whatever the caller set: fake upstream, in-memory state,
    the dev secret, loopback only, console logs, `DEV_POLICY`. With `upstream` "gemini",
    the tenant is a Gemini one whose upstream is the in-process fake Gemini: its key is
    generated here (whatever key the environment holds is not for the fake), and the
    default policy is `DEV_GEMINI_POLICY`."""
    env = dict(environ)
    env.setdefault("BROKER_HOST", "127.0.0.1")
    env.setdefault("BROKER_PORT", str(DEV_PORT))
    if upstream == "gemini":
        env["BROKER_UPSTREAM"] = "gemini"
        env["BROKER_UPSTREAM_API_KEY"] = secrets.token_urlsafe(32)
    env.setdefault("BROKER_UPSTREAM", "fake")
    env.setdefault("BROKER_LOG_FORMAT", "console")
    # Local frontends (Vite, Next, ...) run on a port of their own.
    env.setdefault("BROKER_CORS_ORIGINS", DEV_CORS_ORIGINS)
    if not any(k in env for k in ("BROKER_JWT_SECRET", "BROKER_JWT_SECRET_FILE")):
        env["BROKER_JWT_SECRET"] = dev_secret()
    # An empty value counts as unset (service.config.environment).
    if not any(env.get(k, "").strip() for k in ("BROKER_POLICY", "BROKER_POLICY_FILE")):
        env["BROKER_POLICY"] = json.dumps(DEV_GEMINI_POLICY if upstream == "gemini" else DEV_POLICY)
    return env


def _load(environ: Mapping[str, str]) -> Settings:
    try:
        return load_settings(environ)
    except ConfigError as exc:
        print("token-broker: the configuration is incomplete or wrong:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def api_config(app: Any, settings: Settings) -> uvicorn.Config:
    """How uvicorn serves the API (`serve` and `dev`)."""
    import uvicorn

    from service.web.relay import MAX_FRAME_BYTES

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        # Behind a gateway: keep idle connections longer than the gateway does, so the
        # gateway never reuses a connection the broker has just closed.
        timeout_keep_alive=int(os.environ.get("UVICORN_TIMEOUT_KEEP_ALIVE", "75")),
        timeout_graceful_shutdown=int(os.environ.get("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "20")),
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        # The relay is the only WebSocket: ASGI's accept cannot set a message limit, so the
        # server's is the relay's frame cap, and a larger frame is refused from its header,
        # never buffered (uvicorn's default is 16 MiB).
        ws_max_size=MAX_FRAME_BYTES,
    )


def _run(settings: Settings, *, banner: str | None = None, fake_gemini: bool = False) -> int:
    import uvicorn

    from service.logs import configure_logging
    from service.web.app import create_app, tune_gc

    configure_logging(settings.log_level, settings.log_format)
    if settings.dev:
        from service.dev import create_dev_app

        # A page that re-points its own name at 127.0.0.1 must not reach dev mode.
        app = create_dev_app(settings, local_only=True, fake_gemini=fake_gemini)
    else:
        app = create_app(settings)
    # A process-wide setting, so it belongs to the process that serves, not to the app
    # factory (tests build many apps in one process).
    tune_gc()
    app.state.metrics.watch_gc()
    config = api_config(app, settings)
    metrics_config = None
    if settings.metrics_port is not None:
        from service.web.app import create_metrics_app

        # /metrics on a port of its own (create_app leaves it out of the API's routes).
        metrics_config = uvicorn.Config(
            create_metrics_app(app.state.metrics),
            host=settings.metrics_host or settings.host,
            port=settings.metrics_port,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="off",
        )
    # The sockets are bound before anything is printed, so that the banner's URLs are this
    # process's (on a busy port they would reach whatever holds it).
    sockets = []
    for bound, setting in (
        (config, "--port or BROKER_PORT"),
        (metrics_config, "BROKER_METRICS_PORT"),
    ):
        if bound is None:
            continue
        listening = _bind(bound, setting)
        if listening is None:
            return 2
        sockets.append(listening)
    if banner:
        print(banner, flush=True)
    if metrics_config is None:
        uvicorn.Server(config).run(sockets=sockets)
    else:
        _serve_with_metrics(config, metrics_config, *sockets)
    return 0


def _bind(config: uvicorn.Config, setting: str) -> socket.socket | None:
    """The listening socket, or None (and why, on stderr) when the address is taken."""
    try:
        return config.bind_socket()
    except SystemExit:
        print(
            f"token-broker: cannot listen on {config.host}:{config.port} (in use?); "
            f"choose another port with {setting}.",
            file=sys.stderr,
        )
        return None


def _serve_with_metrics(
    config: uvicorn.Config,
    metrics_config: uvicorn.Config,
    api_socket: socket.socket,
    metrics_socket: socket.socket,
) -> None:
    """The API and /metrics on one event loop: the API's server, uvicorn's own with its
    signal handling, runs the metrics server beside it and stops it when it stops."""
    import uvicorn

    class MetricsServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the API's server takes the signals

    metrics = MetricsServer(metrics_config)

    class ApiServer(uvicorn.Server):
        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            beside = asyncio.create_task(metrics.serve(sockets=[metrics_socket]))
            try:
                await super().serve(sockets=sockets)
            finally:
                metrics.should_exit = True
                await beside

    ApiServer(config).run(sockets=[api_socket])


def describe_backends(settings: Settings, *, fake_gemini: bool = False) -> str:
    """What this process really runs on, for the dev banner."""
    state = "in-memory state" if settings.redis_url is None else "Redis state"
    upstreams = []
    for tenant in settings.tenants:
        if tenant.upstream == "fake":
            upstreams.append("the built-in fake upstream (no key needed)")
        elif tenant.upstream == "gemini" and fake_gemini:
            upstreams.append("the built-in fake Gemini (no key needed)")
        elif tenant.upstream == "gemini":
            upstreams.append(f"Gemini at {tenant.upstream_url}")
        else:
            name = "Azure OpenAI" if tenant.upstream == "azure" else "OpenAI"
            upstreams.append(f"{name} at {tenant.upstream_url}")
    return ", ".join([state, *dict.fromkeys(upstreams)])


def describe_serving(settings: Settings) -> str:
    """The one line `serve` prints once it listens: what it runs on, nothing secret (no
    key, no Redis URL: its scheme only)."""

    def per_tenant(value: Callable[[TenantSettings], str]) -> str:
        values = {tenant.id: value(tenant) for tenant in settings.tenants}
        if len(set(values.values())) == 1:
            return next(iter(values.values()))
        return ", ".join(f"{tenant}: {shown}" for tenant, shown in values.items())

    if settings.redis_url is None:
        state = "in-memory state (one process)"
    else:
        scheme = urlsplit(settings.redis_url.reveal()).scheme
        state = "Redis state" + ("" if scheme == "redis" else f" ({scheme})")
    if settings.metrics_port is None:
        metrics = "/metrics on this port"
    else:
        metrics = f"/metrics on {settings.metrics_host or settings.host}:{settings.metrics_port}"
    parts = [
        "tenants " + ", ".join(tenant.id for tenant in settings.tenants),
        "upstream " + per_tenant(lambda tenant: tenant.upstream),
        state,
        "CORS " + per_tenant(lambda tenant: " ".join(tenant.cors_origins) or "none"),
        metrics,
    ]
    return f"token-broker serve: http://{settings.host}:{settings.port} ({'; '.join(parts)})"


def _listen_flags(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with --host and --port, when given, over BROKER_HOST and BROKER_PORT."""
    env = dict(environ)
    if getattr(args, "host", None) is not None:
        env["BROKER_HOST"] = args.host
    if args.port is not None:
        env["BROKER_PORT"] = str(args.port)
    return env


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _load(_listen_flags(args, os.environ))
    fakes = [tenant.id for tenant in settings.tenants if tenant.upstream == "fake"]
    if fakes:
        print(
            "token-broker serve: BROKER_UPSTREAM=fake (tenants: "
            + ", ".join(fakes)
            + ") is the in-process fake upstream, whose secrets are not valid at OpenAI.\n"
            "  For local work run `token-broker dev`; to run the fake as its own process,\n"
            "  `token-broker fake-upstream --port N` and BROKER_UPSTREAM=openai with\n"
            "  BROKER_UPSTREAM_URL=http://127.0.0.1:N/v1.",
            file=sys.stderr,
        )
        return 2
    return _run(settings, banner=describe_serving(settings))


def cmd_dev(args: argparse.Namespace) -> int:
    from service.auth.tokens import sign_dev_token

    gemini = args.upstream == "gemini"
    env = _listen_flags(args, dev_environ(os.environ, upstream=args.upstream))
    settings = dataclasses.replace(_load(env), dev=True)
    tenant = settings.tenants[0]
    assert tenant.jwt_secret is not None, "dev mode signs its own tokens"
    token = sign_dev_token(
        tenant.jwt_secret.reveal(), sub="dev-user", role="owner", now=time.time(), ttl_seconds=3600
    )
    base = f"http://{settings.host}:{settings.port}"
    own_policy = any(os.environ.get(k, "").strip() for k in ("BROKER_POLICY", "BROKER_POLICY_FILE"))
    backends = describe_backends(settings, fake_gemini=gemini)
    lines = [
        f"token-broker dev: {base} ({backends}; demo page at {base}/)",
        "Pages that may call it from a browser (CORS): "
        + (", ".join(tenant.cors_origins) or "none (set BROKER_CORS_ORIGINS)"),
        "Policy: "
        + (
            "the one you set"
            if own_policy
            else "dev mode's default (voice allow-lists, server instructions; set your "
            "own with BROKER_POLICY)"
        )
        + "; token-broker config check --dev"
        + (" --upstream gemini" if gemini else "")
        + " prints it",
        "Sample JWT for dev-user, role owner, valid 1 h (more: token-broker jwt --sub NAME "
        "[--role owner]):",
        f"  {token}",
    ]
    if gemini:
        ws_base = "ws" + base.removeprefix("http")
        lines += [
            "Mint a Gemini Live ephemeral token (the JWT where Google's API key goes):",
            f"  curl -s -X POST {base}/v1alpha/auth_tokens \\",
            f"    -H 'x-goog-api-key: {token}' -H 'Content-Type: application/json' \\",
            '    -d \'{"uses": 1, "bidiGenerateContentSetup": {"model": "models/'
            + DEV_GEMINI_MODELS[0]
            + "\"}}'",
            "The fake Gemini Live peer, for that token's name (as the SDKs open it with the",
            f"broker's URL as their base URL): {ws_base}{GEMINI_LIVE_PATH}?access_token=NAME",
        ]
    else:
        lines += [
            "Mint a Realtime client secret:",
            f"  curl -s -X POST {base}/v1/realtime/client_secrets \\",
            f"    -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
            '    -d \'{"session": {"type": "realtime"}}\'',
        ]
    return _run(settings, banner="\n".join(lines), fake_gemini=gemini)


def cmd_fake_upstream(args: argparse.Namespace) -> int:
    import uvicorn

    from service.fake import webrtc
    from service.fake.app import create_fake_app

    config = uvicorn.Config(
        create_fake_app(), host=args.host, port=args.port, log_level="warning", access_log=False
    )
    listening = _bind(config, "--port")
    if listening is None:
        return 2
    peer = (
        "real WebRTC calls (aiortc)"
        if webrtc.available()
        else "no WebRTC peer: calls get a placeholder answer (install the dev extra)"
    )
    print(
        f"token-broker fake-upstream: http://{args.host}:{args.port}/v1 (the fake OpenAI: "
        f"any non-empty key; {peer}); the fake Gemini at http://{args.host}:{args.port} "
        "(/v1alpha/auth_tokens, /v1beta/auth_tokens and the Live peer; any non-empty "
        "x-goog-api-key)",
        flush=True,
    )
    uvicorn.Server(config).run(sockets=[listening])
    return 0


def _signing_key(args: argparse.Namespace) -> tuple[str, str | None, str | None] | str:
    """(secret, issuer, audience) to sign with, or why there is none. With no JWT setting
    in the environment: dev mode's secret. Otherwise the configured tenant's own HMAC
    secret (and its issuer and audience), from the same settings `serve` reads."""
    if not any(k.startswith("BROKER_") and "JWT_" in k for k in os.environ) and (
        args.tenant is None
    ):
        return dev_secret(), args.issuer, args.audience
    try:
        # Only the JWT settings matter here: a shell without the upstream key still signs.
        env = dict(os.environ)
        if not any(k.startswith("BROKER_") and "UPSTREAM_API_KEY" in k for k in env):
            env.setdefault("BROKER_UPSTREAM", "fake")
        settings = load_settings(env)  # fmt: skip
    except ConfigError as exc:
        return "the configuration is incomplete or wrong:\n" + "\n".join(
            f"  - {problem}" for problem in exc.problems
        )
    ids = [t.id for t in settings.tenants]
    chosen = args.tenant or (ids[0] if len(ids) == 1 else None)
    if chosen not in ids:
        return f"name the tenant with --tenant (one of: {', '.join(ids)})"
    tenant = settings.tenant(chosen)
    if tenant.jwt_secret is None:
        return (
            f"tenant {chosen} verifies tokens with a public key or a JWKS, not a secret: "
            "sign them with your identity provider"
        )
    return (
        tenant.jwt_secret.reveal(),
        args.issuer or tenant.jwt_issuer,
        args.audience or tenant.jwt_audience,
    )


def cmd_jwt(args: argparse.Namespace) -> int:
    from service.auth.tokens import sign_dev_token

    key = _signing_key(args)
    if isinstance(key, str):
        print(f"token-broker jwt: {key}", file=sys.stderr)
        return 2
    secret, issuer, audience = key
    token = sign_dev_token(
        secret,
        sub=args.sub,
        role=args.role,
        ttl_seconds=args.ttl,
        now=time.time(),
        issuer=issuer,
        audience=audience,
        name=args.name,
        email=args.email,
    )
    print(token)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    env: Mapping[str, str] = (
        dev_environ(os.environ, upstream=args.upstream) if args.dev else os.environ
    )
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        print("configuration problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if args.dev:
        settings = dataclasses.replace(settings, dev=True)
    print(json.dumps(describe_settings(settings), indent=2, sort_keys=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="token-broker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser(
        "dev",
        help="run locally: in-memory state, fake upstream, no key",
        description="Local development on 127.0.0.1: in-memory state, the built-in fake "
        "upstream, a generated HS256 secret, CORS open to http://localhost:* and "
        "http://127.0.0.1:*, a demo page at /. It answers only requests for localhost, "
        "127.0.0.1 and [::1] (more with BROKER_DEV_ALLOWED_HOSTS). Any BROKER_* variable "
        "still applies. With --upstream gemini the tenant is a Gemini one: it mints Gemini "
        "Live ephemeral tokens from a fake Gemini, whose Live peer answers at Google's "
        "WebSocket paths on the same port.",
    )
    dev.add_argument("--port", type=int, default=None, help="port (default: BROKER_PORT, 8080)")
    dev.add_argument(
        "--upstream",
        choices=DEV_UPSTREAMS,
        default="openai",
        help="which fake runs in process: OpenAI's (default) or Gemini's",
    )
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser(
        "serve",
        help="run in production from environment configuration",
        description="Production: every setting from BROKER_* environment variables (see the "
        "README's Configuration); refuses to start, listing every problem, when the "
        "configuration is incomplete or wrong. --host and --port, when given, win over "
        "BROKER_HOST and BROKER_PORT. Once it listens it prints one line of what it runs on.",
    )
    serve.add_argument("--host", default=None, help="address (default: BROKER_HOST, 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (default: BROKER_PORT, 8080)")
    serve.set_defaults(func=cmd_serve)

    fake = sub.add_parser(
        "fake-upstream", help="run the fake OpenAI upstream (and the fake Gemini) on its own"
    )
    fake.add_argument("--port", type=int, required=True, help="port to listen on")
    fake.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    fake.set_defaults(func=cmd_fake_upstream)

    jwt = sub.add_parser(
        "jwt",
        help="print a user token the broker accepts",
        description="Sign a token with dev mode's secret, or, when BROKER_JWT_* settings are "
        "set, with the configured tenant's HMAC secret, issuer and audience (tenants that "
        "verify with a public key or JWKS are refused: their IdP signs).",
    )
    jwt.add_argument("--sub", required=True, help="the user id (claim `sub`)")
    jwt.add_argument("--role", default=None, help="claim `role`: owner or reader")
    jwt.add_argument("--name", default=None, help="claim `name` (directory record)")
    jwt.add_argument("--email", default=None, help="claim `email` (directory record)")
    jwt.add_argument("--tenant", default=None, help="which configured tenant's secret")
    jwt.add_argument("--issuer", default=None, help="claim `iss` (default: the tenant's)")
    jwt.add_argument("--audience", default=None, help="claim `aud` (default: the tenant's)")
    jwt.add_argument("--ttl", type=int, default=3600, help="seconds of validity (3600)")
    jwt.set_defaults(func=cmd_jwt)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="print the effective configuration, masked")
    check.add_argument("--dev", action="store_true", help="with dev mode's defaults")
    check.add_argument(
        "--upstream",
        choices=DEV_UPSTREAMS,
        default="openai",
        help="with --dev: the defaults of `dev --upstream` (default openai)",
    )
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
