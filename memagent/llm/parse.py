"""The one layered parser every wrapper shares: raw model text -> a validated function call.

Small local models break JSON in a handful of recurring ways (prose around the call, two objects
back-to-back, raw newlines in strings, `\\_`, single quotes and Python literals, trailing commas, lost
closing braces, calls left open for stray text, other key dialects, arguments as a JSON string). Each layer
fixes one of them and is named in `ParsedCall.repairs`, so the agent can log what was bent. Faithful layers
run first, so valid output is never rewritten. Every failure is an LLMOutputError whose short message goes
back to the model as a correction, so no model text can crash the agent loop. Finding and mending the JSON
lives in ``json_repair.py``; checking the call against the offered functions (name, arguments, types) in
``validate.py``. `extract_json_value` and `validate_call` are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memagent.errors import LLMOutputError
from memagent.llm.json_repair import NO_CALL, CallReader, extract_json_value, iter_values
from memagent.llm.validate import HEARTBEAT, dump, match_name, validate_call
from memagent.text import clean_dict, clean_text

__all__ = [
    "ParsedCall",
    "check_reply_length",
    "clean_call",
    "extract_json_value",
    "normalise_call",
    "parse_function_call",
    "validate_call",
]

_MAX_CHARS = 200_000  # far beyond any generation budget; a reply this long still parses in well under a second
_NAME_KEYS = ("function", "name", "tool_name", "function_name")
_ARGS_KEYS = ("params", "arguments", "parameters", "args", "input")
_THOUGHT_KEYS = ("inner_thoughts", "thoughts", "thought")
_MISSPELT_THOUGHTS = re.compile(r"inner[ _-]?(?:thoughts?|thougths?|toughts?|monologue)", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]
    inner_thoughts: str | None
    repairs: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------ normalising


def _unwrap(value: Any, repairs: list[str]) -> dict[str, Any]:
    """Peel lists of calls, `{"tool_call(s)": ...}` and nested `{"function": {...}}` down to one call."""
    for _ in range(8):
        if isinstance(value, list):
            if not value:
                raise LLMOutputError("Your reply was an empty JSON list. Call one function.", "[]")
            if len(value) > 1:
                repairs.append("dropped_extra_calls")
            value = value[0]
        elif not isinstance(value, dict):
            raise LLMOutputError(f"Expected a JSON object calling a function, got {dump(value)[:40]}.", dump(value))
        elif isinstance(value.get("function"), dict):
            outer = {key: item for key, item in value.items() if key != "function"}
            value = {**outer, **value["function"]}
        elif not any(isinstance(value.get(key), str) for key in _NAME_KEYS) and (
            isinstance(value.get("tool_call"), dict) or isinstance(value.get("tool_calls"), list)
        ):
            value = value["tool_call"] if isinstance(value.get("tool_call"), dict) else value["tool_calls"]
        else:
            return value
    raise LLMOutputError("The function call is nested too deeply. Call one function.", dump(value))


def _arguments(call: dict[str, Any], name_key: str, name: str) -> tuple[dict[str, Any], list[str]]:
    key = next((k for k in _ARGS_KEYS if k in call and k != name_key), None)
    if key is None:  # flattened: `{"function": "send_message", "message": "hi"}`
        skip = {name_key, *_THOUGHT_KEYS, "id", "tool_call_id"}
        args = {
            k: v
            for k, v in call.items()
            if k not in skip and not _MISSPELT_THOUGHTS.fullmatch(k) and not (k == "type" and v == "function")
        }
        return args, ["flattened_arguments"] if args else []
    raw_args, repairs = call[key], []
    if isinstance(raw_args, str):  # double-encoded: `"arguments": "{\"message\": \"hi\"}"`
        repairs.append("arguments_string")
        first = next(iter_values(raw_args, None, None), None) if raw_args.strip() else ({}, [])
        raw_args = first[0] if first is not None else raw_args
    if not isinstance(raw_args, dict | None):
        raise LLMOutputError(f'The arguments of "{name}" must be a JSON object.', dump(call))
    args = dict(raw_args or {})
    if HEARTBEAT in call and HEARTBEAT not in args:
        args[HEARTBEAT] = call[HEARTBEAT]
        repairs.append("moved_request_heartbeat")
    return args, repairs


def normalise_call(value: object) -> tuple[str, dict[str, Any], str | None, list[str]]:
    """Any known call dialect -> (name, arguments, inner_thoughts, repairs).

    Accepts `function`/`params`, `name`/`arguments`, `name`/`parameters`, `tool_name`/`parameters`,
    the OpenAI tool-call shape, MemGPT's nested `{"function": {...}}`, a list of calls (the first is
    used) and arguments given as a JSON string. Inner thoughts come from the top level or are popped
    from the arguments.
    """
    repairs: list[str] = []
    call = _unwrap(value, repairs)
    name_key = next((k for k in _NAME_KEYS if isinstance(call.get(k), str) and call[k].strip()), None)
    if name_key is None:
        keys = ", ".join(f'"{key}"' for key in list(call)[:6]) or "none"
        raise LLMOutputError(
            f"The JSON has no function name (keys: {keys}). Call a function: give its name and arguments.",
            dump(value),
        )
    name = call[name_key].strip()
    args, arg_repairs = _arguments(call, name_key, name)
    thoughts = next((call[k] for k in _THOUGHT_KEYS if call.get(k) is not None), None)
    inner = args.pop("inner_thoughts", None)
    misspelt = [k for k in (*call, *args) if k != "inner_thoughts" and _MISSPELT_THOUGHTS.fullmatch(k)]
    for key in misspelt:  # `inner_thought`, `innerThoughts`: the thoughts, not an unknown argument
        value = args.pop(key, None) if key in args else call.get(key)
        inner = value if inner is None else inner
    if misspelt:
        repairs.append("renamed_inner_thoughts")
    if thoughts is None:
        thoughts = inner
    if thoughts is not None and not isinstance(thoughts, str):
        thoughts = dump(thoughts)
    return name, args, thoughts, repairs + arg_repairs


# ---------------------------------------------------------------------------------------------- entry


def check_reply_length(raw: str) -> None:
    """LLMOutputError for a reply over the parser's cap. Wrappers that cut their markers off a reply before
    parsing it check the reply as it came, so the cap is the same for every wrapper."""
    if len(raw) > _MAX_CHARS:
        raise LLMOutputError(f"Your reply was too long ({len(raw)} characters). Call one function.", raw)


def parse_function_call(
    raw: str,
    functions: Sequence[Mapping[str, Any]] | None = None,
    *,
    start_marker: str | None = None,
    end_marker: str | None = None,
    prefix: str = "",
) -> ParsedCall:
    """Raw model output -> one validated call. Raises LLMOutputError (and nothing else) on failure.

    `prefix` is text the prompt forced (e.g. `{"function":`): re-attached unless the output repeats it.
    Truncation is the caller's concern (finish reason); cut-off output is still closed up here.
    """
    try:
        return _parse(raw, functions, start_marker, end_marker, prefix)
    except LLMOutputError as err:
        message = clean_text(str(err))  # it quotes the model's text, which may hold what the call may not
        if err.raw == raw and message == str(err):
            raise
        raise LLMOutputError(message, raw) from err
    except Exception as err:  # defensive: no model text may crash the agent (deep nesting, huge ints...)
        raise LLMOutputError(NO_CALL, raw) from err


def _parse(
    raw: str,
    functions: Sequence[Mapping[str, Any]] | None,
    start_marker: str | None,
    end_marker: str | None,
    prefix: str,
) -> ParsedCall:
    check_reply_length(raw)
    repeated = "".join(raw.split()).startswith("".join(prefix.split()))  # whitespace may differ
    text = raw if repeated else prefix + raw
    first_error: LLMOutputError | None = None
    # Every candidate as the model wrote it first; only when none of them is a call, the same candidates
    # again, closed where stray text begins (a call the model left open to write a special token or prose).
    reader = CallReader(text, start_marker, end_marker)  # the second round reuses the first's work
    for before_stray in (False, True):
        for value, repairs in reader.values(before_stray):
            try:
                return _checked_call(value, repairs, functions)
            except LLMOutputError as err:
                first_error = first_error or err
    raise first_error or LLMOutputError(NO_CALL, raw)


def _checked_call(value: object, repairs: list[str], functions: Sequence[Mapping[str, Any]] | None) -> ParsedCall:
    name, args, thoughts, more = normalise_call(value)
    repairs = [*repairs, *more]
    if functions is not None:
        name = match_name(name, functions, repairs)
        args, checked = validate_call(name, args, functions)
        repairs += checked
    return ParsedCall(name, args, thoughts, tuple(dict.fromkeys(repairs)))


def clean_call(call: ParsedCall) -> ParsedCall:
    """`call` with its text cleaned (memagent.text.clean_text): JSON escapes like `\\ud800` or `\\u0000` decode to
    characters no encoder, database or terminal takes. Every wrapper's `parse` returns its call through this;
    parse_function_call itself decodes faithfully (a grammar's output comes back exactly as it was written)."""
    thoughts = None if call.inner_thoughts is None else clean_text(call.inner_thoughts)
    return ParsedCall(clean_text(call.name), clean_dict(call.arguments), thoughts, call.repairs)
