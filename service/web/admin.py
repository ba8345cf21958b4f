"""The organization-users endpoints (README "Using it from a browser app"): parse, call
`Directory`, render.

Routes come from `admin_routes(clock=...)`, which the composition root adds to the app.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.clock import Clock, system_clock
from service.directory import (
    Actor,
    Directory,
    parse_list_query,
    parse_role_update,
    validate_user_id,
)
from service.redact import user_hash
from service.web.bodies import read_json_object
from service.web.handlers import Handler, authorization_values, broker_of

USERS_PATH = "/v1/organization/users"


def _directory(request: Request, clock: Clock) -> Directory:
    broker = broker_of(request)
    return Directory(broker.store, broker.settings.tenants, clock=clock)


async def _authorize(request: Request, directory: Directory) -> Actor:
    broker = broker_of(request)
    actor = await directory.authorize(authorization_values(request), broker.authenticate)
    # For the access log line, like the mint handlers: tenant and a hash, never the id.
    request.scope["state"]["tenant"] = actor.tenant
    if actor.user_id is not None:
        request.scope["state"]["user_hash"] = user_hash(actor.tenant, actor.user_id)
    return actor


def _user_id(request: Request) -> str:
    return validate_user_id(request.path_params["user_id"])


def admin_routes(*, clock: Clock = system_clock) -> list[Route]:
    """The four organization-users routes; `clock` stamps audit events."""

    async def list_users(request: Request) -> Response:
        directory = _directory(request, clock)
        actor = await _authorize(request, directory)
        query = parse_list_query(request.query_params.multi_items())
        return JSONResponse(await directory.list_users(actor, query))

    async def one_user(request: Request) -> Response:
        directory = _directory(request, clock)
        actor = await _authorize(request, directory)
        user_id = _user_id(request)
        if request.method == "GET":
            return JSONResponse(await directory.get(actor, user_id))
        if request.method == "DELETE":
            deleted = await directory.delete(actor, user_id)
            # A revoked user's live calls end now, not at their next renewal check.
            broker = broker_of(request)
            await request.app.state.calls.hangup_user(
                broker.tenant(actor.tenant), user_id, "user_revoked"
            )
            return JSONResponse(deleted)
        role = parse_role_update(await read_json_object(request))
        return JSONResponse(await directory.set_role(actor, user_id, role))

    handlers: tuple[tuple[str, Handler, list[str]], ...] = (
        (USERS_PATH, list_users, ["GET"]),
        # `path`: the server decodes an id's `%2F` into the path, and an id may hold `/`
        # (any id the authenticator accepts can be revoked, service.auth.user_ids).
        (USERS_PATH + "/{user_id:path}", one_user, ["GET", "POST", "DELETE"]),
    )
    return [Route(path, handler, methods=methods) for path, handler, methods in handlers]
