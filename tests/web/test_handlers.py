"""The steps every handler shares: one reader of a list's query string, the same answers
on the three list endpoints (calls, organization users, vector stores)."""

from __future__ import annotations

import httpx
import pytest

from service.dev import create_dev_app
from service.errors import InvalidRequest, InvalidValue, UnknownParameter
from service.web.handlers import PageQuery, parse_page_query
from tests.web.conftest import TokenFactory, make_settings


def cursor(param: str, value: str) -> str:
    if not value.startswith("id_"):
        raise InvalidValue(f"'{param}' must be an id.", param=param)
    return value


def parse(*items: tuple[str, str], **options: tuple[str, ...]) -> PageQuery:
    return parse_page_query(items, cursor=cursor, **options)


def refusal(*items: tuple[str, str], **options: tuple[str, ...]) -> tuple[str, str | None]:
    with pytest.raises(InvalidRequest) as refused:
        parse(*items, **options)
    return refused.value.code, refused.value.param


def test_defaults_and_given_values() -> None:
    assert parse() == PageQuery(limit=20, cursors={}, order=None)
    assert parse(("limit", "1"), ("after", "id_1")) == PageQuery(1, {"after": "id_1"})
    assert parse(("limit", "100")).limit == 100
    assert parse(("limit", "007")).limit == 7
    assert parse(("after", "id_9")).after == "id_9"


@pytest.mark.parametrize(
    "limit",
    [
        "0",
        "101",
        "999",
        "1000",
        "0100",
        "",
        "ten",
        "²",
        "\u0663",
        "\uff15",
        " 5",
        "5 ",
        "+5",
        "-1",
        "5_0",
        "1e2",
    ],
)
def test_a_limit_is_ascii_digits_from_1_to_100(limit: str) -> None:
    assert refusal(("limit", limit)) == ("invalid_value", "limit")


def test_a_cursor_is_checked_by_its_endpoints_rule() -> None:
    assert refusal(("after", "nope")) == ("invalid_value", "after")
    assert refusal(("before", "nope"), cursors=("after", "before")) == ("invalid_value", "before")
    assert parse(("before", "id_1"), cursors=("after", "before")).cursors == {"before": "id_1"}


def test_order_only_where_the_endpoint_has_one() -> None:
    assert parse(orders=("desc", "asc")).order == "desc"
    assert parse(("order", "asc"), orders=("desc", "asc")).order == "asc"
    assert refusal(("order", "up"), orders=("desc", "asc")) == ("invalid_value", "order")
    assert refusal(("order", "asc")) == ("unknown_parameter", "order")


def test_a_repeat_or_an_unknown_parameter_is_refused_naming_it() -> None:
    assert refusal(("limit", "2"), ("limit", "3")) == ("invalid_value", "limit")
    assert refusal(("before", "id_1")) == ("unknown_parameter", "before")
    with pytest.raises(UnknownParameter) as refused:
        parse(("x" * 300, "1"))
    assert refused.value.param == "x" * 64 + "…"
    assert "x" * 65 not in refused.value.message


LISTS = ["/v1/realtime/calls", "/v1/organization/users", "/v1/vector_stores"]
ADMIN_KEY = "admin-key-for-list-queries-0123456789"


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    ("query", "code", "param"),
    [
        ("limit=%C2%B2", "invalid_value", "limit"),  # "²".isdigit(), and int("²") raises
        ("limit=0", "invalid_value", "limit"),
        ("limit=1&limit=2", "invalid_value", "limit"),
        ("colour=red", "unknown_parameter", "colour"),
    ],
)
async def test_the_three_lists_answer_a_bad_query_alike(
    token: TokenFactory, path: str, query: str, code: str, param: str
) -> None:
    app = create_dev_app(make_settings({"BROKER_ADMIN_API_KEY": ADMIN_KEY}))
    bearer = token(role="owner") if path == "/v1/vector_stores" else ADMIN_KEY
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://broker"
    ) as client:
        response = await client.get(
            f"{path}?{query}", headers={"Authorization": f"Bearer {bearer}"}
        )

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
