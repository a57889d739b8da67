"""The one layered parser every wrapper shares: raw model text -> a validated function call.

Small local models break JSON in a handful of recurring ways (prose around the call, two objects
back-to-back, raw newlines in strings, `\\_`, single quotes and Python literals, trailing commas, lost
closing braces, other key dialects, arguments as a JSON string). Each layer fixes one of them and is
named in `ParsedCall.repairs`, so the agent can log what was bent. Faithful layers run first, so valid
output is never rewritten. Every failure is an LLMOutputError whose short message goes back to the
model as a correction, so no model text can crash the agent loop. Checking the call against the
offered functions (name, arguments, types) lives in ``validate.py``; `validate_call` is re-exported here.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memagent.errors import LLMOutputError
from memagent.llm.validate import HEARTBEAT, dump, match_name, validate_call

CLOSED_BRACES = "closed_braces"  # the repair that closes a call cut off mid-way: the call is not whole
# The repair that closes a call whose last value was whole but which the model left for stray text (a special
# token, a hallucinated `FUNCTION RETURN` line): nothing was cut, so asking again with more tokens won't help.
CLOSED_BEFORE_STRAY_TEXT = "closed_before_stray_text"
_MAX_CANDIDATES = 16  # start positions tried per reply: bounds the work on adversarial text
_MAX_DEPTH = 64  # no real call nests deeper; deeper text is rejected before any decoder sees it
_MAX_CHARS = 200_000  # far beyond any generation budget
_CLOSER = {"{": "}", "[": "]"}
_OPENER = re.compile(r"[{\[]")
_VALUE_START = frozenset("{[,:")  # after these a `'` opens a Python-style string, elsewhere it's prose
_NAME_KEYS = ("function", "name", "tool_name", "function_name")
_ARGS_KEYS = ("params", "arguments", "parameters", "args", "input")
_THOUGHT_KEYS = ("inner_thoughts", "thoughts", "thought")
_MISSPELT_THOUGHTS = re.compile(r"inner[ _-]?(?:thoughts?|thougths?|toughts?|monologue)", re.IGNORECASE)
# What may stand between strings in JSON (or a Python literal); the first thing that can't starts stray text.
_CODE_TOKEN = re.compile(r"\s+|[{}\[\],:]|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|(?:true|false|null|True|False|None)\b")
# Chat-template tokens a small model leaks into its call: `<|im_end|>`, `<|>`, `</s>`, `<end_of_turn>`...
_SPECIAL_TOKEN = re.compile(r"<\|[^<>\s]{0,40}\|?>|</?s>|<(?:start|end)_of_turn>|\[/?INST\]|<\|?eot_id\|?>")
_NO_CALL = "Your reply had no JSON function call. Reply with exactly one JSON object that calls a function."


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]
    inner_thoughts: str | None
    repairs: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------- scanning


@dataclass
class _Span:
    begin: int
    end: int
    quote: str | None  # None for code between strings
    closed: bool = True


def _spans(text: str) -> Iterator[_Span]:
    """Split text into code and string spans (string spans include their quotes), lazily."""
    i, code_start, prev, n = 0, 0, "", len(text)
    while i < n:
        ch = text[i]
        if ch == '"' or (ch == "'" and prev in _VALUE_START):
            if code_start < i:
                yield _Span(code_start, i, None)
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            yield _Span(i, min(j + 1, n), ch, closed=j < n)
            i = code_start = j + 1
            prev = ch
            continue
        if not ch.isspace():
            prev = ch
        i += 1
    if code_start < n:
        yield _Span(code_start, n, None)


@dataclass
class _Scan:
    end: int | None  # index just past the value, when it closed
    stack: list[str]  # closers still owed at the end of the text
    quote: str | None = None  # quote of a string left open
    last_sep: int | None = None  # last structural "," or opener: where a cut-back may happen
    mismatched: bool = False


def _scan(text: str) -> _Scan:
    """Bracket matching from text[0] (an opener), ignoring brackets inside strings."""
    stack: list[str] = []
    last_sep: int | None = None
    for span in _spans(text):
        if span.quote is not None:
            if not span.closed:
                return _Scan(None, stack, span.quote, last_sep)
            continue
        for i in range(span.begin, span.end):
            ch = text[i]
            if ch in _CLOSER:
                stack.append(_CLOSER[ch])
                last_sep = i
                if len(stack) > _MAX_DEPTH:
                    return _Scan(None, stack, None, last_sep, mismatched=True)
            elif ch in "}]":
                if not stack or stack[-1] != ch:
                    return _Scan(None, stack, None, last_sep, mismatched=True)
                stack.pop()
                if not stack:
                    return _Scan(i + 1, [])
            elif ch == ",":
                last_sep = i
    return _Scan(None, stack, None, last_sep)


def _outside_strings(text: str, fix: Callable[[str], str]) -> str:
    """Apply `fix` to the code between strings only, so string contents are never rewritten."""
    return "".join(text[s.begin : s.end] if s.quote else fix(text[s.begin : s.end]) for s in _spans(text))


# ---------------------------------------------------------------------------------------------- decoding


def _fix_trailing_commas(text: str) -> str:
    return _outside_strings(text, lambda code: re.sub(r",(\s*[}\]])", r"\1", code))


def _fix_escaped_underscores(text: str) -> str:
    """Markdown-escaped `\\_` (invalid in JSON) -> `_`; an escaped backslash before `_` is kept."""
    return re.sub(r"(?<!\\)((?:\\\\)*)\\_", r"\1_", text)


def _fix_stray_escapes(text: str) -> str:
    """Literal `\\n`/`\\t` between tokens (not inside strings) -> whitespace."""
    return _outside_strings(text, lambda code: re.sub(r"\\[nrt]", " ", code))


def _fix_special_tokens(text: str) -> str:
    """Chat-template tokens between the call's tokens (never inside its strings) -> nothing. One that only
    trails the text is left: it ends the call, which `_before_stray_text` then closes."""
    kept, last = [], 0
    for span in _spans(text):
        if span.quote is None:
            for token in _SPECIAL_TOKEN.finditer(text, span.begin, span.end):
                if text[token.end() :].strip():
                    kept.append(text[last : token.start()])
                    last = token.end()
    return "".join(kept) + text[last:]


_TEXT_FIXES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("trailing_comma", _fix_trailing_commas),
    ("escaped_underscore", _fix_escaped_underscores),
    ("stray_escapes", _fix_stray_escapes),
    ("special_tokens", _fix_special_tokens),
)


def _close(text: str) -> str | None:
    """Close an unterminated string and every open bracket (output cut mid-call), or None."""
    scan = _scan(text)
    if scan.end is not None or scan.mismatched or not scan.stack:
        return None
    if scan.quote:
        if (len(text) - len(text.rstrip("\\"))) % 2:
            text = text[:-1]  # a dangling escape would swallow the closing quote
        text += scan.quote
    return _fix_trailing_commas(text.rstrip() + "".join(reversed(scan.stack)))


def _cut_back(text: str) -> str | None:
    """Drop the last incomplete member (`"key": tr`), then close: for cuts inside keys or literals."""
    scan = _scan(text)
    if scan.end is not None or scan.mismatched or scan.last_sep is None:
        return None
    cut = scan.last_sep if text[scan.last_sep] == "," else scan.last_sep + 1
    return _close(text[:cut]) if cut > 1 else None  # `{` + prose must not become `{}`


def _before_stray_text(text: str) -> str | None:
    """The text up to the first thing outside strings that JSON can't hold (prose, a `FUNCTION RETURN` the
    model made up), or None when there is none. For calls left open when the model wandered off."""
    for span in _spans(text):
        if span.quote is not None:
            continue
        i = span.begin
        while i < span.end:
            token = _CODE_TOKEN.match(text, i, span.end)
            if token is None:
                return text[:i] if text[:i].strip(" \t\r\n{[") else None  # `{` + prose must not become `{}`
            i = token.end()
    return None


def _jsonable(value: Any) -> Any:
    """Python literal -> JSON types (tuples become lists); ValueError for sets, bytes, complex..."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _jsonable(item) for key, item in value.items()}
    raise ValueError(f"not JSON: {type(value).__name__}")


