"""A GPT-Live session request and the policy applied to it (README "GPT-Live"); pure.

GPT-Live has no ephemeral secrets: the browser's offer comes to the broker, which creates
the session upstream with the server key (`POST /live/sessions`). Everything the policy
decides is decided here, once: model, voice and instructions are immutable once the
session started, and the browser's data channel goes straight to OpenAI, held only by the
allow-lists it is created with (`session.client.data_channel`), which nothing polices
afterwards. So that channel never gets an event that rewrites the session, whatever the
role lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.calls.sdp import check_offer
from service.errors import InvalidValue, PolicyViolation, UnknownParameter
from service.policy.application import Adjustments
from service.policy.apply import apply_instructions
from service.policy.model import Policy, RoleRules

LIVE_MODEL_PREFIX = "gpt-live"
# The client events of GPT-Live (OpenAI's Live reference); a role's `client_events` counts
# for Live only where it names one of these.
LIVE_CLIENT_EVENTS = frozenset(
    {
        "response.create",
        "response.cancel",
        "response.item.create",
        "session.close",
        "session.input_audio.mute",
        "session.input_audio.unmute",
        "session.thinking.append",
        "session.commentary.append",
        "session.instructions.append",
        "session.update",
    }
)
# Never on the browser's channel: each rewrites the session the policy decided.
SESSION_REWRITES = frozenset({"session.update", "session.instructions.append"})
SESSION_FIELDS = frozenset(
    {"model", "instructions", "audio", "client", "delegation", "input", "store"}
)
CHANNEL = "session.client.data_channel"


@dataclass(frozen=True, slots=True)
class LiveRequest:
    """`POST /v1/live/sessions`: the session asked for and the browser's SDP offer."""

    session: Mapping[str, Any]
    sdp: str


def parse_live_request(body: object) -> LiveRequest:
    """OpenAI's Live create shape `{session, transport: {type: "webrtc", sdp}}`."""
    if not isinstance(body, dict):
        raise InvalidValue("The body must be a JSON object.", param=None)
    _known(body, {"session", "transport"}, "")
    session = body.get("session", {})
    if not isinstance(session, dict):
        raise InvalidValue("'session' must be an object.", param="session")
    transport = body.get("transport")
    if not isinstance(transport, dict):
        raise InvalidValue(
            "Missing required parameter: 'transport' ({type: 'webrtc', sdp}).", param="transport"
        )
    _known(transport, {"type", "sdp"}, "transport")
    if transport.get("type") != "webrtc":
        raise InvalidValue("'transport.type' must be 'webrtc'.", param="transport.type")
    sdp = transport.get("sdp")
    if not isinstance(sdp, str):
        raise InvalidValue("'transport.sdp' must be the SDP offer.", param="transport.sdp")
    try:
        offer = check_offer(sdp.encode())
    except InvalidValue as exc:
        raise InvalidValue(exc.message, param="transport.sdp") from None
    return LiveRequest(session=session, sdp=offer)


