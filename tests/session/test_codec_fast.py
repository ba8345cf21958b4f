"""The codecs' fast paths against the general ones they stand for.

`encode_response` reuses the session `decode_upstream_response` rendered when the merge
with the effective request changes nothing; the strict decoder reads only the keys a body
gives and, on an error, walks the fields in order to report the first one.
"""

from __future__ import annotations

import copy
from dataclasses import fields, replace
from typing import Any

import pytest

from service.errors import InvalidRequest
from service.policy.apply import apply_policy
from service.policy.parse import default_policy
from service.session.codec import (
    decode_request,
    decode_upstream_response,
    encode_response,
    encode_upstream_request,
    render_ga,
)
from service.session.model import Api, Endpoint, MintRequest, MintResult, Session
from service.session.translate import ga_to_beta
from tests.session.bodies import BETA_FULL, GA_FULL, NOW, a_in, a_out, ga, gt, upstream_answer


def general_response(endpoint: Endpoint, result: MintResult, effective: MintRequest) -> object:
    """encode_response as it was before the fast path: merge field by field, render."""
    assert result.decoded is not None
    changes: dict[str, Any] = {}
    for f in fields(Session):
        if f.name in ("temperature", "custom_voice"):
            continue
        wanted = getattr(effective.session, f.name)
        if getattr(result.decoded, f.name) is None and wanted is not None:
            changes[f.name] = wanted
            if f.name == "voice":
                changes["custom_voice"] = effective.session.custom_voice
    session = replace(result.decoded, **changes)
    kind = effective.kind
    rendered = render_ga(session, kind, response=True)
    meta: dict[str, Any] = {
        k: result.session[k] for k in ("id", "object", "expires_at") if k in result.session
    }
    secret: dict[str, Any] = {"value": result.secret.reveal(), "expires_at": result.expires_at}
    if endpoint == "client_secrets":
        return {**secret, "session": {**rendered, **meta}}
    beta, _ = ga_to_beta(rendered, kind, response=True)
    if session.temperature is not None and kind == "realtime":
        beta["temperature"] = session.temperature
    if kind == "transcription" and session.output_modalities is not None:
        beta["modalities"] = ["audio", "text"] if "audio" in session.output_modalities else ["text"]
    answer: dict[str, Any] = {**meta, **beta, "client_secret": secret}
    return answer


def drop(*keys: str) -> Any:
    def edit(answer: dict[str, Any], api: Api) -> None:
        session = answer["session"] if api == "ga" else answer
        for key in keys:
            session.pop(key, None)

    return edit


def put(**items: Any) -> Any:
    def edit(answer: dict[str, Any], api: Api) -> None:
        (answer["session"] if api == "ga" else answer).update(items)

    return edit


def keep(answer: dict[str, Any], api: Api) -> None:
    pass


REQUESTS = [
    ("client_secrets", {"session": {"type": "realtime", "model": "gpt-realtime-mini"}}),
    (
        "client_secrets",
        ga(
            {
                "model": "gpt-realtime",
                "instructions": "Be brief.",
                "audio": {"output": {"voice": "verse", "speed": 1.4}},
                "max_output_tokens": 4096,
            }
        ),
    ),
    ("client_secrets", GA_FULL),
    ("client_secrets", ga(a_out(voice={"id": "voice_1"}))),
    ("client_secrets", gt(a_in(turn_detection=None))),
    ("sessions", BETA_FULL),
    ("sessions", {}),
    ("transcription_sessions", {"modalities": ["text"], "turn_detection": None}),
]
# Odd upstream answers: fields left out (the merge fills them), unknown or unreadable
# fields (skipped), a beta-only temperature, a missing id.
EDITS = [
    keep,
    drop("model", "instructions"),
    drop("audio"),
    drop("id", "expires_at", "object"),
    put(model=5, instructions=None, colour="blue"),
    put(temperature=0.9, tools=[{"type": "function"}]),
    put(output_modalities="audio", tool_choice={"type": "bogus"}),
    put(max_output_tokens="inf", tracing="auto", voice="ash", modalities=["text"]),
]