def _python_names(code: str) -> str:
    for json_word, python_word in (("true", "True"), ("false", "False"), ("null", "None")):
        code = re.sub(rf"\b{json_word}\b", python_word, code)
    return code


def _decode_json(text: str) -> tuple[Any, list[str]] | None:
    """Strict JSON, then JSON allowing raw control characters (newlines, tabs) inside strings."""
    for strict, repairs in ((True, []), (False, ["lenient_json"])):
        try:
            return json.loads(text, strict=strict), repairs
        except (ValueError, RecursionError):
            pass
    return None


def _decode_python(text: str) -> tuple[Any, list[str]] | None:
    """A Python literal (single quotes, True/None), read safely with ast.literal_eval."""
    try:
        with warnings.catch_warnings():  # invalid escapes like `\\_` warn (3.11) or error (later)
            warnings.simplefilter("ignore")
            value = _jsonable(ast.literal_eval(_outside_strings(text, _python_names)))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    single = any(span.quote == "'" for span in _spans(text))
    return value, ["single_quotes" if single else "python_literal"]


def _parse_candidate(text: str, before_stray: bool = False) -> tuple[Any, list[str]] | None:
    """JSON as is, then with each textual fix added in turn, then as a Python literal, then closed up.

    Python literals come after the text fixes because literal_eval also "succeeds" on `\\_` (keeping
    the backslash), which would hide the better repair. `before_stray` also tries closing the value where
    stray text begins; it can make a call out of text that holds none, so callers try it last.
    """
    attempts: list[tuple[str, list[str], Callable[[str], tuple[Any, list[str]] | None]]]
    attempts = [(text, [], _decode_json)]
    fixes: list[str] = []
    for name, fix in _TEXT_FIXES:
        fixed = fix(text)
        if fixed != text:
            text, fixes = fixed, [*fixes, name]
            attempts.append((text, fixes, _decode_json))
    attempts.append((text, fixes, _decode_python))
    stray_cut = _before_stray_text(text) if before_stray else None
    closings = [
        (_close(text), CLOSED_BRACES),
        (_close(stray_cut) if stray_cut else None, CLOSED_BEFORE_STRAY_TEXT),
        (_cut_back(text), CLOSED_BRACES),
    ]
    for closed, closing in closings:
        if closed is not None:
            repairs = [*fixes, closing]
            attempts += [(closed, repairs, _decode_json), (closed, repairs, _decode_python)]
    for attempt, names, decode in attempts:
        decoded = decode(attempt)
        if decoded is not None and isinstance(decoded[0], dict | list):
            return decoded[0], [*names, *decoded[1]]
    return None


