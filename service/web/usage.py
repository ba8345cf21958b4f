"""Usage, costs and the tenant's spend limit in OpenAI's admin shapes (DESIGN 11):
`GET /v1/organization/usage/completions`, `GET /v1/organization/costs`,
`GET|POST|DELETE /v1/organization/spend_limit`."""

from __future__ import annotations

from starlette.routing import BaseRoute

from service.clock import Clock, system_clock


def usage_routes(*, clock: Clock = system_clock) -> list[BaseRoute]:
    del clock
    return []