def edited_answer(
    endpoint: Endpoint, body: dict[str, Any], edit: Any, api: Api
) -> tuple[MintRequest, dict[str, Any]]:
    """The effective request for `body` and the fake upstream's answer to it, edited."""
    effective, _ = apply_policy(default_policy(), "reader", decode_request(endpoint, body))
    path, upstream_body, _ = encode_upstream_request(effective, api)
    answer = copy.deepcopy(upstream_answer(api, path, upstream_body))
    edit(answer, api)
    return effective, answer


@pytest.mark.parametrize("api", ["ga", "beta"])
@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize(("endpoint", "body"), REQUESTS)
def test_encode_response_matches_the_general_path(
    endpoint: Endpoint, body: dict[str, Any], edit: Any, api: Api
) -> None:
    effective, answer = edited_answer(endpoint, body, edit, api)

    result = decode_upstream_response(api, effective.kind, answer)
    fast = encode_response(endpoint, result, effective)

    assert fast == general_response(endpoint, result, effective)
    # Equal dicts may still serialize differently: the key order is part of the output.
    assert repr(fast) == repr(general_response(endpoint, result, effective))


def test_the_fast_path_is_taken_for_a_plain_mint() -> None:
    # Guard against the table above only ever exercising the general branch.
    effective = decode_request("client_secrets", REQUESTS[0][1])
    path, upstream_body, _ = encode_upstream_request(effective, "ga")
    result = decode_upstream_response("ga", "realtime", upstream_answer("ga", path, upstream_body))
    assert result.decoded is not None
    assert all(
        getattr(result.decoded, f.name) is not None
        for f in fields(Session)
        if getattr(effective.session, f.name) not in (None, False)
    )
    assert encode_response("client_secrets", result, effective)["session"] == {
        k: v for k, v in result.session.items() if k != "temperature"
    }


# Two bad fields, the later one (in the checking order) given first: the error names
# the earlier one, as the ordered walk of the fields does.
TWO_ERRORS = [
    ({"model": 5, **a_out(voice=5)}, "session.audio.output.voice"),
    ({"instructions": 5, "model": 5}, "session.model"),
    ({"tools": 5, "max_output_tokens": "x"}, "session.max_output_tokens"),
    ({"parallel_tool_calls": 1, "include": 5}, "session.include"),
    (
        {"model": 5, **a_in(turn_detection={"type": "x"})},
        "session.audio.input.turn_detection.type",
    ),
    ({**a_out(speed=9, format={"type": "x"})}, "session.audio.output.format.type"),
    ({**a_in(noise_reduction=5, transcription=5)}, "session.audio.input.transcription"),
]


@pytest.mark.parametrize(("session", "param"), TWO_ERRORS)
def test_the_first_error_in_checking_order_is_reported(session: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_request("client_secrets", ga(session))

    assert caught.value.param == param


def renewed(answer: dict[str, Any], api: Api, n: int) -> dict[str, Any]:
    """The same answer as another mint would get it: its own secret, id and expiry."""
    again = copy.deepcopy(answer)
    holder = again if api == "ga" else again["client_secret"]
    holder["value"] = f"ek_other_{n}"
    holder["expires_at"] = NOW + 60 + n
    session = again["session"] if api == "ga" else again
    session["id"] = f"sess_other_{n}"
    session["expires_at"] = NOW + 3600 + n
    return again


@pytest.mark.parametrize("api", ["ga", "beta"])
@pytest.mark.parametrize("edit", EDITS)
@pytest.mark.parametrize(("endpoint", "body"), REQUESTS)
def test_decoding_an_answer_is_pure(
    endpoint: Endpoint, body: dict[str, Any], edit: Any, api: Api
) -> None:
    """The codec keeps nothing between mints: answers that differ only in what changes
    from mint to mint (secret, id, expiry) decode to the same session, and decoding
    leaves the answer as it was."""
    effective, first = edited_answer(endpoint, body, edit, api)
    decoded = []
    for n, answer in enumerate([first, renewed(first, api, 1), renewed(first, api, 2)]):
        before = copy.deepcopy(answer)
        result = decode_upstream_response(api, effective.kind, answer)
        assert answer == before
        decoded.append(result)
        assert result == decode_upstream_response(api, effective.kind, copy.deepcopy(answer))
        answered = encode_response(endpoint, result, effective)
        assert answered == encode_response(endpoint, result, effective)
        if n:
            assert result.decoded == decoded[0].decoded
            assert result.secret.reveal() == f"ek_other_{n}"