def _iter_values(
    text: str, start_marker: str | None, end_marker: str | None, before_stray: bool = False
) -> Iterator[tuple[Any, list[str]]]:
    """Every JSON object/array in the call region, first first, each with the repairs it needed."""
    region = text.split(start_marker, 1)[1] if start_marker and start_marker in text else text
    pos = 0
    for _ in range(_MAX_CANDIDATES):
        match = _OPENER.search(region, pos)
        if match is None:
            return
        start = match.start()
        scan = _scan(region[start:])
        if scan.mismatched:  # can't be repaired into a value
            pos = start + 1
            continue
        if scan.end is not None:
            stop = start + scan.end
        else:
            cut = region.find(end_marker, start) if end_marker else -1
            stop = cut if cut >= 0 else len(region)
        parsed = _parse_candidate(region[start:stop], before_stray)
        if parsed is None:
            pos = start + 1
            continue
        value, repairs = parsed
        if region[:start].strip():
            repairs.append("stripped_prefix_text")
        tail = region[stop:].split(end_marker, 1)[0] if end_marker else region[stop:]
        if tail.strip():
            repairs.append("ignored_trailing_text")
        yield value, repairs
        pos = stop


def extract_json_value(
    text: str, *, start_marker: str | None = None, end_marker: str | None = None
) -> tuple[object, list[str]]:
    """The first JSON object or array in the call region (after `start_marker` when present).

    The end is found by string-aware bracket matching, not by `end_marker`, so a closing tag quoted
    inside an argument can't cut the call; `end_marker` only bounds a value that never closes.
    """
    for before_stray in (False, True):
        for value, repairs in _iter_values(text, start_marker, end_marker, before_stray):
            return value, repairs
    raise LLMOutputError(_NO_CALL, text)


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
        values = list(_iter_values(raw_args, None, None))[:1] if raw_args.strip() else [({}, [])]
        raw_args = values[0][0] if values else raw_args
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
        if err.raw == raw:
            raise
        raise LLMOutputError(str(err), raw) from err
    except Exception as err:  # defensive: no model text may crash the agent (deep nesting, huge ints...)
        raise LLMOutputError(_NO_CALL, raw) from err


def _parse(
    raw: str,
    functions: Sequence[Mapping[str, Any]] | None,
    start_marker: str | None,
    end_marker: str | None,
    prefix: str,
) -> ParsedCall:
    if len(raw) > _MAX_CHARS:
        raise LLMOutputError(f"Your reply was too long ({len(raw)} characters). Call one function.", raw)
    repeated = "".join(raw.split()).startswith("".join(prefix.split()))  # whitespace may differ
    text = raw if repeated else prefix + raw
    first_error: LLMOutputError | None = None
    # Every candidate as the model wrote it first; only when none of them is a call, the same candidates
    # again, closed where stray text begins (a call the model left open to write a special token or prose).
    for before_stray in (False, True):
        for value, repairs in _iter_values(text, start_marker, end_marker, before_stray):
            try:
                return _checked_call(value, repairs, functions)
            except LLMOutputError as err:
                first_error = first_error or err
    raise first_error or LLMOutputError(_NO_CALL, raw)


def _checked_call(value: object, repairs: list[str], functions: Sequence[Mapping[str, Any]] | None) -> ParsedCall:
    name, args, thoughts, more = normalise_call(value)
    repairs = [*repairs, *more]
    if functions is not None:
        name = match_name(name, functions, repairs)
        args, checked = validate_call(name, args, functions)
        repairs += checked
    return ParsedCall(name, args, thoughts, tuple(dict.fromkeys(repairs)))
