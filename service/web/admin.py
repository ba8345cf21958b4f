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
    Directory,
    ListQuery,
    parse_role_update,
    validate_user_id,
)
from service.errors import UnknownParameter
from service.web.bodies import read_json_object
from service.web.handlers import authorize, broker_of, parse_page_query
from service.web.openapi import (
    DIRECTORY,
    LIMIT,
    LIST,
    DocumentedRoute,
    Operation,
    json_body,
    path_param,
    query,
)

USERS_PATH = "/v1/organization/users"

_USER = {
    "type": "object",
    "required": ["object", "id", "role"],
    "properties": {
        "object": {"const": "organization.user"},
        "id": {"type": "string"},
        "role": {"enum": ["owner", "reader"]},
    },
}
_USER_ID = path_param("user_id")
LIST_USERS = Operation(
    "List the tenant's user directory (owner or admin key).",
    LIST,
    DIRECTORY,
    parameters=(query("limit", LIMIT), query("after", {"type": "string"})),
)
GET_USER = Operation("One user.", _USER, DIRECTORY, parameters=(_USER_ID,))
SET_ROLE = Operation(
    "Set a user's role (restores a revoked user).",
    _USER,
    (*DIRECTORY, 413),
    request=json_body(
        {
            "type": "object",
            "required": ["role"],
            "properties": {"role": {"enum": ["owner", "reader"]}},
        }
    ),
    parameters=(_USER_ID,),
)
REVOKE_USER = Operation(
    "Revoke a user.",
    {
        "type": "object",
        "required": ["object", "id", "deleted"],
        "properties": {"object": {"const": "organization.user.deleted"}},
    },
    DIRECTORY,
    parameters=(_USER_ID,),
)


def _directory(request: Request, clock: Clock) -> Directory:
    broker = broker_of(request)
    return Directory(broker.store, broker.settings.tenants, clock=clock)


def _user_id(request: Request) -> str:
    return validate_user_id(request.path_params["user_id"])


def _after(param: str, value: str) -> str:
    return validate_user_id(value, param=param)


def admin_routes(*, clock: Clock = system_clock) -> list[Route]:
    """The four organization-users routes; `clock` stamps audit events."""

    async def list_users(request: Request) -> Response:
        directory = _directory(request, clock)
        actor = await authorize(request, directory)
        if "emails" in request.query_params:
            # Filtering would need an email index the store does not keep; refusing
            # is better than a page silently missing users.
            raise UnknownParameter("Filtering by `emails` is not supported.", param="emails")
        page = parse_page_query(request.query_params.multi_items(), cursor=_after)
        wanted = ListQuery(limit=page.limit, after=page.after)
        return JSONResponse(await directory.list_users(actor, wanted))

    async def one_user(request: Request) -> Response:
        directory = _directory(request, clock)
        actor = await authorize(request, directory)
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

    return [
        DocumentedRoute(USERS_PATH, list_users, get=LIST_USERS),
        # `path`: the server decodes an id's `%2F` into the path, and an id may hold `/`
        # (any id the authenticator accepts can be revoked, service.auth.user_ids).
        DocumentedRoute(
            USERS_PATH + "/{user_id:path}",
            one_user,
            get=GET_USER,
            post=SET_ROLE,
            delete=REVOKE_USER,
        ),
    ]