def apply_live_policy(
    policy: Policy, role: str, session: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The session to create for `role`, and the paths the policy changed (for
    `X-Policy-Adjusted`). Rules, beside those of a Realtime session (`apply_policy`):

    - models: the role's `models` that are GPT-Live models (`gpt-live…`); a role whose list
      names none may not start a Live session. Voices: `voices` (a custom voice by its id).
    - instructions: the modes of `instructions`; under `server` the client may not bring
      its own by other doors either (`developer` messages in `input`, a delegated
      backend's `instructions`).
    - the browser's data channel: `allowed_client_events` is the role's `client_events`
      (the GPT-Live ones) intersected with what the client asked, never an event that
      rewrites the session; `allowed_server_events` is what the client asked within the
      role's `server_events`. Both are always sent: upstream allows everything when they
      are left out.
    - a delegated Responses backend: its tools within `tools.allow`, its
      `max_output_tokens` within the role's, the effort of its `reasoning` within
      `reasoning_efforts` (the first entry filled into a `reasoning` that names none; a
      backend without `reasoning` is left so: its model may not reason).
    """
    rules = policy.rules_for(role)
    apply = _Application(reject=policy.on_violation == "reject")
    _known(session, SESSION_FIELDS, "session")
    out: dict[str, Any] = {
        k: v for k, v in session.items() if k not in ("model", "instructions", "audio", "client")
    }
    out["model"] = apply.model(session.get("model"), rules)
    instructions = _string(session.get("instructions"), "session.instructions")
    result, outcome = apply_instructions(
        instructions, rules.instructions, lambda: "session.instructions"
    )
    if outcome == "adjusted":
        apply.adjusted.append("session.instructions")
    if result is not None:
        out["instructions"] = result
    voice = apply.voice(_voice(session.get("audio")), rules.voices)
    if voice is not None:
        out["audio"] = {"output": {"voice": voice}}
    out["client"] = {"data_channel": apply.data_channel(session.get("client"), rules)}
    if "input" in out:
        out["input"] = apply.history(out["input"], rules)
    if "delegation" in out:
        out["delegation"] = apply.delegation(out["delegation"], rules)
    return out, list(dict.fromkeys(apply.adjusted))


def _known(obj: Mapping[str, Any], fields: frozenset[str] | set[str], path: str) -> None:
    for key in obj:
        if key not in fields:
            name = f"{path}.{key}" if path else key
            raise UnknownParameter(f"Unknown parameter: '{name[:128]}'.", param=name[:128])


def _string(value: object, param: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidValue(f"'{param}' must be a string.", param=param)
    return value


def _voice(audio: object) -> str | dict[str, str] | None:
    if audio is None:
        return None
    if not isinstance(audio, dict):
        raise InvalidValue("'session.audio' must be an object.", param="session.audio")
    _known(audio, {"output"}, "session.audio")
    output = audio.get("output", {})
    if not isinstance(output, dict):
        path = "session.audio.output"
        raise InvalidValue(f"'{path}' must be an object.", param=path)
    _known(output, {"voice"}, "session.audio.output")
    voice = output.get("voice")
    if voice is None or isinstance(voice, str):
        return voice
    if isinstance(voice, dict) and set(voice) == {"id"} and isinstance(voice["id"], str):
        return {"id": voice["id"]}
    raise InvalidValue(
        "'session.audio.output.voice' must be a voice name or {id}.",
        param="session.audio.output.voice",
    )


class _Application(Adjustments):
    """The running state of one `apply_live_policy` call: what was adjusted."""

    def model(self, value: object, rules: RoleRules) -> str:
        path = "session.model"
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidValue(f"'{path}' must be a model name such as gpt-live-1.", param=path)
        if rules.models is None:
            if value is None:
                raise InvalidValue("Missing required parameter: 'session.model'.", param=path)
            return value
        allowed = tuple(m for m in rules.models if m.startswith(LIVE_MODEL_PREFIX))
        if not allowed:
            raise PolicyViolation(
                "This role may not start GPT-Live sessions: its 'models' name no gpt-live model.",
                param=path,
            )
        if value is None:
            return allowed[0]
        if value not in allowed:
            self.violation(path, allowed)
            return allowed[0]
        return value

    def voice(
        self, value: str | dict[str, str] | None, allowed: tuple[str, ...] | None
    ) -> str | dict[str, str] | None:
        path = "session.audio.output.voice"
        if allowed is None:
            return value
        if value is None:
            return allowed[0]
        name = value if isinstance(value, str) else value["id"]
        if name in allowed:
            return value
        self.violation(path, allowed)
        return allowed[0]

    def data_channel(self, client: object, rules: RoleRules) -> dict[str, Any]:
        asked: dict[str, Any] = {}
        if client is not None:
            if not isinstance(client, dict):
                raise InvalidValue("'session.client' must be an object.", param="session.client")
            _known(client, {"data_channel"}, "session.client")
            channel = client.get("data_channel", {})
            if not isinstance(channel, dict):
                raise InvalidValue(f"'{CHANNEL}' must be an object.", param=CHANNEL)
            _known(channel, {"allowed_client_events", "allowed_server_events"}, CHANNEL)
            asked = channel
        return {
            "allowed_client_events": self.client_events(asked.get("allowed_client_events"), rules),
            "allowed_server_events": self.server_events(asked.get("allowed_server_events"), rules),
        }

    def client_events(self, asked: object, rules: RoleRules) -> list[str]:
        path = f"{CHANNEL}.allowed_client_events"
        allowed = [
            e for e in rules.client_events if e in LIVE_CLIENT_EVENTS and e not in SESSION_REWRITES
        ]
        if asked is None or asked == "all":
            return allowed
        if not isinstance(asked, list) or not all(isinstance(e, str) for e in asked):
            raise InvalidValue(f"'{path}' must be 'all' or a list of event types.", param=path)
        kept = [e for e in dict.fromkeys(asked) if e in allowed]
        if len(kept) != len(set(asked)):
            # The role decides, whatever the client asked: asking is not a violation.
            self.adjusted.append(path)
        return kept

    def server_events(self, asked: object, rules: RoleRules) -> list[dict[str, str]] | str:
        path = f"{CHANNEL}.allowed_server_events"
        allowed = rules.server_events
        if asked is None or asked == "all":
            if allowed is None:
                return "all"
            # A Responses event is named with its nested type: the role's bare
            # `response.event` allows only what the client selects by name.
            return [{"type": e} for e in allowed if e != "response.event"]
        if not isinstance(asked, list):
            raise InvalidValue(f"'{path}' must be 'all' or a list of selectors.", param=path)
        selectors = [_selector(s, f"{path}[{i}]") for i, s in enumerate(asked)]
        kept = [s for s in selectors if allowed is None or s["type"] in allowed]
        if len(kept) != len(selectors):
            self.adjusted.append(path)
        return kept

    def history(self, items: object, rules: RoleRules) -> object:
        if rules.instructions.mode != "server" or not isinstance(items, list):
            return items
        kept = [i for i in items if not (isinstance(i, dict) and i.get("role") == "developer")]
        if len(kept) != len(items):
            # Developer messages are instructions by another door.
            self.violation("session.input")
        return kept

    def delegation(self, delegation: object, rules: RoleRules) -> object:
        if not isinstance(delegation, dict) or not isinstance(delegation.get("responses"), dict):
            return delegation
        backend = dict(delegation["responses"])
        path = "session.delegation.responses"
        if "instructions" in backend and rules.instructions.mode == "server":
            self.violation(f"{path}.instructions")
            del backend["instructions"]
        cap = rules.max_output_tokens
        if cap is not None:
            asked = backend.get("max_output_tokens")
            if isinstance(asked, int) and asked > cap:
                self.adjusted.append(f"{path}.max_output_tokens")
            if not isinstance(asked, int) or asked > cap:
                backend["max_output_tokens"] = cap
        if rules.reasoning_efforts is not None and "reasoning" in backend:
            backend["reasoning"] = self.reasoning(backend["reasoning"], rules.reasoning_efforts)
        allowed = rules.tools_allow
        tools = backend.get("tools")
        if allowed is not None and isinstance(tools, list):
            kept = []
            for index, tool in enumerate(tools):
                name = tool.get("name") or tool.get("type") if isinstance(tool, dict) else None
                if name in allowed:
                    kept.append(tool)
                else:
                    self.violation(f"{path}.tools[{index}]", allowed)
            backend["tools"] = kept
        return {**delegation, "responses": backend}

    def reasoning(self, reasoning: object, allowed: tuple[str, ...]) -> object:
        path = "session.delegation.responses.reasoning"
        if reasoning is None:
            return None
        if not isinstance(reasoning, dict):
            raise InvalidValue(f"'{path}' must be an object.", param=path)
        effort = reasoning.get("effort")
        if effort is None:
            return {**reasoning, "effort": allowed[0]}
        if effort not in allowed:
            self.violation(f"{path}.effort", allowed)
            return {**reasoning, "effort": allowed[0]}
        return reasoning


def _selector(value: object, param: str) -> dict[str, str]:
    if isinstance(value, str) and value and value != "response.event":
        return {"type": value}
    if (
        isinstance(value, dict)
        and set(value) <= {"type", "response_event"}
        and isinstance(value.get("type"), str)
        and all(isinstance(v, str) and v for v in value.values())
        and ("response_event" in value) == (value["type"] == "response.event")
    ):
        return dict(value)
    raise InvalidValue(
        f"'{param}' must be an event type, or {{type: 'response.event', response_event}}.",
        param=param,
    )
