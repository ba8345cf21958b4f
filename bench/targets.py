"""The two reference servers the broker is measured against, under the same uvicorn
settings as `token-broker serve` (service/cli.py `_run`):

- ceiling: a hello-world Starlette JSON endpoint (what one worker can do at all);
- proxy: an endpoint that forwards the request body to the fake upstream through the
  broker's own HTTP client (`OpenAIUpstream`, same transport and pool) and nothing else.

    python bench/targets.py hello --port 9001
    python bench/targets.py proxy --port 9002 --upstream http://127.0.0.1:9000/v1
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.redact import Secret
from service.upstream.openai import OpenAIUpstream

PATH = "/v1/realtime/client_secrets"


def hello_app() -> Starlette:
    async def hello(request: Request) -> Response:
        await request.body()
        return JSONResponse({"hello": "world"})

    return Starlette(routes=[Route(PATH, hello, methods=["POST"])])


def proxy_app(upstream_url: str) -> Starlette:
    upstream = OpenAIUpstream(base_url=upstream_url, api_key=Secret("sk-bench-proxy"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await upstream.aclose()

    async def proxy(request: Request) -> Response:
        # Parsed and encoded again, as any proxy that looks at the body does.
        body = json.dumps(await request.json(), separators=(",", ":")).encode()
        raw = await upstream.create_secret("/realtime/client_secrets", body, safety_identifier="")
        return JSONResponse(raw, headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route(PATH, proxy, methods=["POST"])], lifespan=lifespan)


def serve(app: Starlette, port: int) -> None:
    """The same server settings as `token-broker serve`."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_keep_alive=75,
        timeout_graceful_shutdown=20,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["hello", "proxy"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", default="")
    args = parser.parse_args()
    serve(hello_app() if args.kind == "hello" else proxy_app(args.upstream), args.port)


if __name__ == "__main__":
    main()
