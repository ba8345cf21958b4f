from __future__ import annotations

import pytest

from service.errors import InvalidJSON, InvalidValue, UnknownParameter
from service.session.strict_json import as_int, as_number, as_str, check_keys, parse_json


def test_checks_name_the_param_and_never_echo_the_value() -> None:
    with pytest.raises(InvalidValue) as too_long:
        as_str("ek_secret" * 100, "session.model")
    with pytest.raises(InvalidValue) as a_bool:
        as_number(True, "session.audio.output.speed")
    with pytest.raises(InvalidValue) as out_of_range:
        as_int(3, "expires_after.seconds", 10, 7200)
    with pytest.raises(UnknownParameter) as unknown:
        check_keys({"type": 1, "zz": 2, "aa": 3}, ("type",), "session")

    assert too_long.value.param == "session.model"
    assert "ek_secret" not in too_long.value.message
    assert a_bool.value.param == "session.audio.output.speed"
    assert "boolean" in a_bool.value.message
    assert out_of_range.value.param == "expires_after.seconds"
    assert unknown.value.param == "session.aa"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"session": {"temperature": 1e999}}', "session.temperature"),
        (b'{"a": {"b": [0.5, -1e400]}}', "a.b[1]"),
        (b'{"setup": {"generationConfig": {"topP": 1E+999}}}', "setup.generationConfig.topP"),
    ],
)
def test_a_number_a_double_cannot_hold_is_refused_by_its_field(raw: bytes, param: str) -> None:
    """Python's float() reads 1e999 as inf, which `parse_constant` never sees: sent on,
    it would be `Infinity` (not JSON) upstream."""
    with pytest.raises(InvalidValue) as raised:
        parse_json(raw)

    assert raised.value.param == param
    assert raised.value.status == 400


def test_a_non_finite_number_without_a_field_is_invalid_json() -> None:
    with pytest.raises(InvalidJSON):
        parse_json(b"1e999")
    assert parse_json(b'{"x": 1.5e308, "y": [1e-999]}') == {"x": 1.5e308, "y": [0.0]}


def test_an_integer_too_large_for_a_number_is_refused() -> None:
    with pytest.raises(InvalidValue) as raised:
        as_number(10**400, "session.temperature")
    assert raised.value.param == "session.temperature"
