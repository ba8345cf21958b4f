"""The role's policy applied to a Live setup (README "Gemini Live"); pure.

`apply_setup_policy` maps the provider-neutral rules of `service.policy` onto Google's
`BidiGenerateContentSetup` (normalized to camelCase by `service.gemini.schema`):

    models            model (`models/` optional, in the policy and in the request)
    voices            generationConfig.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName
    modalities        generationConfig.responseModalities (`audio` ↔ `AUDIO`)
    temperature       generationConfig.temperature (clamped; also into Gemini's [0, 2])
    max_output_tokens generationConfig.maxOutputTokens
    instructions      systemInstruction, by mode
    turn_detection    realtimeInputConfig.automaticActivityDetection: silenceDurationMs and
                      prefixPaddingMs within the role's ranges
    tools.allow       function declarations by name; other tools by their field name
                      exactly as Google spells it in JSON (`googleSearch`,
                      `codeExecution`, ...); `mcpServers` never (see below)

Allow-lists and ranges behave as for OpenAI (`service.policy.apply`): a value outside an
allow-list is refused (`on_violation: "reject"`, 400 naming the field) or replaced by the
list's first entry (`clamp`, listed for `X-Policy-Adjusted` by its path in the request);
nothing requested gets the first entry, unlisted; ranges are always clamped. A client that
turns automatic activity detection off (`disabled: true`) keeps it off, as an OpenAI
client may send `turn_detection: null`: it then marks turns itself.

`responseModalities` absent or empty is one thing to Google (unset: the Live API answers
with AUDIO), so it is one thing here: the role's first modality when it lists some, and
a voice from `voices` whenever the modality Google will use is audio.

A tool of kind `mcpServers` is refused from every client, whatever `tools.allow` says
(`policy_violation` naming it): it names servers, with their URLs and headers, that
Google would call on the client's behalf. `tools.allow` is one list for function names
and tool kinds, so a role that allows a function named `googleSearch` allows that tool
too; the README says to give functions other names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.errors import InvalidValue, PolicyViolation
from service.gemini.schema import SETUP_PARAM
from service.policy.application import Adjustments
from service.policy.apply import apply_instructions
from service.policy.model import InstructionsRule, Range, RoleRules, TurnDetectionRule
from service.session.strict_json import (
    TEXT_MAX_CHARS,
    as_bool,
    as_int,
    as_number,
    as_str,
    as_str_list,
    join,
)

MODEL = f"{SETUP_PARAM}.model"
GENERATION = f"{SETUP_PARAM}.generationConfig"
VOICE = f"{GENERATION}.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName"
MODALITIES = f"{GENERATION}.responseModalities"
TEMPERATURE = f"{GENERATION}.temperature"
MAX_OUTPUT_TOKENS = f"{GENERATION}.maxOutputTokens"
INSTRUCTIONS = f"{SETUP_PARAM}.systemInstruction"
DETECTION = f"{SETUP_PARAM}.realtimeInputConfig.automaticActivityDetection"
TOOLS = f"{SETUP_PARAM}.tools"
# Tool kinds no client may ask for (see the module docstring).
REFUSED_TOOLS = frozenset({"mcpServers"})
MODEL_PREFIX = "models/"
# Gemini's own range; the role's range, if any, lies within it.
TEMPERATURE_BOUNDS = (0.0, 2.0)
MAX_OUTPUT_TOKENS_LIMIT = 2**31 - 1


def apply_setup_policy(
    rules: RoleRules, setup: Mapping[str, Any], *, reject: bool
) -> tuple[dict[str, Any], list[str]]:
    """The setup a role with `rules` gets, and the paths the policy changed; `reject`: the
    policy's `on_violation` is "reject" (else "clamp"). `setup` is normalized
    (service.gemini.schema) and left as it is: what changes is copied."""
    apply = _Application(reject=reject)
    out = dict(setup)
    out["model"] = apply.model(setup.get("model"), rules.models)

    generation = dict(setup.get("generationConfig", {}))
    modalities = apply.modalities(generation.pop("responseModalities", None), rules.modalities)
    if modalities:
        generation["responseModalities"] = modalities
    speech = apply.voice(
        generation.get("speechConfig"),
        rules.voices,
        # What Google will answer with: unset (or empty, the same to Google) is AUDIO.
        audio=not modalities or "AUDIO" in modalities,
    )
    if speech is not None:
        generation["speechConfig"] = speech
    temperature = apply.clamp(
        _number(generation.get("temperature"), TEMPERATURE), rules.temperature, TEMPERATURE
    )
    if temperature is not None:
        generation["temperature"] = temperature
    tokens = apply.max_tokens(generation.get("maxOutputTokens"), rules.max_output_tokens)
    if tokens is not None:
        generation["maxOutputTokens"] = tokens
    if generation:
        out["generationConfig"] = generation
    else:
        out.pop("generationConfig", None)  # it held only what is now left out

    instruction = apply.instructions(setup.get("systemInstruction"), rules.instructions)
    if instruction is not None:
        out["systemInstruction"] = instruction
    realtime = apply.detection(setup.get("realtimeInputConfig"), rules.turn_detection)
    if realtime is not None:
        out["realtimeInputConfig"] = realtime
    if "tools" in setup:
        out["tools"] = apply.tools(setup["tools"], rules.tools_allow)
    return out, list(dict.fromkeys(apply.adjusted))


def model_name(value: str) -> str:
    """A model as the policy compares it: `models/gemini-x` and `gemini-x` are one model."""
    return value.removeprefix(MODEL_PREFIX)


def model_resource(name: str) -> str:
    """The name as the setup spells it: `models/gemini-x`; a name of another collection
    (`tunedModels/...`) as it is."""
    return name if "/" in name else MODEL_PREFIX + name


def _number(value: object, param: str) -> float | None:
    return None if value is None else as_number(value, param)


class _Application(Adjustments):
    """The running state of one `apply_setup_policy` call: what was adjusted."""

    def model(self, value: object, allowed: tuple[str, ...] | None) -> str:
        if value is not None:
            value = model_name(as_str(value, MODEL, min_chars=1))
        if allowed is None:
            if value is None:
                # The setup is locked: a token without a model would leave it to the client.
                raise InvalidValue(f"Missing required parameter: '{MODEL}'.", param=MODEL)
            return model_resource(value)
        names = tuple(model_name(name) for name in allowed)
        if value is None:
            return model_resource(names[0])
        if value not in names:
            self.violation(MODEL, names)
            return model_resource(names[0])
        return model_resource(value)

    def modalities(self, value: object, allowed: tuple[str, ...] | None) -> list[str] | None:
        """The modalities to send, or None to send none; `[]` asked is none asked."""
        asked = None if value is None else [m.upper() for m in as_str_list(value, MODALITIES)]
        if not asked:
            asked = None
        if allowed is None:
            return asked
        if asked is None:
            return [allowed[0].upper()]
        if any(m.lower() not in allowed for m in asked):
            self.violation(MODALITIES, allowed)
            return [allowed[0].upper()]
        return asked

    def voice(
        self, speech: Mapping[str, Any] | None, allowed: tuple[str, ...] | None, *, audio: bool
    ) -> Mapping[str, Any] | None:
        if allowed is None:
            return speech
        voice_config = (speech or {}).get("voiceConfig", {})
        name = voice_config.get("prebuiltVoiceConfig", {}).get("voiceName")
        if name is not None:
            name = as_str(name, VOICE)
        if "replicatedVoiceConfig" in voice_config:
            # A voice of the client's own making is no voice of the list.
            self.violation(f"{GENERATION}.speechConfig.voiceConfig.replicatedVoiceConfig", allowed)
        elif name in allowed or (name is None and not audio):
            return speech  # an allowed voice, or none where no voice is spoken
        elif name is not None:
            self.violation(VOICE, allowed)
        chosen = {"prebuiltVoiceConfig": {"voiceName": allowed[0]}}
        return {**(speech or {}), "voiceConfig": chosen}

    def clamp(self, value: float | None, rule: Range | None, path: str) -> float | None:
        low, high = TEMPERATURE_BOUNDS if path == TEMPERATURE else (0.0, float("inf"))
        if rule is not None:
            low = max(low, rule.min if rule.min is not None else low)
            high = min(high, rule.max if rule.max is not None else high)
        if value is None:
            return None if rule is None else rule.default
        clamped = min(max(value, low), high)
        if clamped != value:
            self.adjusted.append(path)
        return clamped

    def max_tokens(self, value: object, cap: int | None) -> int | None:
        asked = None
        if value is not None:
            asked = as_int(value, MAX_OUTPUT_TOKENS, 1, MAX_OUTPUT_TOKENS_LIMIT)
        if cap is None:
            return asked
        if asked is None:
            return cap
        if asked > cap:
            self.adjusted.append(MAX_OUTPUT_TOKENS)
            return cap
        return asked

    def instructions(
        self, content: Mapping[str, Any] | None, rule: InstructionsRule
    ) -> Mapping[str, Any] | None:
        text = None
        if content is not None:
            parts = content.get("parts", [])
            text = "".join(
                as_str(
                    part.get("text"), join(join(INSTRUCTIONS, "parts"), i), max_chars=TEXT_MAX_CHARS
                )
                for i, part in enumerate(parts)
            )
        result, outcome = apply_instructions(text, rule, lambda: INSTRUCTIONS)
        if outcome == "kept":
            return content
        if outcome == "adjusted":
            self.adjusted.append(INSTRUCTIONS)
        role = {"role": content["role"]} if content is not None and "role" in content else {}
        return {"parts": [{"text": result}], **role}

    def detection(
        self, realtime: Mapping[str, Any] | None, rule: TurnDetectionRule | None
    ) -> Mapping[str, Any] | None:
        if rule is None:
            return realtime
        detection = dict((realtime or {}).get("automaticActivityDetection", {}))
        if "disabled" in detection and as_bool(detection["disabled"], f"{DETECTION}.disabled"):
            return realtime
        for key, bounds in (
            ("silenceDurationMs", rule.silence_duration_ms),
            ("prefixPaddingMs", rule.prefix_padding_ms),
        ):
            path = f"{DETECTION}.{key}"
            asked = detection.get(key)
            value = self.clamp(None if asked is None else as_int(asked, path, 0), bounds, path)
            if value is not None:
                detection[key] = round(value)
        if not detection:
            return realtime
        return {**(realtime or {}), "automaticActivityDetection": detection}

    def tools(self, tools: list[Mapping[str, Any]], allowed: tuple[str, ...] | None) -> list[Any]:
        for index, tool in enumerate(tools):
            for kind in sorted(REFUSED_TOOLS.intersection(tool)):
                # Refused even under `clamp`: dropping it would hide from the client
                # that its tools are not what it asked for, and no role may have it.
                path = f"{join(TOOLS, index)}.{kind}"
                raise PolicyViolation(
                    f"'{path}' is not allowed: the broker never lets a client name the "
                    "servers Google calls.",
                    param=path,
                )
        if allowed is None:
            return tools
        kept: list[Any] = []
        for index, tool in enumerate(tools):
            path = join(TOOLS, index)
            out: dict[str, Any] = {}
            for kind, value in tool.items():
                if kind == "functionDeclarations":
                    declarations = [
                        declaration
                        for number, declaration in enumerate(value)
                        if self._allowed(declaration, allowed, f"{path}.{kind}[{number}].name")
                    ]
                    if declarations:
                        out[kind] = declarations
                elif kind in allowed:
                    out[kind] = value
                else:
                    self._refused(f"{path}.{kind}", allowed)
            if out:
                kept.append(out)
        return kept

    def _allowed(self, declaration: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> bool:
        if as_str(declaration.get("name"), path, min_chars=1) in allowed:
            return True
        self._refused(path, allowed)
        return False

    def _refused(self, path: str, allowed: tuple[str, ...]) -> None:
        # A tool is dropped, not replaced: the adjustment is the list's.
        if self.reject:
            self.violation(path, allowed)
        self.adjusted.append(TOOLS)
