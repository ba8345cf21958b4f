from __future__ import annotations

import pytest

from service.errors import InvalidValue, UnknownParameter
from service.session.strict_json import as_int, as_number, as_str, check_keys


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
